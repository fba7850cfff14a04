"""What the rest of the codec may ask of each stage: the pipeline, tiling, the latent search and
training use these members and nothing else of a model, so any module meeting a contract (a
trained-here VQGAN, TAESD/TAEF2, the official Stable Cascade stages) plugs in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # the contracts name torch types; checking them needs no torch import
    from torch import Tensor, nn


@runtime_checkable
class StageAContract(Protocol):
    """Pixels in [0,1] ⇄ the latent stage B models (raw latent ÷ `scale_factor`)."""

    downscale: int  # image pixels per latent cell, per side
    c_latent: int
    scale_factor: float

    def encode(self, x: Tensor) -> tuple[Any, ...]: ...  # first item: the latent

    def decode(self, z: Tensor) -> Tensor: ...


@runtime_checkable
class TrainableStageA(StageAContract, Protocol):
    """A stage A that `neurcodec train` can train itself (its own phase): a VQGAN."""

    vquantizer: nn.Module

    def encode_raw(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class EncoderContract(Protocol):
    """The image (or stage A's latent, `in_channels` ≠ 3) → the compressed latent."""

    c_latent: int
    in_channels: int

    def __call__(self, x: Tensor, pixels: Tensor | None = None) -> Tensor: ...

    def thumbnail(self, latent: Tensor) -> Tensor | None: ...  # the colour thumbnail the latent carries, if any


@runtime_checkable
class StageBContract(Protocol):
    """The denoiser over stage A's latent grid, conditioned on the compressed latent."""

    patch_size: int  # latent cells per token side
    levels: int  # resolution levels: the grid must divide by patch_size · 2^(levels − 1)
    direct_head: nn.Module | None  # the one-pass estimate stage B samples around (SWYCC), if any

    def __call__(self, x: Tensor, r: Tensor, effnet: Tensor | None = None, clip: Tensor | None = None, **kwargs: Any) -> Tensor: ...

    def encode_conditions(self, effnet: Tensor, clip: Tensor, *, latent_hw: Sequence[int]) -> Any: ...

    def direct_estimate(self, effnet: Tensor, latent_hw: Sequence[int]) -> Tensor | None: ...
