"""A pretrained tiny autoencoder (TAESD family, here TAEF2: f8 × 32 channels) as stage A.

Layout and key names follow the published `taef2_encoder.pth` / `taef2_decoder.pth`
(`nn.Sequential` indices), so their state dicts load with `strict=True`. It plays stage A's
part: image in [0,1] ⇄ latent, `c_latent` channels at 1/`downscale` of the image size. Unlike
the VQGAN there is no codebook; the decoder was trained adversarially and renders sharp detail.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["TinyAutoencoder"]


def _conv(c_in: int, c_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)


class _SoftClamp(nn.Module):
    """tanh(x / 3) · 3: keeps out-of-range latents (e.g. a sampler's overshoot) decodable."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3) * 3


class _Block(nn.Module):
    """Three 3×3 convs with ReLUs, added to the input; with `pool`, a 1×1 bottleneck branch
    (GroupNorm inside) is added to the input first — global-ish context at low resolution."""

    def __init__(self, c: int, pool: bool = False) -> None:
        super().__init__()
        if pool:
            self.pool = nn.Sequential(
                nn.Conv2d(c, c * 4, 1, bias=False), nn.GroupNorm(4, c * 4), nn.ReLU(), nn.Conv2d(c * 4, c, 1, bias=False)
            )
        else:
            self.pool = None
        self.conv = nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c), nn.ReLU(), _conv(c, c))
        self.fuse = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def _encoder(c: int, c_latent: int, levels: int) -> nn.Sequential:
    layers: list[nn.Module] = [_conv(3, c), _Block(c)]
    for level in range(levels):
        pool = level == levels - 1
        layers += [nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), _Block(c, pool), _Block(c, pool), _Block(c, pool)]
    layers.append(_conv(c, c_latent))
    return nn.Sequential(*layers)


def _decoder(c: int, c_latent: int, levels: int) -> nn.Sequential:
    layers: list[nn.Module] = [_SoftClamp(), _conv(c_latent, c), nn.ReLU(), _Block(c, True), _Block(c, True), _Block(c, True)]
    for level in range(levels):
        last = level == levels - 1
        layers += [nn.Upsample(scale_factor=2), _conv(c, c, bias=False)]
        layers += [_Block(c)] if last else [_Block(c), _Block(c), _Block(c)]
    layers.append(_conv(c, 3))
    return nn.Sequential(*layers)


class TinyAutoencoder(nn.Module):
    """Image in [0,1] (B,3,H,W) ⇄ latent (B,c_latent,H/2^levels,W/2^levels).

    `scale_factor` divides the raw latent so the space stage B models has about unit std.
    """

    def __init__(self, c_hidden: int = 64, c_latent: int = 32, levels: int = 3, scale_factor: float = 1.0) -> None:
        super().__init__()
        self.c_latent = c_latent
        self.downscale = 2**levels
        self.scale_factor = scale_factor
        self.encoder = _encoder(c_hidden, c_latent, levels)
        self.decoder = _decoder(c_hidden, c_latent, levels)

    def encode_raw(self, x: Tensor) -> Tensor:
        """The unscaled latent."""
        return self.encoder(x)

    def encode(self, x: Tensor, quantize: bool = False) -> tuple[Tensor, None, None, None]:
        """Same return shape as the VQGAN's `encode` (there is nothing to quantise here)."""
        return self.encoder(x) / self.scale_factor, None, None, None

    def decode(self, z: Tensor) -> Tensor:
        """Latent (scaled space) → image, unclamped."""
        return self.decoder(z * self.scale_factor)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x)[0])
