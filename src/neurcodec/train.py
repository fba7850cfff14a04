"""Training: stage A (a VQGAN f4 trained here, or a pretrained autoencoder loaded with
`load_stage_a`), then the encoder and stage B jointly under the diffusion loss.

The recipe is "sample what you can't compress": the EfficientNet latent is quantised (with the
same rounding the bitstream uses, or its uniform-noise proxy) and dropped to zeros with a small
probability for classifier-free guidance; stage B learns to generate the frozen stage A latent
conditioned on it. Everything runs unchanged on CPU or CUDA; a run checkpoints periodically and
resumes from its own checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from neurcodec.diffusion import GDFConfig, build_gdf
from neurcodec.errors import InputError, UsageError
from neurcodec.models.configs import EffNetConfig, StageAConfig, StageBConfig, TaesdConfig, config_from_dict
from neurcodec.models.discriminator import PatchDiscriminator
from neurcodec.models.thumbnail import match_thumbnail
from neurcodec.pipeline import resolve_autocast

CONFIG_DIR = Path(__file__).with_name("configs")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


@dataclass
class PhaseConfig:
    steps: int
    batch_size: int
    crop: int
    lr: float
    warmup: int = 200


@dataclass
class TrainConfig:
    """One training recipe: the three model configs plus both phases' hyperparameters."""

    name: str
    stage_a: StageAConfig | TaesdConfig
    encoder: EffNetConfig
    stage_b: StageBConfig
    stage_a_phase: PhaseConfig
    joint_phase: PhaseConfig
    diffusion: GDFConfig = field(default_factory=lambda: GDFConfig("x0", "min_snr"))
    effnet_factor: float = 1.0
    # Quantisation seen in training: step Δ drawn log-uniformly per sample; a fraction of the
    # batch is rounded exactly (straight-through), the rest gets the uniform-noise proxy.
    step_range: tuple[float, float] = (0.3, 4.0)
    round_fraction: float = 0.5
    cond_dropout: float = 0.1
    ema_decay: float = 0.999
    latent_noise: float = 0.1  # decoder robustness: stage A decodes noisy latents in training
    # The one-step decode (x0 predicted from pure noise at t = 1) also gets a pixel loss through
    # the frozen stage A decoder: (1 − MS-SSIM)·0.84 + L1·0.16 on `one_step_batch` samples of
    # each batch. Plain min-SNR gives t ≈ 1 almost no weight, so without it the first sampling
    # step — the one every decode starts from — is a blurry MSE guess in latent space.
    one_step_weight: float = 0.0
    one_step_batch: int = 0
    # Crop side for the one-step samples (0: the joint phase's own crops, reused). Larger crops
    # let the 5-scale MS-SSIM use the metric's 11-px window and see whole-object structure.
    one_step_crop: int = 0
    # Side (pixels, a multiple of 32) of the window of each one-step sample that stage A decodes
    # and the pixel loss and critic see (0: the whole crop). Stage B and the encoder still see
    # the whole crop; the decoder at full resolution is most of a step's cost, so a 128-px window
    # of a 256-px crop makes it ~4× cheaper (benchmarks/train_speed.py). Drawn per sample.
    one_step_window: int = 0
    # Keeps the direct head's estimate near the true latent (MSE in latent space): the pixel
    # loss alone cannot, where stage A's decoder saturates (TAESD soft-clamps its input), and
    # an estimate drifting out of range makes the residual stage B learns explode.
    direct_latent_weight: float = 0.0
    # Adversarial term on the one-step decode (needs the one-step loss): a patch critic learns
    # from the start; the decoder gets its hinge loss, times this weight, from
    # `adversarial_start` steps into the joint phase on (a critic that knows something first).
    adversarial_weight: float = 0.0
    adversarial_start: int = 0
    disc_lr: float = 2e-4
    disc_widths: tuple[int, ...] = (32, 64, 128, 256)
    # Mixed precision of the joint step's forward passes ("bfloat16" or None = fp32) and the
    # conv memory layout: measured faster on these CPUs (benchmarks/train_speed.py).
    autocast: str | None = None
    channels_last: bool = False
    checkpoint_minutes: float = 5.0

    @classmethod
    def load(cls, name_or_path: str | Path) -> TrainConfig:
        path = Path(name_or_path)
        if not path.suffix:
            path = CONFIG_DIR / f"{name_or_path}.json"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
            raise UsageError(f"no training config {name_or_path!r} (known: {known}, or a path to a .json)")
        return cls.from_dict(json.loads(path.read_text()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["stage_a"] = config_from_dict({"kind": "stage_a", **data["stage_a"]})  # "kind": "taesd" wins
        data["encoder"] = config_from_dict({"kind": "effnet", **data["encoder"]})
        data["stage_b"] = config_from_dict({"kind": "stage_b", **data["stage_b"]})
        data["stage_a_phase"] = PhaseConfig(**data["stage_a_phase"])
        data["joint_phase"] = PhaseConfig(**data["joint_phase"])
        if "diffusion" in data:
            data["diffusion"] = GDFConfig(**data["diffusion"])
        for key in ("step_range", "disc_widths"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("encoder", "stage_b"):
            out[key] = {k: v for k, v in getattr(self, key).to_dict().items() if k != "kind"}
        out["stage_a"] = self.stage_a.to_dict()  # its kind says which stage A (VQGAN or TAESD)
        return out


# ----------------------------------------------------------------------------------- data
def find_images(data_dir: Path) -> list[Path]:
    if not data_dir.is_dir():
        raise InputError(f"training data folder not found: {data_dir}")
    paths = sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {data_dir}")
    return paths


def load_images(paths: list[Path], min_side: int) -> list[Tensor]:
    """All training images as uint8 (3,H,W) tensors in memory (the set is small)."""
    images = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if min(im.size) < min_side:  # upscale tiny images so every crop is valid
                scale = min_side / min(im.size)
                im = im.resize((math.ceil(im.width * scale), math.ceil(im.height * scale)), Image.BICUBIC)
            images.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    return images


class CropSampler:
    """Random crops (aligned to `align` px so stage A latents crop consistently) + h-flips."""

    def __init__(self, images: list[Tensor], crop: int, align: int, rng: random.Random) -> None:
        self.images, self.crop, self.align, self.rng = images, crop, align, rng

    def positions(self, batch: int) -> list[tuple[int, int, int, bool]]:
        out = []
        for _ in range(batch):
            i = self.rng.randrange(len(self.images))
            _, h, w = self.images[i].shape
            y = self.rng.randrange((h - self.crop) // self.align + 1) * self.align
            x = self.rng.randrange((w - self.crop) // self.align + 1) * self.align
            out.append((i, y, x, self.rng.random() < 0.5))
        return out

    def pixels(self, pos: list[tuple[int, int, int, bool]]) -> Tensor:
        crops = []
        for i, y, x, flip in pos:
            c = self.images[i][:, y : y + self.crop, x : x + self.crop]
            crops.append(c.flip(-1) if flip else c)
        return torch.stack(crops).float() / 255.0


# ------------------------------------------------------------------------------ helpers
def lr_at(step: int, phase: PhaseConfig) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < phase.warmup:
        return phase.lr * (step + 1) / phase.warmup
    progress = min(1.0, (step - phase.warmup) / max(1, phase.steps - phase.warmup))
    return phase.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    # One multi-tensor call instead of a kernel per parameter (hundreds of small tensors).
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _adamw(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.AdamW:  # type: ignore[no-untyped-def]
    """AdamW with the fused kernel where PyTorch has one (one pass over all parameters)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=0.0, fused=fused or None)


def quantize_for_training(latent: Tensor, step_range: tuple[float, float], round_fraction: float) -> Tensor:
    """What the decoder will see after the bitstream: x → Δ·round(x/Δ) (or x + Δ·U(−½,½))."""
    b = latent.shape[0]
    lo, hi = math.log(step_range[0]), math.log(step_range[1])
    step = torch.exp(torch.empty(b, 1, 1, 1, device=latent.device).uniform_(lo, hi))
    rounded = latent + (torch.round(latent / step) * step - latent).detach()
    noisy = latent + (torch.rand_like(latent) - 0.5) * step
    use_round = (torch.rand(b, 1, 1, 1, device=latent.device) < round_fraction).to(latent.dtype)
    return use_round * rounded + (1 - use_round) * noisy


# ------------------------------------------------------------------------------ trainer
class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        data_dir: Path,
        out_dir: Path,
        *,
        device: str = "cpu",
        seed: int = 0,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config, self.data_dir, self.out_dir = config, Path(data_dir), Path(out_dir)
        self.device = torch.device(device)
        self.log = log
        self.rng = random.Random(seed)
        torch.manual_seed(seed)
        self.stage_a = config.stage_a.build().to(self.device)
        self.encoder = config.encoder.build().to(self.device)
        self.stage_b = config.stage_b.build().to(self.device)
        self.ema_encoder = config.encoder.build().to(self.device).requires_grad_(False)
        self.ema_stage_b = config.stage_b.build().to(self.device).requires_grad_(False)
        self.ema_encoder.load_state_dict(self.encoder.state_dict())
        self.ema_stage_b.load_state_dict(self.stage_b.state_dict())
        self.gdf = build_gdf(config.diffusion)
        self.opt_a = _adamw(self.stage_a.parameters(), config.stage_a_phase.lr, (0.9, 0.99), self.device)
        params = list(self.encoder.parameters()) + list(self.stage_b.parameters())
        self.opt_b = _adamw(params, config.joint_phase.lr, (0.9, 0.99), self.device)
        self.disc: PatchDiscriminator | None = None
        if config.adversarial_weight > 0:
            if not (config.one_step_weight > 0 and config.one_step_batch > 0):
                raise UsageError(f"training config {config.name!r}: adversarial_weight needs the one-step loss (one_step_weight, one_step_batch)")
            self.disc = PatchDiscriminator(config.disc_widths).to(self.device)
            self.opt_d = _adamw(self.disc.parameters(), config.disc_lr, (0.5, 0.9), self.device)
        self.phase = "stage_a"
        self.step = 0
        self.elapsed = 0.0  # seconds of training, summed over resumed runs
        self.prior_joint_steps = 0  # joint steps of the model given to --init
        self.latent_scale: float | None = None
        self.stage_a_source: str | None = None  # where pretrained stage A weights came from
        self.images: list[Tensor] | None = None
        self.latent_cache: list[Tensor] | None = None
        self.bf16 = self._resolve_bf16()
        if config.channels_last:
            for module in (self.stage_a, self.encoder, self.stage_b, self.ema_encoder, self.ema_stage_b, self.disc):
                if module is not None:
                    module.to(memory_format=torch.channels_last)

    @property
    def downscale(self) -> int:
        return self.stage_a.downscale

    @property
    def pretrained_stage_a(self) -> bool:
        """A stage A that is not trained here (its phase has no steps): it must be loaded."""
        return self.config.stage_a_phase.steps == 0

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _resolve_bf16(self) -> bool:
        """The config's bf16 autocast where the hardware does bf16 natively (as decoding does):
        on a CPU without AVX-512-bf16 or AMX it emulates bf16 and a joint step measured 14×
        slower than fp32 (77 s against 5.5 s, AMD EPYC with AVX2 only)."""
        if self.config.autocast not in (None, "bfloat16"):
            raise UsageError(f"training config {self.config.name!r}: autocast must be \"bfloat16\" or null, got {self.config.autocast!r}")
        if self.config.autocast is None:
            return False
        if resolve_autocast(None, "bfloat16", self.device, torch.float32) == torch.bfloat16:
            return True
        self.log(f"bf16 autocast off: {self.device.type} has no native bf16 here; training in float32")
        return False

    def load_stage_a(self, path: Path) -> None:
        """Pretrained stage A weights: a folder with a TAESD pair (`*_encoder.pth`,
        `*_decoder.pth`) or a model exported by `--export` (its `stage_a.` tensors)."""
        path = Path(path)
        if path.is_dir():
            state = {}
            for part in ("encoder", "decoder"):
                found = sorted(path.glob(f"*_{part}.pth"))
                if len(found) != 1:
                    raise InputError(f"--stage-a: expected one *_{part}.pth in {path}, found {len(found)}")
                tensors = torch.load(found[0], map_location="cpu", weights_only=True)
                state.update({f"{part}.{k}": v for k, v in tensors.items()})
        elif path.suffix == ".safetensors" and path.is_file():
            from safetensors.torch import load_file

            state = {k[len("stage_a."):]: v for k, v in load_file(str(path)).items() if k.startswith("stage_a.")}
        else:
            raise InputError(f"--stage-a: {path} is neither a folder of .pth files nor a .safetensors model")
        try:
            self.stage_a.load_state_dict({k: v.float() for k, v in state.items()})
        except RuntimeError as exc:
            raise InputError(f"--stage-a: {path} does not fit stage A of config {self.config.name!r}: {str(exc).splitlines()[0]}") from None
        self.stage_a_source = str(path)

    # ---------------------------------------------------------------- checkpointing
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": json.loads(json.dumps(self.config.to_dict())),  # plain types: loads with weights_only
            "phase": self.phase,
            "step": self.step,
            "elapsed": self.elapsed,
            "prior_joint_steps": self.prior_joint_steps,
            "latent_scale": self.latent_scale,
            "stage_a_source": self.stage_a_source,
            "stage_a": self.stage_a.state_dict(),
            "encoder": self.encoder.state_dict(),
            "stage_b": self.stage_b.state_dict(),
            "ema_encoder": self.ema_encoder.state_dict(),
            "ema_stage_b": self.ema_stage_b.state_dict(),
            "opt_a": self.opt_a.state_dict(),
            "opt_b": self.opt_b.state_dict(),
            "rng": self.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            **({"disc": self.disc.state_dict(), "opt_d": self.opt_d.state_dict()} if self.disc is not None else {}),
        }

    def save_checkpoint(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self) -> None:
        from neurcodec.models.effnet import EffNetStage

        # weights_only: a planted checkpoint runs no code. EffNetStage: in older checkpoints' configs.
        with torch.serialization.safe_globals([EffNetStage]):
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        self.stage_a_source = state.get("stage_a_source")
        for name in ("stage_a", "encoder", "stage_b", "ema_encoder", "ema_stage_b"):
            getattr(self, name).load_state_dict(state[name])
        self.opt_a.load_state_dict(state["opt_a"])
        self.opt_b.load_state_dict(state["opt_b"])
        if self.disc is not None and "disc" in state:  # a run that adds the critic starts it fresh
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])
        self.phase, self.step, self.elapsed = state["phase"], state["step"], state["elapsed"]
        self.latent_scale = state["latent_scale"]
        self.prior_joint_steps = state.get("prior_joint_steps", 0)
        if self.latent_scale is not None:
            self.stage_a.scale_factor = self.latent_scale
        self.rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])

    def init_from_bundle(self, path: Path) -> dict[str, Any]:
        """Start from an exported model: its stage A (frozen, with its latent scale) and its EMA
        encoder + stage B, then train the joint phase from step 0 (a continuation or fine-tune).
        The bundle's recorded training time is carried over; its record is returned."""
        from safetensors.torch import load_file

        from neurcodec.zoo import bundle_metadata

        if not path.is_file():
            raise InputError(f"--init: no such model file {path}")
        meta = bundle_metadata(path)
        if not meta or "stage_a" not in meta:
            raise InputError(f"--init: {path} is not a model exported by `neurcodec train --export`")
        donor_b = config_from_dict(meta["stage_b"])
        # A model can start a direct head, or grow refine blocks on its head: both start as a
        # no-op (a zero head, identity blocks), so the continued model begins as the same model.
        wanted = self.config.stage_b
        adds_head = not donor_b.c_direct and bool(wanted.c_direct)
        grows_head = donor_b.c_direct == wanted.c_direct and donor_b.direct_refine < wanted.direct_refine
        if adds_head or grows_head:
            donor_b = replace(donor_b, c_direct=wanted.c_direct, direct_refine=wanted.direct_refine)
        if donor_b != wanted or config_from_dict(meta["encoder"]) != self.config.encoder:
            raise UsageError(f"--init: {path} was trained with other model shapes than config {self.config.name!r}")
        tensors = load_file(str(path))
        if adds_head or grows_head:
            fresh = {f"stage_b.direct_head.{k}": v for k, v in self.stage_b.direct_head.state_dict().items()}
            tensors = {**fresh, **tensors} if grows_head else {**tensors, **fresh}
        for prefix, modules in (
            ("stage_a.", (self.stage_a,)),
            ("encoder.", (self.encoder, self.ema_encoder)),
            ("stage_b.", (self.stage_b, self.ema_stage_b)),
        ):
            state = {k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
            for module in modules:
                module.load_state_dict(state)
        self.latent_scale = float(meta["stage_a"]["scale_factor"])
        self.stage_a.scale_factor = self.latent_scale
        self.stage_a_source = str(path)
        self.phase, self.step = "joint", 0
        record = meta.get("training", {})
        self.elapsed = float(record.get("train_seconds", 0.0))
        self.prior_joint_steps = int(record.get("joint_steps", 0))
        return record

    # ---------------------------------------------------------------- phases
    def _load_data(self) -> None:
        if self.images is None:
            crop = max(self.config.stage_a_phase.crop, self.config.joint_phase.crop, self.config.one_step_crop)
            paths = find_images(self.data_dir)
            self.log(f"loading {len(paths)} training images from {self.data_dir}")
            self.images = load_images(paths, crop)

    def stage_a_step(self, sampler: CropSampler) -> dict[str, float]:
        phase = self.config.stage_a_phase
        for group in self.opt_a.param_groups:
            group["lr"] = lr_at(self.step, phase)
        x = sampler.pixels(sampler.positions(phase.batch_size)).to(self.device)
        self.stage_a.train()
        raw = self.stage_a.encode_raw(x)
        _, _, vq_loss = self.stage_a.vquantizer(raw.detach(), dim=1)  # codebook only follows
        noise = torch.randn_like(raw) * torch.rand(raw.shape[0], 1, 1, 1, device=raw.device) * self.config.latent_noise
        recon = self.stage_a.decode((raw + noise) / self.stage_a.scale_factor)
        l1, l2 = F.l1_loss(recon, x), F.mse_loss(recon, x)
        loss = l1 + l2 + vq_loss
        self.opt_a.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.stage_a.parameters(), 1.0)
        self.opt_a.step()
        return {"loss": loss.item(), "l1": l1.item(), "psnr": -10 * math.log10(max(l2.item(), 1e-10))}

    @torch.no_grad()
    def finish_stage_a(self) -> None:
        """Set stage A's latent scale so the diffusion target has unit std (it is frozen from here on)."""
        self.stage_a.eval()
        assert self.images is not None
        sample = [img[:, :256, :256].float()[None] / 255.0 for img in self.images[:64]]
        raws = torch.cat([self.stage_a.encode_raw(x.to(self.device)).flatten() for x in sample])
        self.latent_scale = float(raws.std())
        self.stage_a.scale_factor = self.latent_scale
        self.log(f"stage A done: latent scale {self.latent_scale:.4f}")

    @torch.no_grad()
    def build_latent_cache(self) -> None:
        """Stage A latents of every whole training image, computed once (stage A is frozen)."""
        assert self.images is not None
        # Every joint run (fresh, resumed or --init) starts here: stage A trains no further.
        self.stage_a.eval().requires_grad_(False)
        self.opt_a.zero_grad(set_to_none=True)
        # A run folder keeps them on disk: a resumed run (a new process) skips recomputing.
        key = {"stage_a": self.stage_a_source, "scale": self.latent_scale, "sizes": [list(img.shape) for img in self.images]}
        path = self.out_dir / "latent_cache.pt"
        if path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("key") == key:
                self.latent_cache = saved["latents"]
                return
        self.log("caching stage A latents of the training images")
        cache = []
        d = self.downscale
        for img in self.images:
            h, w = img.shape[1] // d * d, img.shape[2] // d * d  # stage A needs multiples of d
            x = img[:, :h, :w].float()[None].to(self.device) / 255.0
            with self.autocast():  # targets in bf16 precision, where training runs in it anyway
                cache.append(self.stage_a.encode(self._layout(x))[0][0].float().contiguous().cpu())
        self.latent_cache = cache
        if self.stage_a_source is not None:  # only pretrained stage A latents are worth keeping
            self.out_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"key": key, "latents": cache}, path.with_suffix(".tmp"))
            os.replace(path.with_suffix(".tmp"), path)

    def joint_step(self, sampler: CropSampler) -> dict[str, float]:
        cfg, phase = self.config, self.config.joint_phase
        assert self.latent_cache is not None
        for group in self.opt_b.param_groups:
            group["lr"] = lr_at(self.step, phase)
        x, z0 = self.crops(sampler, phase.batch_size)
        self.encoder.train()
        self.stage_b.train()
        with self.autocast():
            quantized = self.encode_for_training(x, z0)
        keep = (torch.rand(quantized.shape[0], 1, 1, 1, device=quantized.device) >= cfg.cond_dropout).to(quantized.dtype)
        latent = quantized * keep  # dropped for CFG; the head and the one-step loss always see it
        # With a direct head, stage B learns the residual around the head's estimate (SWYCC);
        # the head itself learns from the one-step pixel loss below.
        with self.autocast():
            base = self.stage_b.direct_estimate(quantized, z0.shape[-2:])
        base = None if base is None else base.float()
        diffused = self.gdf.diffuse(z0 if base is None else z0 - base.detach())
        clip = torch.zeros(latent.shape[0], cfg.stage_b.c_clip, device=self.device)
        one_step = cfg.one_step_weight > 0 and cfg.one_step_batch > 0
        own_crops = one_step and bool(cfg.one_step_crop) and cfg.one_step_crop != phase.crop
        n = 0 if own_crops or not one_step else min(cfg.one_step_batch, latent.shape[0])
        # The one-step samples reuse the first n crops: their stage B pass (pure noise at t = 1)
        # joins the diffusion batch's, one call instead of two.
        noise, log_snr = self._one_step_noise(n, z0.shape[-2:])
        with self.autocast():
            pred = self.stage_b(
                self._layout(torch.cat([diffused.x_t, noise])),
                torch.cat([diffused.noise_cond, self.gdf.noise_cond(log_snr)]),
                torch.cat([latent, quantized[:n]]),
                torch.cat([clip, clip[:n]]),
            ).float()
        pred, pred_one_step = pred[: latent.shape[0]], pred[latent.shape[0] :]
        per_sample = F.mse_loss(pred, diffused.target, reduction="none").mean(dim=(1, 2, 3))
        loss = (per_sample * diffused.loss_weight).mean()
        stats = {"mse": per_sample.mean().item()}
        if base is not None and cfg.direct_latent_weight > 0:
            direct = F.mse_loss(base, z0)
            loss = loss + cfg.direct_latent_weight * direct
            stats["direct_mse"] = direct.item()
        if one_step:
            if own_crops:
                own = CropSampler(sampler.images, cfg.one_step_crop, sampler.align, self.rng)
                xs, zs = self.crops(own, cfg.one_step_batch)
                with self.autocast():
                    qs = self.encode_for_training(xs, zs)
                    bs = self.stage_b.direct_estimate(qs, zs.shape[-2:])
                clip_s = torch.zeros(xs.shape[0], cfg.stage_b.c_clip, device=self.device)
                pixel_loss, ms_ssim, decoded, real = self.one_step_pixel_loss(qs, xs, clip_s, bs)
            else:
                x0 = self.gdf.undiffuse(noise, log_snr, pred_one_step)[0]
                pixel_loss, ms_ssim, decoded, real = self.pixel_loss_of(x0, quantized[:n], x[:n], None if base is None else base[:n])
            loss = loss + cfg.one_step_weight * pixel_loss
            stats["ms_ssim_1step"] = ms_ssim
            if self.disc is not None and self.step >= cfg.adversarial_start:
                self.disc.requires_grad_(False)
                with self.autocast():
                    adversarial = -self.disc(self._layout(decoded)).float().mean()
                self.disc.requires_grad_(True)
                loss = loss + cfg.adversarial_weight * adversarial
                stats["g_adv"] = adversarial.item()
        self.opt_b.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.opt_b.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        self.opt_b.step()
        if self.disc is not None:
            stats["d_loss"] = self.critic_step(real, decoded.detach())
        decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
        ema_update(self.ema_encoder, self.encoder, decay)
        ema_update(self.ema_stage_b, self.stage_b, decay)
        return {"loss": loss.item(), **stats}

    def critic_step(self, real: Tensor, decoded: Tensor) -> float:
        """One hinge-loss step of the patch critic: real crops above +1, decoded below −1."""
        with self.autocast():
            real_scores = self.disc(self._layout(real)).float()
            fake_scores = self.disc(self._layout(decoded)).float()
        loss = F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss.item()

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def crops(self, sampler: CropSampler, batch: int) -> tuple[Tensor, Tensor]:
        """Pixel crops and the matching crops of the cached stage A latents."""
        assert self.latent_cache is not None
        d = self.downscale
        pos = sampler.positions(batch)
        x = sampler.pixels(pos).to(self.device)
        q = sampler.crop // d
        z0 = []
        for i, y, xx, flip in pos:
            z = self.latent_cache[i][:, y // d : y // d + q, xx // d : xx // d + q]
            z0.append(z.flip(-1) if flip else z)
        return self._layout(x), self._layout(torch.stack(z0).to(self.device))

    def encode_for_training(self, x: Tensor, z0: Tensor) -> Tensor:
        """The encoder latent of pixel crops (whose stage A latents are `z0`), quantized as the
        bitstream will quantize it. The thumbnail channels are quantized like the rest."""
        from neurcodec.models.effnet import effnet_resize
        from neurcodec.pipeline import encoder_latent

        cfg = self.config
        if self.encoder.in_channels != 3:
            latent = self.encoder(z0, x)  # what encoder_latent computes, from the cache
        else:
            latent = encoder_latent(self.encoder, self.stage_a, effnet_resize(x, cfg.effnet_factor))
        return quantize_for_training(latent.float(), cfg.step_range, cfg.round_fraction)

    def _one_step_noise(self, n: int, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Stage A latent noise for `n` one-step samples and their log-SNR at t = 1."""
        noise = torch.randn(n, self.config.stage_a.c_latent, *size, device=self.device)
        return noise, self.gdf.schedule(torch.ones(n)).to(self.device)

    def one_step_pixel_loss(self, latent: Tensor, x: Tensor, clip: Tensor, base: Tensor | None = None) -> tuple[Tensor, float, Tensor, Tensor]:
        """Pixel loss of the decode a sampler's first step makes: x0 from pure noise at t = 1
        (plus the direct head's estimate `base`, when the model has a head). Returns what
        `pixel_loss_of` returns."""
        d = self.downscale
        noise, log_snr = self._one_step_noise(x.shape[0], (x.shape[2] // d, x.shape[3] // d))
        with self.autocast():
            pred = self.stage_b(self._layout(noise), self.gdf.noise_cond(log_snr), latent, clip)
        z0, _ = self.gdf.undiffuse(noise, log_snr, pred.float())
        return self.pixel_loss_of(z0, latent, x, base)

    def pixel_loss_of(self, z0: Tensor, latent: Tensor, x: Tensor, base: Tensor | None) -> tuple[Tensor, float, Tensor, Tensor]:
        """0.84·(1 − MS-SSIM) + 0.16·L1 of stage A's decode of `z0` (+ `base`), thumbnail-matched
        to the encoder `latent`, against the pixels `x` — on a `one_step_window` of each sample
        when the config sets one. Returns the loss, its MS-SSIM, the decoded pixels and the
        matching window of `x` (what the critic compares them with)."""
        from pytorch_msssim import ms_ssim

        z = z0 if base is None else z0 + base.float()
        thumb = self.encoder.thumbnail(latent)
        z, x, thumb = self._window(z, x, thumb)
        with self.autocast():
            pixels = self.stage_a.decode(self._layout(z))
        pixels = pixels.float() if thumb is None else match_thumbnail(pixels.float(), thumb)
        # Five scales need crop > 16·(window − 1): 7-px windows at 128² (the metric uses 11 on whole images).
        window = min(11, (min(x.shape[-2:]) - 1) // 16 + 1)
        window -= 1 - window % 2  # odd
        score = ms_ssim(pixels.clamp(0, 1), x, data_range=1.0, win_size=window)
        loss = 0.84 * (1 - score) + 0.16 * F.l1_loss(pixels, x)
        return loss, score.item(), pixels, x

    def _window(self, z: Tensor, x: Tensor, thumb: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """A random `one_step_window`-px window per sample of the latent `z`, the pixels `x` and
        the thumbnail, aligned to the thumbnail's blocks (stage A's cells without a thumbnail);
        the whole crop without a window."""
        side = self.config.one_step_window
        if not side or side >= min(x.shape[-2:]):
            return z, x, thumb
        d = self.downscale
        block = x.shape[-1] // thumb.shape[-1] if thumb is not None else d
        if side % block:
            raise UsageError(f"training config {self.config.name!r}: one_step_window must be a multiple of {block} px, got {side}")
        zs, xs, ts = [], [], []
        for i in range(x.shape[0]):
            top = self.rng.randrange((x.shape[-2] - side) // block + 1) * block
            left = self.rng.randrange((x.shape[-1] - side) // block + 1) * block
            zs.append(z[i, :, top // d : (top + side) // d, left // d : (left + side) // d])
            xs.append(x[i, :, top : top + side, left : left + side])
            if thumb is not None:
                ts.append(thumb[i, :, top // block : (top + side) // block, left // block : (left + side) // block])
        return torch.stack(zs), torch.stack(xs), torch.stack(ts) if thumb is not None else None

    def run(self, *, max_minutes: float | None = None, progress: Callable[[str, int, int, dict], None] | None = None) -> bool:
        """Train until both phases are done or `max_minutes` pass; returns True when finished."""
        cfg = self.config
        if self.phase != "done" and self.pretrained_stage_a and self.stage_a_source is None:
            raise UsageError(f"config {cfg.name!r} uses a pretrained stage A: give its weights with --stage-a")
        self._load_data()
        assert self.images is not None
        deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
        last_ckpt = time.monotonic()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.out_dir / "log.jsonl").open("a")
        try:
            while True:
                if self.phase == "stage_a" and self.step >= cfg.stage_a_phase.steps:
                    self.finish_stage_a()
                    self.phase, self.step = "joint", 0
                    self.save_checkpoint()
                if self.phase == "joint" and self.step >= cfg.joint_phase.steps:
                    self.phase = "done"
                    self.save_checkpoint()
                if self.phase == "done":
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    self.save_checkpoint()
                    return False
                phase_cfg = cfg.stage_a_phase if self.phase == "stage_a" else cfg.joint_phase
                if self.phase == "joint" and self.latent_cache is None:
                    self.build_latent_cache()
                sampler = CropSampler(self.images, phase_cfg.crop, self.downscale, self.rng)
                t0 = time.monotonic()
                stats = self.stage_a_step(sampler) if self.phase == "stage_a" else self.joint_step(sampler)
                self.elapsed += time.monotonic() - t0
                self.step += 1
                if self.step % 25 == 0 or self.step == phase_cfg.steps:
                    log_file.write(json.dumps({"phase": self.phase, "step": self.step, "elapsed": round(self.elapsed, 1), **stats}) + "\n")
                    log_file.flush()
                if progress is not None:
                    progress(self.phase, self.step, phase_cfg.steps, stats)
                if time.monotonic() - last_ckpt >= 60 * cfg.checkpoint_minutes:
                    self.save_checkpoint()
                    last_ckpt = time.monotonic()
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM (see fileio.sigterm_raises)
            self.save_checkpoint()  # an interrupted run resumes from where it stopped
            raise
        finally:
            log_file.close()

    # ---------------------------------------------------------------- export
    def export(self, path: Path, *, dtype: torch.dtype = torch.float16, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the shippable model: one safetensors file (EMA weights, stage prefixes) + its JSON."""
        from safetensors.torch import save_file

        if self.latent_scale is None:
            raise UsageError("the model has not finished stage A training; nothing to export")
        tensors: dict[str, Tensor] = {}
        for prefix, module in (("stage_a.", self.stage_a), ("encoder.", self.ema_encoder), ("stage_b.", self.ema_stage_b)):
            for key, value in module.state_dict().items():
                value = value.detach().cpu().contiguous()  # channels_last training: pack to plain layout
                tensors[prefix + key] = value.to(dtype) if value.is_floating_point() else value
        tensors["clip_uncond"] = torch.zeros(1, 1, self.config.stage_b.c_clip, dtype=dtype)
        stage_a = replace(self.config.stage_a, scale_factor=self.latent_scale)
        joint = self.step if self.phase in ("joint", "done") else 0  # a finished run stops at its own schedule's end
        spec = {
            "stage_a": stage_a.to_dict(),
            "encoder": self.config.encoder.to_dict(),
            "stage_b": self.config.stage_b.to_dict(),
            "effnet_factor": self.config.effnet_factor,
            "diffusion": asdict(self.config.diffusion),
            "training": {
                "config": self.config.name,
                "phase": self.phase,
                "stage_a_steps": self.config.stage_a_phase.steps if self.phase != "stage_a" else self.step,
                **({"stage_a_source": self.stage_a_source} if self.pretrained_stage_a else {}),
                "joint_steps": self.prior_joint_steps + joint,
                "train_seconds": round(self.elapsed),
                **(record or {}),
            },
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={"neurcodec": json.dumps(spec)})
        os.replace(tmp, path)
        return spec


def iter_config_names() -> Iterator[str]:
    return (p.stem for p in sorted(CONFIG_DIR.glob("*.json")))
