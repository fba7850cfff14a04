"""Named model configs: a model family is one of these per stage plus weight files.

Field names are the reference constructor keywords, so `StageB(**cfg.kwargs())` and the
official `StageB(**yaml_config)` mean the same thing. `to_dict`/`from_dict` round-trip through
JSON (e.g. `weights.json`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from torch import nn

from neurcodec.models.effnet import EFFNET_V2_S_STAGES, EffNetStage, EfficientNetEncoder
from neurcodec.models.stage_a import StageA
from neurcodec.models.stage_b import StageB
from neurcodec.models.taesd import TinyAutoencoder

__all__ = [
    "EFFNET_OFFICIAL",
    "EffNetConfig",
    "NAMED_CONFIGS",
    "STAGE_A_OFFICIAL",
    "STAGE_A_SMALL_FIXTURE",
    "STAGE_B_FULL",
    "STAGE_B_LITE",
    "STAGE_B_SMALL_FIXTURE",
    "StageAConfig",
    "StageBConfig",
    "TaesdConfig",
    "config_from_dict",
]


def _tuplify(value: Any) -> Any:
    """Lists (from JSON) → tuples, so configs stay hashable and immutable."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuplify(v) for v in value)
    return value


class _Config:
    kind: ClassVar[str]
    model: ClassVar[type[nn.Module]]

    def kwargs(self) -> dict[str, Any]:
        """Constructor keywords for the model class."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def build(self) -> nn.Module:
        """Construct the module (on the current default device, e.g. under `torch.device('meta')`)."""
        return self.model(**self.kwargs())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        data = {k: v for k, v in data.items() if k != "kind"}
        return cls(**{k: _tuplify(v) for k, v in data.items()})


@dataclass(frozen=True)
class StageAConfig(_Config):
    kind: ClassVar[str] = "stage_a"
    model: ClassVar[type[nn.Module]] = StageA

    levels: int = 2
    bottleneck_blocks: int = 12
    c_hidden: int = 384
    c_latent: int = 4
    codebook_size: int = 8192
    scale_factor: float = 0.43


@dataclass(frozen=True)
class TaesdConfig(_Config):
    """A pretrained tiny autoencoder (TAESD family) used as stage A."""

    kind: ClassVar[str] = "taesd"
    model: ClassVar[type[nn.Module]] = TinyAutoencoder

    c_hidden: int = 64
    c_latent: int = 32
    levels: int = 3
    scale_factor: float = 1.0


@dataclass(frozen=True)
class EffNetConfig(_Config):
    kind: ClassVar[str] = "effnet"
    model: ClassVar[type[nn.Module]] = EfficientNetEncoder

    c_latent: int = 16
    stages: tuple[EffNetStage, ...] = EFFNET_V2_S_STAGES
    width_mult: float = 1.0
    depth_mult: float = 1.0
    last_channel: int = 1280
    stochastic_depth_prob: float = 0.2
    in_channels: int = 3  # 3: pixels; else the channels of stage A's latent it reads
    input_stride: int = 1  # the downscale of that input (stage A's, when it reads the latent)
    thumbnail_gain: float = 0.0  # > 0: the first 3 channels carry the colour thumbnail

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EffNetConfig:
        cfg = super().from_dict(data)
        return cls(**{**cfg.kwargs(), "stages": tuple(EffNetStage(*s) for s in cfg.stages)})


@dataclass(frozen=True)
class StageBConfig(_Config):
    kind: ClassVar[str] = "stage_b"
    model: ClassVar[type[nn.Module]] = StageB

    c_in: int = 4
    c_out: int = 4
    c_r: int = 64
    patch_size: int = 2
    c_cond: int = 1280
    c_hidden: tuple[int, ...] = (320, 640, 1280, 1280)
    nhead: tuple[int, ...] = (-1, -1, 20, 20)
    blocks: tuple[tuple[int, ...], ...] = ((2, 6, 28, 6), (6, 28, 6, 2))
    block_repeat: tuple[tuple[int, ...], ...] = ((1, 1, 1, 1), (3, 3, 2, 2))
    level_config: tuple[str, ...] = ("CT", "CT", "CTA", "CTA")
    c_clip: int = 1280
    c_clip_seq: int = 4
    c_effnet: int = 16
    c_pixels: int = 3
    kernel_size: int = 3
    dropout: tuple[float, ...] = (0, 0, 0.1, 0.1)
    self_attn: bool = True
    t_conds: tuple[str, ...] = ("sca",)
    c_direct: tuple[int, ...] = ()  # widths of the direct head (none in the official models)
    direct_refine: int = 0  # residual blocks after the direct head's upsampling


# --- official Stable Cascade checkpoints (notes §3, §4, §6.1) ---------------------------------
STAGE_A_OFFICIAL = StageAConfig()
EFFNET_OFFICIAL = EffNetConfig()
STAGE_B_FULL = StageBConfig()  # "3B" config, 1,562,941,136 parameters
STAGE_B_LITE = StageBConfig(  # "700M" config, 699,471,248 parameters
    c_hidden=(320, 576, 1152, 1152),
    nhead=(-1, 9, 18, 18),
    blocks=((2, 4, 14, 4), (4, 14, 4, 2)),
    block_repeat=((1, 1, 1, 1), (2, 2, 2, 2)),
)

# --- the parity fixtures' small configs (shared/reference/FIXTURES.md) ------------------------
STAGE_A_SMALL_FIXTURE = StageAConfig(bottleneck_blocks=2, c_hidden=64, codebook_size=512)
STAGE_B_SMALL_FIXTURE = StageBConfig(
    c_cond=48,
    c_hidden=(32, 64, 64, 64),
    nhead=(-1, -1, 2, 2),
    blocks=((1, 1, 2, 1), (1, 2, 1, 1)),
    block_repeat=((1, 1, 1, 1), (3, 3, 2, 2)),
    c_clip=32,
)

# Named once: the registry (weights.json) refers to the official architectures by these names.
NAMED_CONFIGS: dict[str, _Config] = {
    "stage_a_official": STAGE_A_OFFICIAL,
    "effnet_official": EFFNET_OFFICIAL,
    "stage_b_full": STAGE_B_FULL,
    "stage_b_lite": STAGE_B_LITE,
    "stage_a_small_fixture": STAGE_A_SMALL_FIXTURE,
    "stage_b_small_fixture": STAGE_B_SMALL_FIXTURE,
}

_KINDS: dict[str, type[_Config]] = {c.kind: c for c in (StageAConfig, TaesdConfig, EffNetConfig, StageBConfig)}


def config_from_dict(data: dict[str, Any]) -> StageAConfig | TaesdConfig | EffNetConfig | StageBConfig:
    """Rebuild a config from `to_dict()` output (its `kind` picks the class)."""
    try:
        cls = _KINDS[data["kind"]]
    except KeyError as exc:
        raise ValueError(f"model config has unknown kind {data.get('kind')!r}") from exc
    return cls.from_dict(data)
