"""The model pipeline both codecs run through: pixels ⇄ conditioning latents, on one device.

It owns the three modules and *how* they run — device, dtype, autocast, memory layout, tiling,
`torch.compile` — so the image codec (PIL ⇄ bytes, `codec.py`) and the video codec (clips ⇄
streams, `video.py`) only decide *what* to encode and generate; neither touches stage B.

encode_latents: [0,1] pixels (B,3,H,W) → pad → (stage A latent →) EfficientNet → (B,16,h,w)
generate:       (B,16,h,w) → stage B sampling (CFG, direct head) → stage A decode → thumbnail
                match → [0,1] pixels (B,3,H,W)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from neurcodec.bitstream import DecodeSettings
from neurcodec.diffusion import build_gdf, sample
from neurcodec.errors import UsageError
from neurcodec.models.effnet import effnet_input_size, effnet_resize
from neurcodec.models.thumbnail import match_thumbnail
from neurcodec.tiling import TileConfig, tiled_stage_a_decode, tiled_stage_a_encode, tiled_stage_b

ProgressFn = Callable[[int, int], None]

PAD_MULTIPLE = 32  # the EfficientNet's output stride; also keeps stage B's patch grid even
MIN_SIDE = 64  # stage B halves its grid 1 (patch) + 3 (levels) times from the H/4 latent


def pick_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise UsageError(f"unknown dtype {dtype!r}; choose float32, bfloat16 or float16")
    return names[dtype]


def _cpu_has_bf16() -> bool:
    cpu = torch.cpu
    return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_autocast(value: bool | str | torch.dtype | None, preferred: str | None, device: torch.device, dtype: torch.dtype) -> torch.dtype | None:
    """The autocast dtype the models run under, or None for plain `dtype` arithmetic.

    None/"auto": the family's measured choice (`preferred`, its `autocast` in weights.json) on a
    CPU with native bf16 and on CUDA; otherwise off. fp16 on CPU is refused (slow and
    inaccurate there).
    """
    if value is False or value in ("off", "none", "float32", "fp32") or dtype != torch.float32:
        return None
    if value is None or value == "auto":
        prefers_bf16 = preferred == "bfloat16"
        if device.type == "cpu":
            return torch.bfloat16 if prefers_bf16 and _cpu_has_bf16() else None
        if device.type == "cuda" and prefers_bf16:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    chosen = torch.bfloat16 if value is True else pick_dtype(value)
    if chosen == torch.float32:
        return None
    if chosen == torch.float16 and device.type == "cpu":
        raise UsageError("float16 autocast is not supported on CPU; use bfloat16")
    return chosen


@dataclass(frozen=True)
class NoiseBlend:
    """Sampling noise between two seeds: for each picture of the batch, the initial and every
    per-step draw of `seed_a` and of `seed_b`, spherically interpolated at its `alphas` entry
    (Diffusion Autoencoders interpolate the stochastic code this way). α = 0 gives exactly the
    noise a decode with `seed_a` draws, α = 1 exactly `seed_b`'s."""

    seed_a: int
    seed_b: int
    alphas: tuple[float, ...]


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of (1, ...) draws `a`, `b` at each α of `alpha` (B,) → (B, ...).
    The ends are exact copies; nearly parallel draws fall back to a straight line."""
    flat_a, flat_b = a.flatten().double(), b.flatten().double()
    cos = torch.dot(flat_a, flat_b) / (flat_a.norm() * flat_b.norm())
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    t = alpha.double().view(-1, *([1] * (a.dim() - 1)))
    if omega.abs() < 1e-6:
        w_a, w_b = 1 - t, t
    else:
        w_a, w_b = torch.sin((1 - t) * omega) / torch.sin(omega), torch.sin(t * omega) / torch.sin(omega)
    out = (w_a * a.double() + w_b * b.double()).to(a.dtype)
    ends = alpha.view(-1)
    out[ends == 0] = a[0]
    out[ends == 1] = b[0]
    return out


def encoder_latent(encoder: torch.nn.Module, stage_a: torch.nn.Module, pixels: torch.Tensor, tiling: TileConfig | None = None) -> torch.Tensor:
    """[0,1] image batch (sides multiples of 32) → the conditioning latent. An encoder reads
    either the ImageNet-normalised pixels or (in_channels != 3) stage A's latent of them, in
    tiles above `tiling`'s threshold; one that carries a colour thumbnail also takes the pixels.
    Training and inference both use this."""
    from neurcodec.models.effnet import effnet_preprocess

    if encoder.in_channels == 3:
        features = effnet_preprocess(pixels)
    elif tiling is not None and tiling.wants_tiles([side // stage_a.downscale for side in pixels.shape[-2:]]):
        features = tiled_stage_a_encode(stage_a, pixels, tiling).to(pixels.dtype)
    else:
        features = stage_a.encode(pixels)[0]
    return encoder(features, pixels)


class Pipeline:
    """The loaded modules of one model family, ready to encode and generate on one device.

    The pipeline takes ownership of `models`: it sets their memory layout once, here (values
    unchanged, only strides). Build one pipeline per loaded set of modules.

    Options: `autocast` — None/"auto" (the family's measured choice, see `resolve_autocast`),
    False, True/"bfloat16" or "float16" (CUDA only); `channels_last` — NHWC layout for the
    conv models (measured faster); `compile` — `torch.compile` stage B (off: compile time
    outweighs the gain on short CPU decodes); `tiling` — tile layout for large pictures (None
    disables tiling).
    """

    def __init__(
        self,
        models: Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        autocast: bool | str | torch.dtype | None = None,
        channels_last: bool = True,
        compile: bool = False,
        tiling: TileConfig | None = TileConfig(),
    ) -> None:
        self.models = models
        self.family = models.family
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.stage_a, self.encoder, self.stage_b = models.stage_a, models.encoder, models.stage_b
        self.clip_uncond = models.clip_uncond
        self.gdf = build_gdf(self.family.diffusion)
        self.autocast = resolve_autocast(autocast, self.family.autocast, self.device, self.dtype)
        self.channels_last = channels_last
        self.tiling = tiling
        layout = torch.channels_last if channels_last else torch.contiguous_format
        for module in (self.stage_a, self.encoder, self.stage_b):
            module.to(memory_format=layout)
        self._stage_b_forward = torch.compile(self.stage_b, dynamic=True) if compile else self.stage_b

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    # ------------------------------------------------------------------ geometry
    @property
    def effnet_factor(self) -> float:
        return float(self.family.effnet_factor)

    @property
    def min_side(self) -> int:
        """The smallest side stage B's levels can halve down to: 64 for an f4 stage A, 128 for f8."""
        return max(MIN_SIDE, self.stage_a.downscale * self.stage_b.patch_size * 2 ** (self.stage_b.levels - 1))

    def padded_size(self, width: int, height: int) -> tuple[int, int]:
        """The size the models see: each side rounded up to a multiple of 32, at least `min_side`."""
        return tuple(max(self.min_side, math.ceil(side / PAD_MULTIPLE) * PAD_MULTIPLE) for side in (width, height))

    def latent_hw(self, width: int, height: int) -> tuple[int, int]:
        """The stage A latent grid (rows, cols) that stage B generates for a picture of this size."""
        pw, ph = self.padded_size(width, height)
        return (ph // self.stage_a.downscale, pw // self.stage_a.downscale)

    def latent_shape(self, width: int, height: int) -> tuple[int, int, int]:
        """(channels, rows, cols) of the conditioning latent of a picture of this size."""
        pw, ph = self.padded_size(width, height)
        eh, ew = effnet_input_size(ph, pw, self.effnet_factor)
        return (self.encoder.c_latent, eh // 32, ew // 32)

    # ------------------------------------------------------------------ encode
    @torch.inference_mode()
    def encode_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0,1] pixels (B,3,H,W) → the conditioning latents (B,16,h,w), float32 on the CPU."""
        _, _, height, width = pixels.shape
        pw, ph = self.padded_size(width, height)
        # Edge replication, not zeros: a hard border would spend bits on an edge that isn't there.
        padded = F.pad(pixels.to(self.device), (0, pw - width, 0, ph - height), mode="replicate")
        padded = effnet_resize(padded, self.effnet_factor)
        with self._autocast():
            return encoder_latent(self.encoder, self.stage_a, self._layout(padded.to(self.dtype)), self.tiling).float().cpu()

    # ------------------------------------------------------------------ generate
    def finish_pixels(self, latents: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Stage A's output → the final [0,1] pictures: matched to the thumbnail the latent
        carries (models that carry one), then clamped. `latents` (B,16,h,w), `pixels` (B,3,32h,32w)."""
        thumb = self.encoder.thumbnail(latents.to(pixels.device).float())
        if thumb is not None:
            pixels = match_thumbnail(pixels.float(), thumb)
        return pixels.float().clamp(0, 1)

    def direct_decode(self, latents: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Conditioning latents (B,16,h,w) → [0,1] pictures (B,3,H,W) through the deterministic
        path alone (stage B's direct head, stage A's decoder, the thumbnail match); not tiled,
        and differentiable: what a latent search follows. Needs a stage B with a direct head."""
        width, height = size
        with self._autocast():
            estimate = self.stage_b.direct_estimate(latents.to(self.device, self.dtype), self.latent_hw(width, height))
            decoded = self.stage_a.decode(self._layout(estimate))
        return self.finish_pixels(latents, decoded.float())[:, :, :height, :width]

    @torch.inference_mode()
    def generate(
        self,
        latents: torch.Tensor,
        size: tuple[int, int],
        settings: DecodeSettings,
        *,
        noise: Literal["shared", "independent"] | NoiseBlend = "shared",
        init: torch.Tensor | None = None,
        t_start: float = 1.0,
        progress: ProgressFn | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditioning latents (B,16,h,w) → ([0,1] pictures (B,3,H,W) on the CPU, the stage A
        latents they decode from) for `size` = (width, height).

        `noise="shared"`: every picture of the batch gets the same initial and per-step noise
        (one draw from `settings.seed`: video frames that do not flicker); "independent": one
        draw per picture. For B = 1 the two are the same. A `NoiseBlend` mixes two seeds' noise
        per picture (interpolation; `settings.seed` is then unused). With `init` (stage A latents of the
        batch's size) and `t_start < 1`, sampling starts from `init` noised to `t_start`
        (partial diffusion). Above `self.tiling`'s threshold stage B and stage A run in blended
        tiles (`tiling.py`); the sampler, its noise and CFG still run on the full-size latent.
        """
        if not isinstance(noise, NoiseBlend) and noise not in ("shared", "independent"):
            raise UsageError(f"noise must be 'shared', 'independent' or a NoiseBlend, got {noise!r}")
        if isinstance(noise, NoiseBlend) and len(noise.alphas) != latents.shape[0]:
            raise UsageError(f"a NoiseBlend needs one alpha per picture: {len(noise.alphas)} for {latents.shape[0]}")
        width, height = size
        batch = latents.shape[0]
        latent_hw = self.latent_hw(width, height)
        tiled = self.tiling is not None and self.tiling.wants_tiles(latent_hw)
        cond = latents.to(self.device, self.dtype)
        clip = self.clip_uncond.to(self.device, self.dtype).reshape(1, 1, -1).expand(batch, -1, -1)
        guided = settings.guidance > 1.0
        if guided:  # [cond; uncond] in one batch: a zero latent is the unconditional branch
            cond = torch.cat([cond, torch.zeros_like(cond)])
            clip = torch.cat([clip, clip])
        conditions = self.stage_b.encode_conditions(cond, clip, latent_hw=latent_hw)

        def forward(x: torch.Tensor, r: torch.Tensor, cond: Any) -> torch.Tensor:
            return self._stage_b_forward(self._layout(x.to(self.dtype)), r.to(self.dtype), cond=cond)

        if tiled:
            predict = tiled_stage_b(self.stage_b, conditions, self.tiling, forward=forward)
        else:
            def predict(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
                return forward(x, r, conditions)

        def model(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            return predict(x, r).float()

        generator = torch.Generator().manual_seed(settings.seed)
        shape = (batch, self.stage_a.c_latent, *latent_hw)
        noise_fn = None
        if isinstance(noise, NoiseBlend):
            gen_a, gen_b = torch.Generator().manual_seed(noise.seed_a), torch.Generator().manual_seed(noise.seed_b)
            alphas = torch.tensor(noise.alphas, dtype=torch.float32)
            one = (1, *shape[1:])
            x_noise = slerp(torch.randn(one, generator=gen_a), torch.randn(one, generator=gen_b), alphas).to(self.device)

            def noise_fn(step: int, like: torch.Tensor) -> torch.Tensor:
                one = (1, *like.shape[1:])
                drawn = slerp(torch.randn(one, generator=gen_a), torch.randn(one, generator=gen_b), alphas)
                return drawn.to(device=like.device, dtype=like.dtype)
        elif noise == "shared":
            x_noise = torch.randn((1, *shape[1:]), generator=generator).expand(shape).to(self.device)

            def noise_fn(step: int, like: torch.Tensor) -> torch.Tensor:
                drawn = torch.randn((1, *like.shape[1:]), generator=generator)
                return drawn.expand_as(like).to(device=like.device, dtype=like.dtype)
        else:
            x_noise = torch.randn(shape, generator=generator).to(self.device)
        callback = None
        if progress is not None:
            progress(0, settings.steps)

            def callback(i: int, *_: Any) -> None:
                progress(i + 1, settings.steps)

        # One autocast context around all steps, so bf16 weight casts are made once per decode.
        with self._autocast():
            base = self.stage_b.direct_estimate(cond[:batch], latent_hw)
            base = None if base is None else base.float()
            x_init = x_noise
            if init is not None and t_start < 1.0:
                # The sampler works on the residual around the direct estimate (models with one).
                start = init.to(self.device).float() - (0 if base is None else base)
                x_init = self.gdf.diffuse(start, t=t_start, noise=x_noise).x_t
            else:
                t_start = 1.0
            z = sample(
                model,
                x_init,
                self.gdf,
                steps=settings.steps,
                sampler=settings.sampler,
                t_start=t_start,
                cfg=settings.guidance if guided else None,
                cfg_rho=settings.cfg_rescale,
                generator=generator,
                noise_fn=noise_fn,
                callback=callback,
            )
        if base is not None:  # the sampler generated the residual around the direct estimate
            z = z + base
        with self._autocast():  # the family's measured choice covers stage A too (TAEF2: 2× in bf16)
            stage_a_in = self._layout(z.to(self.dtype))
            decoded = tiled_stage_a_decode(self.stage_a, stage_a_in, self.tiling) if tiled else self.stage_a.decode(stage_a_in)
        pixels = self.finish_pixels(latents, decoded)
        return pixels[:, :, :height, :width].cpu(), z
