"""The EfficientNetV2 encoder that makes Stage B's conditioning latent (f32, 16 channels).

The backbone is torchvision's EfficientNetV2 `features` built from block settings (never from
downloaded weights); the default is EfficientNetV2-S exactly, matching the official
`effnet_encoder.safetensors`. Smaller settings give the tiny variant: the output stride stays
32 and the mapper still emits `c_latent` standardised channels.

ImageNet normalisation and the resize to a multiple of 32 happen outside the module
(`effnet_preprocess`, `effnet_input_size`, `effnet_resize`), as in the reference pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor, nn
from torchvision.models.efficientnet import EfficientNet, FusedMBConvConfig, MBConvConfig, _MBConvConfig

from neurcodec.models.thumbnail import THUMBNAIL_CHANNELS, rgb_to_thumbnail, thumbnail_to_rgb

__all__ = [
    "EFFNET_V2_S_STAGES",
    "EffNetStage",
    "EfficientNetEncoder",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "effnet_input_size",
    "effnet_preprocess",
    "effnet_resize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_STRIDE = 32


class EffNetStage(NamedTuple):
    """One backbone stage: `fused` picks FusedMBConv (else MBConv with squeeze-excitation)."""

    fused: bool
    expand_ratio: float
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    num_layers: int


# torchvision's efficientnet_v2_s setting (stem 3→24 stride 2 comes before these).
EFFNET_V2_S_STAGES: tuple[EffNetStage, ...] = (
    EffNetStage(True, 1, 3, 1, 24, 24, 2),
    EffNetStage(True, 4, 3, 2, 24, 48, 4),
    EffNetStage(True, 4, 3, 2, 48, 64, 4),
    EffNetStage(False, 4, 3, 2, 64, 128, 6),
    EffNetStage(False, 6, 3, 1, 128, 160, 9),
    EffNetStage(False, 6, 3, 2, 160, 256, 15),
)


def _block_configs(
    stages: Sequence[EffNetStage | Sequence], width_mult: float, depth_mult: float
) -> list[_MBConvConfig]:
    configs: list[_MBConvConfig] = []
    for stage in stages:
        s = EffNetStage(*stage)
        cin = _MBConvConfig.adjust_channels(s.in_channels, width_mult)
        cout = _MBConvConfig.adjust_channels(s.out_channels, width_mult)
        layers = int(math.ceil(s.num_layers * depth_mult))
        cls = FusedMBConvConfig if s.fused else MBConvConfig
        configs.append(cls(s.expand_ratio, s.kernel, s.stride, cin, cout, layers))
    return configs


class EfficientNetEncoder(nn.Module):
    """ImageNet-normalised image (B,3,H,W) → standardised latent (B, c_latent, H/32, W/32).

    `stages`, `width_mult`, `depth_mult` and `last_channel` shape the backbone; the defaults
    are EfficientNetV2-S. `stochastic_depth_prob` only acts in training mode.
    """

    def __init__(
        self,
        c_latent: int = 16,
        stages: Sequence[EffNetStage | Sequence] = EFFNET_V2_S_STAGES,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        last_channel: int = 1280,
        stochastic_depth_prob: float = 0.2,
        in_channels: int = 3,
        input_stride: int = 1,
        thumbnail_gain: float = 0.0,
    ) -> None:
        super().__init__()
        configs = _block_configs(stages, width_mult, depth_mult)
        stride = input_stride * 2 * math.prod(c.stride for c in configs)  # the stem has stride 2
        if stride != OUTPUT_STRIDE:
            raise ValueError(f"EfficientNet stages give output stride {stride}, need {OUTPUT_STRIDE}")
        self.c_latent = c_latent
        self.in_channels = in_channels
        self.input_stride = input_stride
        self.thumbnail_gain = thumbnail_gain
        learned = c_latent - (THUMBNAIL_CHANNELS if thumbnail_gain > 0 else 0)
        # Only `.features` is kept; num_classes=1 keeps the discarded classifier negligible.
        net = EfficientNet(
            configs,
            dropout=0.0,
            stochastic_depth_prob=stochastic_depth_prob,
            num_classes=1,
            norm_layer=partial(nn.BatchNorm2d, eps=1e-3),
            last_channel=last_channel,
        )
        self.backbone = net.features
        if in_channels != 3:  # features of a pretrained stage A instead of pixels
            stem = self.backbone[0][0]
            self.backbone[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, stride=2, padding=1, bias=False)
        self.mapper = nn.Sequential(
            nn.Conv2d(last_channel, learned, kernel_size=1, bias=False),
            nn.BatchNorm2d(learned, affine=False),  # mean 0, std 1 latent
        )

    def forward(self, x: Tensor, pixels: Tensor | None = None) -> Tensor:
        """`x`: the ImageNet-normalised image, or stage A's latent when `in_channels != 3`.
        `pixels` ([0,1] RGB, needed with a thumbnail) gives the colour-thumbnail channels."""
        latent = self.mapper(self.backbone(x))
        if self.thumbnail_gain <= 0:
            return latent
        if pixels is None:
            raise ValueError("this encoder carries a colour thumbnail: pass the [0,1] pixels too")
        with torch.autocast(pixels.device.type, enabled=False):  # the thumbnail stays exact fp32
            thumb = rgb_to_thumbnail(pixels.float(), OUTPUT_STRIDE, self.thumbnail_gain).to(latent.dtype)
        return torch.cat([thumb, latent], dim=1)

    def thumbnail(self, latent: Tensor) -> Tensor | None:
        """The [0,1] RGB thumbnail a (dequantised) latent carries, or None without one."""
        if self.thumbnail_gain <= 0:
            return None
        return thumbnail_to_rgb(latent[:, :THUMBNAIL_CHANNELS], self.thumbnail_gain)


def effnet_input_size(height: int, width: int, factor: float = 0.75) -> tuple[int, int]:
    """The encoder input size for an image: each side scaled by `factor`, floored to a
    multiple of 32 (1024² at 3/4 → 768²), but never below 32."""
    return (
        max(OUTPUT_STRIDE, int(height * factor // OUTPUT_STRIDE) * OUTPUT_STRIDE),
        max(OUTPUT_STRIDE, int(width * factor // OUTPUT_STRIDE) * OUTPUT_STRIDE),
    )


def effnet_resize(x: Tensor, factor: float = 0.75) -> Tensor:
    """Nearest-neighbour resize of a [0,1] image batch to `effnet_input_size` (reference recipe);
    the one resize of the encoder input, in training and inference alike."""
    size = effnet_input_size(x.shape[-2], x.shape[-1], factor)
    if size == tuple(x.shape[-2:]):
        return x
    return TF.resize(x, list(size), interpolation=TF.InterpolationMode.NEAREST, antialias=False)


def effnet_preprocess(x: Tensor) -> Tensor:
    """ImageNet normalisation of a [0,1] image batch (applied outside the encoder)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
