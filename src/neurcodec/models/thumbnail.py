"""The colour thumbnail carried in the first latent channels, and matching a decode to it.

A model with `thumbnail_gain > 0` spends three of its latent channels on the box-filtered
1/32-scale thumbnail of the image, in an orthonormal opponent colour space (so the RGB error
of the thumbnail is the mean of the three channels' quantisation errors, and the two chroma
channels, which vary little, cost few bits). The decoder then shifts its output so that the
output's own thumbnail matches the transmitted one: the layout and colours of the photo are
coded explicitly instead of being hoped for from a learned encoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["THUMBNAIL_CHANNELS", "match_thumbnail", "rgb_to_thumbnail", "thumbnail_to_rgb"]

THUMBNAIL_CHANNELS = 3
_S3, _S2, _S6 = 1 / math.sqrt(3), 1 / math.sqrt(2), 1 / math.sqrt(6)
# Rows: luma, red-blue, green-magenta; orthonormal, so the inverse is the transpose.
_OPPONENT = ((_S3, _S3, _S3), (_S2, 0.0, -_S2), (_S6, -2 * _S6, _S6))


def _matrix(like: Tensor) -> Tensor:
    return torch.tensor(_OPPONENT, dtype=like.dtype, device=like.device)


def rgb_to_thumbnail(pixels: Tensor, factor: int, gain: float) -> Tensor:
    """[0,1] RGB (B,3,H,W), H and W multiples of `factor` → (B,3,H/factor,W/factor) channels."""
    means = F.avg_pool2d(pixels.float(), factor) - 0.5
    return torch.einsum("oc,bchw->bohw", _matrix(means), means) * gain


def thumbnail_to_rgb(channels: Tensor, gain: float) -> Tensor:
    """The inverse of `rgb_to_thumbnail`: latent channels → [0,1] RGB block means."""
    opp = channels.float() / gain
    return torch.einsum("oc,bohw->bchw", _matrix(opp), opp) + 0.5


def match_thumbnail(pixels: Tensor, target: Tensor, iterations: int = 8) -> Tensor:
    """Shift `pixels` (B,3,H,W) by a smooth field so that their block means approach `target`
    (B,3,h,w), H = h·f, and clamp them to [0,1]. Each pass adds the bilinearly upsampled mean
    error, which removes most of the remaining error (box-downsampling a bilinear upsample keeps
    most of a pattern) and adds no block edges. Differentiable (used in training too)."""
    factor = pixels.shape[-1] // target.shape[-1]
    target = target.to(pixels.dtype)
    for _ in range(iterations):
        error = target - F.avg_pool2d(pixels, factor)
        # Clamped every pass, so near black or white the next pass makes up what clamping took.
        pixels = (pixels + F.interpolate(error, scale_factor=factor, mode="bilinear", align_corners=False)).clamp(0, 1)
    return pixels
