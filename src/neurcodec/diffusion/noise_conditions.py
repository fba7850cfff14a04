"""Noise conditions: logSNR λ → the scalar the network is told (the reference's `r`)."""

from __future__ import annotations

import math

import torch

__all__ = ["CosineTNoiseCond"]


class CosineTNoiseCond:
    """The t that the (unclamped, unshifted) cosine schedule maps to λ.

    This equals t inside the schedule's range, but not at the clamped ends: at t = 1 the model
    sees r = 0.993583 and at t = 0 it sees r = 0.0022568. With a shifted schedule the network is
    told the *effective* noise level, which is what it was trained on.
    """

    def __init__(self, s: float = 0.008, shift: float = 1.0) -> None:
        self.s = torch.tensor([s], dtype=torch.float32)
        self.shift = shift
        self.min_var = torch.cos(self.s / (1 + self.s) * torch.pi * 0.5) ** 2

    def __call__(self, log_snr: torch.Tensor) -> torch.Tensor:
        if self.shift != 1:
            log_snr = log_snr + 2 * math.log(self.shift)
        var = log_snr.sigmoid().clamp(0, 1)
        s, min_var = self.s.to(var.device), self.min_var.to(var.device)
        r = (((var * min_var) ** 0.5).acos() / (torch.pi * 0.5)) * (1 + s) - s
        return r.clamp(0, 1)
