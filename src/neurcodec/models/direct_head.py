"""A deterministic path from the EfficientNet latent straight to the stage A latent.

This is the "initial decoder" of *Sample what you can't compress*: it regresses the stage A
latent from the compressed latent in one pass, and the diffusion sampler only generates the
residual on top of it. Each stage doubles the resolution (pixel shuffle), so three widths take
the f32 latent to stage A's f4 grid. Not part of the official Stable Cascade stage B; only
models trained with it (e.g. `tiny`) have one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["DirectHead"]


class _Residual(nn.Module):
    def __init__(self, c: int, *, identity: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.GELU(), nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, c, 3, padding=1))
        if identity:  # a block added to a trained head must not change what it computes
            with torch.no_grad():
                self.body[-1].weight.zero_()
                self.body[-1].bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class DirectHead(nn.Module):
    """(B, c_in, h, w) → (B, c_out, h·2^n, w·2^n) for n = len(widths).

    `refine` residual blocks at the output resolution come after the upsampling; they start as
    the identity, so a trained head can grow them (`neurcodec train --init`) without a change."""

    def __init__(self, c_in: int, c_out: int, widths: Sequence[int], refine: int = 0) -> None:
        super().__init__()
        widths = list(widths)
        self.stem = nn.Conv2d(c_in, widths[0], 3, padding=1)
        layers: list[nn.Module] = []
        for i, width in enumerate(widths):
            after = widths[min(i + 1, len(widths) - 1)]
            layers += [_Residual(width), _Residual(width), nn.Conv2d(width, after * 4, 3, padding=1), nn.PixelShuffle(2)]
        self.body = nn.Sequential(*layers)
        self.refine = nn.Sequential(*(_Residual(widths[-1], identity=True) for _ in range(refine)))
        self.out = nn.Sequential(_Residual(widths[-1]), nn.GELU(), nn.Conv2d(widths[-1], c_out, 3, padding=1))
        with torch.no_grad():  # starts at zero: adding the head to a trained model changes nothing
            self.out[-1].weight.zero_()
            self.out[-1].bias.zero_()

    def forward(self, latent: Tensor) -> Tensor:
        return self.out(self.refine(self.body(self.stem(latent))))
