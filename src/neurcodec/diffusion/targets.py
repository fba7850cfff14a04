"""What the network predicts, and how a prediction turns back into (x0, ε).

Each target is called as `target(x0, eps, a, b)` to build the training target, and offers
`x0(x_t, pred, a, b)` and `eps(x_t, pred, a, b)` to read a prediction. The formulas keep the
reference's operation order so ε-prediction matches it bit for bit.
"""

from __future__ import annotations

import torch

__all__ = ["EpsilonTarget", "X0Target", "VTarget", "TARGETS"]


class EpsilonTarget:
    name = "eps"

    def __call__(self, x0: torch.Tensor, eps: torch.Tensor, a, b) -> torch.Tensor:
        return eps

    def x0(self, x_t: torch.Tensor, pred: torch.Tensor, a, b) -> torch.Tensor:
        return (x_t - pred * b) / a

    def eps(self, x_t: torch.Tensor, pred: torch.Tensor, a, b) -> torch.Tensor:
        return pred


class X0Target:
    name = "x0"

    def __call__(self, x0: torch.Tensor, eps: torch.Tensor, a, b) -> torch.Tensor:
        return x0

    def x0(self, x_t: torch.Tensor, pred: torch.Tensor, a, b) -> torch.Tensor:
        return pred

    def eps(self, x_t: torch.Tensor, pred: torch.Tensor, a, b) -> torch.Tensor:
        return (x_t - pred * a) / b


class VTarget:
    """v = a·ε − b·x0 (Salimans & Ho). Written for general (a, b), not only a² + b² = 1."""

    name = "v"

    def __call__(self, x0: torch.Tensor, eps: torch.Tensor, a, b) -> torch.Tensor:
        return a * eps - b * x0

    def x0(self, x_t: torch.Tensor, pred: torch.Tensor, a, b) -> torch.Tensor:
        norm = a**2 + b**2
        return a / norm * x_t - b / norm * pred

    def eps(self, x_t: torch.Tensor, pred: torch.Tensor, a, b) -> torch.Tensor:
        norm = a**2 + b**2
        return b / norm * x_t + a / norm * pred


TARGETS = {"eps": EpsilonTarget, "x0": X0Target, "v": VTarget}
