"""A training recipe as data: the three model configs, both phases, and the weighted loss terms."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neurcodec.diffusion import GDFConfig
from neurcodec.errors import UsageError
from neurcodec.losses import TERMS
from neurcodec.models.configs import EffNetConfig, StageAConfig, StageBConfig, TaesdConfig, config_from_dict

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
# Configs (and checkpoints) written before the terms were listed by name kept their weights in
# these fields; they load as the same recipe.
_LEGACY_WEIGHTS = {"one_step_weight": "one_step_pixel", "direct_latent_weight": "direct_latent", "adversarial_weight": "adversarial"}


@dataclass
class PhaseConfig:
    steps: int
    batch_size: int  # the global batch: split across processes and accumulation micro-batches
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
    # The joint phase's loss: term name (see `neurcodec.losses.TERMS`) → weight.
    losses: dict[str, float] = field(default_factory=lambda: {"diffusion": 1.0})
    effnet_factor: float = 1.0
    # Quantisation seen in training: step Δ drawn log-uniformly per sample; a fraction of the
    # batch is rounded exactly (straight-through), the rest gets the uniform-noise proxy.
    step_range: tuple[float, float] = (0.3, 4.0)
    round_fraction: float = 0.5
    cond_dropout: float = 0.1
    ema_decay: float = 0.999
    latent_noise: float = 0.1  # decoder robustness: stage A decodes noisy latents in training
    # The one-step decode (x0 predicted from pure noise at t = 1) of the first `one_step_batch`
    # samples of each global batch is decoded by the frozen stage A for the pixel terms. Plain
    # min-SNR gives t ≈ 1 almost no weight, so without it the first sampling step — the one
    # every decode starts from — is a blurry MSE guess in latent space.
    one_step_batch: int = 0
    # Crop side for the one-step samples (0: the joint phase's own crops, reused). Larger crops
    # let the 5-scale MS-SSIM use the metric's 11-px window and see whole-object structure.
    one_step_crop: int = 0
    # Side (pixels, a multiple of 32) of the window of each one-step sample that stage A decodes
    # and the pixel loss and critic see (0: the whole crop). Stage B and the encoder still see
    # the whole crop; the decoder at full resolution is most of a step's cost, so a 128-px window
    # of a 256-px crop makes it ~4× cheaper (benchmarks/train_speed.py). Drawn per sample.
    one_step_window: int = 0
    # The critic of the "adversarial" term learns from the start; the decoder gets its hinge
    # loss from `adversarial_start` steps into the joint phase on (a critic that knows something first).
    adversarial_start: int = 0
    disc_lr: float = 2e-4
    disc_widths: tuple[int, ...] = (32, 64, 128, 256)
    # Micro-batches per optimizer step (each process): the same update as a batch that many
    # times larger, in that much less memory.
    grad_accumulation: int = 1
    # Mixed precision of the joint step's forward passes ("bfloat16" or None = fp32) and the
    # conv memory layout: measured faster on these CPUs (benchmarks/train_speed.py).
    autocast: str | None = None
    channels_last: bool = False
    checkpoint_minutes: float = 5.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.losses) - set(TERMS))
        if unknown:
            raise UsageError(f"training config {self.name!r}: unknown loss terms {unknown} (known: {', '.join(TERMS)})")
        if self.weight("adversarial") and not self.one_step:
            raise UsageError(f"training config {self.name!r}: the adversarial term needs the one-step loss (one_step_pixel, one_step_batch)")

    def weight(self, term: str) -> float:
        return float(self.losses.get(term, 0.0))

    @property
    def one_step(self) -> bool:
        """Whether each step decodes one-step samples to pixels (for the pixel and adversarial terms)."""
        return self.weight("one_step_pixel") > 0 and self.one_step_batch > 0

    @classmethod
    def load(cls, name_or_path: str | Path) -> TrainConfig:
        path = Path(name_or_path)
        if not path.suffix:
            path = CONFIG_DIR / f"{name_or_path}.json"
        if not path.is_file():
            known = ", ".join(iter_config_names())
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
        legacy = {term: data.pop(key) for key, term in _LEGACY_WEIGHTS.items() if key in data}
        if "losses" not in data:
            data["losses"] = {"diffusion": 1.0, **{term: w for term, w in legacy.items() if w}}
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


def iter_config_names() -> Iterator[str]:
    return (p.stem for p in sorted(CONFIG_DIR.glob("*.json")))
