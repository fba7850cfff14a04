"""The critic of adversarial training: it tells decoded crops from real photos patch by patch.

Training only (never exported): with a pixel loss alone the decoder settles on the blurry mean
of what the latent allows; the critic's gradient pushes it towards detail that looks like a
photo's (the "realism" term of generative codecs such as HiFiC and MS-ILLM).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) pixels in [0, 1] → (B, 1, H/2^n, W/2^n) scores, one per overlapping patch
    (PatchGAN: each score sees a patch a few dozen pixels across, not the whole crop)."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        widths = list(widths)
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(widths[-1], 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.net(pixels * 2 - 1)
