"""Input scalers: logSNR λ → (a, b) with x_t = a·x0 + b·ε."""

from __future__ import annotations

import torch

__all__ = ["VPScaler"]


class VPScaler:
    """Variance preserving: a² = sigmoid(λ), b² = 1 − a², so a² + b² = 1 and a²/b² = e^λ."""

    def __call__(self, log_snr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a_squared = log_snr.sigmoid()
        return a_squared.sqrt(), (1 - a_squared).sqrt()
