"""The trained models as modules whose `forward(batch, draws)` is a training step's forward
pass and returns named outputs for the loss terms (`neurcodec.losses.TERMS`): what DDP wraps."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

from neurcodec.errors import UsageError
from neurcodec.models.thumbnail import match_thumbnail
from neurcodec.train.config import TrainConfig
from neurcodec.train.draws import Draws


def quantize_for_training(latent: Tensor, step_range: tuple[float, float], round_fraction: float, draws: Draws, first: int | None = None) -> Tensor:
    """What the decoder will see after the bitstream: x → Δ·round(x/Δ) (or x + Δ·U(−½,½)),
    Δ log-uniform in `step_range` per sample."""
    lo, hi = math.log(step_range[0]), math.log(step_range[1])
    step = torch.exp(lo + (hi - lo) * draws.rand(1, 1, 1, first=first))
    rounded = latent + (torch.round(latent / step) * step - latent).detach()
    noisy = latent + (draws.rand(*latent.shape[1:], first=first) - 0.5) * step
    use_round = (draws.rand(1, 1, 1, first=first) < round_fraction).to(latent.dtype)
    return use_round * rounded + (1 - use_round) * noisy


class JointModel(nn.Module):
    """Encoder + stage B, trained together through the frozen stage A.

    forward: the quantised encoder latent conditions stage B, which denoises the stage A latent
    (around the direct head's estimate, when the model has a head: "sample what you can't
    compress"); the first `one_step_batch` samples of the global batch also get a one-step
    decode (x0 from pure noise at t = 1) to pixels through stage A. Outputs: `pred`, `target`,
    `loss_weight` (diffusion); `base`, `z0` (direct head); `decoded`, `real` (pixels)."""

    def __init__(self, config: TrainConfig, stage_a: nn.Module, encoder: nn.Module, stage_b: nn.Module, gdf, autocast: Callable[[], AbstractContextManager]) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.config, self.encoder, self.stage_b, self.gdf, self.autocast = config, encoder, stage_b, gdf, autocast
        self.__dict__["stage_a"] = stage_a  # frozen, not trained here: kept out of DDP's parameters

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def encode(self, x: Tensor, z0: Tensor, draws: Draws, first: int | None = None) -> Tensor:
        """The encoder latent of pixel crops (whose stage A latents are `z0`), quantised as the
        bitstream will quantise it. The thumbnail channels are quantised like the rest."""
        from neurcodec.models.effnet import effnet_resize
        from neurcodec.pipeline import encoder_latent

        cfg = self.config
        with self.autocast():
            if self.encoder.in_channels != 3:
                latent = self.encoder(z0, x)  # what encoder_latent computes, from the cache
            else:
                latent = encoder_latent(self.encoder, self.stage_a, effnet_resize(x, cfg.effnet_factor))
        return quantize_for_training(latent.float(), cfg.step_range, cfg.round_fraction, draws, first)

    def forward(self, batch: dict[str, Tensor], draws: Draws) -> dict[str, Tensor]:
        cfg = self.config
        x, z0 = self._layout(batch["pixels"]), self._layout(batch["latents"])
        quantized = self.encode(x, z0, draws)
        keep = (draws.rand(1, 1, 1) >= cfg.cond_dropout).to(quantized.dtype)
        latent = quantized * keep  # dropped for CFG; the head and the one-step decode always see it
        # With a direct head, stage B learns the residual around the head's estimate (SWYCC);
        # the head itself learns from the pixel terms.
        with self.autocast():
            base = self.stage_b.direct_estimate(quantized, z0.shape[-2:])
        base = None if base is None else base.float()
        t = draws.take(self.gdf.schedule.random_t(draws.batch, draws.generator))
        noise = draws.randn(*z0.shape[1:])
        diffused = self.gdf.diffuse(z0 if base is None else z0 - base.detach(), t=t, noise=noise)
        clip = torch.zeros(latent.shape[0], cfg.stage_b.c_clip, device=latent.device)
        own_crops = cfg.one_step and bool(cfg.one_step_crop) and cfg.one_step_crop != cfg.joint_phase.crop
        n = draws.count(cfg.one_step_batch) if cfg.one_step else 0
        # The one-step samples reuse the first n crops: their stage B pass (pure noise at t = 1)
        # joins the diffusion batch's, one call instead of two.
        shared = 0 if own_crops else n
        noise_1 = draws.randn(*z0.shape[1:], first=cfg.one_step_batch)[:shared]
        log_snr_1 = self.gdf.schedule(torch.ones(shared)).to(latent.device)
        with self.autocast():
            pred = self.stage_b(
                self._layout(torch.cat([diffused.x_t, noise_1])),
                torch.cat([diffused.noise_cond, self.gdf.noise_cond(log_snr_1)]),
                torch.cat([latent, quantized[:shared]]),
                torch.cat([clip, clip[:shared]]),
            ).float()
        out = {"pred": pred[: latent.shape[0]], "target": diffused.target, "loss_weight": diffused.loss_weight, "z0": z0}
        if base is not None:
            out["base"] = base
        if n and own_crops:
            xs, zs = self._layout(batch["own_pixels"][:n]), self._layout(batch["own_latents"][:n])
            qs = self.encode(xs, zs, draws, first=cfg.one_step_batch)
            with self.autocast():
                bs = self.stage_b.direct_estimate(qs, zs.shape[-2:])
            out["decoded"], out["real"] = self.one_step_decode(qs, xs, draws, None if bs is None else bs.float())
        elif n:
            x0 = self.gdf.undiffuse(noise_1, log_snr_1, pred[latent.shape[0] :])[0]
            out["decoded"], out["real"] = self.decode_windows(x0, quantized[:n], x[:n], None if base is None else base[:n], draws)
        return out

    def one_step_decode(self, latent: Tensor, x: Tensor, draws: Draws, base: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The decode a sampler's first step makes from the encoder `latent` of pixels `x`: x0
        from pure noise at t = 1 (plus the direct head's estimate `base`), through stage A.
        Returns what `decode_windows` returns."""
        d = self.stage_a.downscale
        first = self.config.one_step_batch or None
        noise = draws.randn(self.config.stage_a.c_latent, x.shape[2] // d, x.shape[3] // d, first=first)[: x.shape[0]]
        log_snr = self.gdf.schedule(torch.ones(x.shape[0])).to(x.device)
        clip = torch.zeros(x.shape[0], self.config.stage_b.c_clip, device=x.device)
        with self.autocast():
            pred = self.stage_b(self._layout(noise), self.gdf.noise_cond(log_snr), latent, clip)
        z0, _ = self.gdf.undiffuse(noise, log_snr, pred.float())
        return self.decode_windows(z0, latent, x, base, draws)

    def decode_windows(self, z0: Tensor, latent: Tensor, x: Tensor, base: Tensor | None, draws: Draws) -> tuple[Tensor, Tensor]:
        """Stage A's decode of `z0` (+ `base`), thumbnail-matched to the encoder `latent`, and
        the pixels `x` it is compared with — on a random `one_step_window` of each sample
        (aligned to the thumbnail's blocks) when the config sets one, else the whole crop."""
        z = z0 if base is None else z0 + base.float()
        thumb = self.encoder.thumbnail(latent)
        z, x, thumb = self._window(z, x, thumb, draws)
        with self.autocast():
            pixels = self.stage_a.decode(self._layout(z))
        pixels = pixels.float() if thumb is None else match_thumbnail(pixels.float(), thumb)
        return pixels, x

    def _window(self, z: Tensor, x: Tensor, thumb: Tensor | None, draws: Draws) -> tuple[Tensor, Tensor, Tensor | None]:
        side = self.config.one_step_window
        if not side or side >= min(x.shape[-2:]):
            return z, x, thumb
        d = self.stage_a.downscale
        block = x.shape[-1] // thumb.shape[-1] if thumb is not None else d
        if side % block:
            raise UsageError(f"training config {self.config.name!r}: one_step_window must be a multiple of {block} px, got {side}")
        first = self.config.one_step_batch or None
        tops = draws.randint((x.shape[-2] - side) // block + 1, first=first)[: x.shape[0]]
        lefts = draws.randint((x.shape[-1] - side) // block + 1, first=first)[: x.shape[0]]
        zs, xs, ts = [], [], []
        for i, (top, left) in enumerate(zip(tops, lefts)):
            top, left = top * block, left * block
            zs.append(z[i, :, top // d : (top + side) // d, left // d : (left + side) // d])
            xs.append(x[i, :, top : top + side, left : left + side])
            if thumb is not None:
                ts.append(thumb[i, :, top // block : (top + side) // block, left // block : (left + side) // block])
        return torch.stack(zs), torch.stack(xs), torch.stack(ts) if thumb is not None else None


class StageAModel(nn.Module):
    """The stage A autoencoder (VQGAN) in its own phase: forward gives the reconstruction of
    the crops from noisy latents and the codebook loss."""

    def __init__(self, config: TrainConfig, stage_a: nn.Module) -> None:
        super().__init__()
        self.config, self.stage_a = config, stage_a

    def forward(self, batch: dict[str, Tensor], draws: Draws) -> dict[str, Tensor]:
        x = batch["pixels"]
        raw = self.stage_a.encode_raw(x)
        _, _, vq_loss = self.stage_a.vquantizer(raw.detach(), dim=1)  # codebook only follows
        noise = draws.randn(*raw.shape[1:]) * draws.rand(1, 1, 1) * self.config.latent_noise
        recon = self.stage_a.decode((raw + noise) / self.stage_a.scale_factor)
        return {"recon": recon, "real": x, "vq_loss": vq_loss}
