"""Loss weights: logSNR λ → per-sample weight of the MSE between prediction and target.

The weight multiplies the MSE *in the target's parametrisation*; the same λ-weighting means
different things for ε, x0 and v (e.g. min-SNR below is the x0-target form, min(SNR, γ)).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "ConstantLossWeight",
    "P2LossWeight",
    "MinSNRLossWeight",
    "SechLossWeight",
    "AdaptiveLossWeight",
    "LOSS_WEIGHTS",
]


class _LossWeight:
    def weight(self, log_snr: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, log_snr: torch.Tensor, shift: float = 1.0) -> torch.Tensor:
        # A loss shift evaluates the weight as if the schedule were unshifted.
        if shift != 1:
            log_snr = log_snr + 2 * math.log(shift)
        return self.weight(log_snr)


class ConstantLossWeight(_LossWeight):
    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def weight(self, log_snr: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(log_snr) * self.value


class P2LossWeight(_LossWeight):
    """Perception-prioritised weight (k + SNR^s)^−γ; the default (1, 1, 1) is 1/(1 + SNR)."""

    def __init__(self, k: float = 1.0, gamma: float = 1.0, s: float = 1.0) -> None:
        self.k, self.gamma, self.s = k, gamma, s

    def weight(self, log_snr: torch.Tensor) -> torch.Tensor:
        return (self.k + (log_snr * self.s).exp()) ** -self.gamma


class MinSNRLossWeight(_LossWeight):
    """min(SNR, γ): min-SNR-γ for an x0 target (for ε divide by SNR, for v by SNR + 1).

    `floor` > 0 keeps a minimum weight at low SNR. Plain min-SNR gives the x0 loss of the
    noisiest steps a weight near 0 (≈ SNR), so a conditional decoder barely learns to use its
    conditioning there — yet those steps are where a codec's conditioning decides the image.
    """

    def __init__(self, gamma: float = 5.0, floor: float = 0.0) -> None:
        self.gamma = gamma
        self.floor = floor

    def weight(self, log_snr: torch.Tensor) -> torch.Tensor:
        return log_snr.exp().clamp(min=self.floor, max=self.gamma)


class SechLossWeight(_LossWeight):
    """sech(λ / div): peaks at SNR = 1 and decays exponentially towards both ends."""

    def __init__(self, div: float = 2.0) -> None:
        self.div = div

    def weight(self, log_snr: torch.Tensor) -> torch.Tensor:
        return 1 / (log_snr / self.div).cosh()


class AdaptiveLossWeight(_LossWeight):
    """1 / (running mean loss of the λ bucket), as Stable Cascade's stage B finetune uses.

    λ is bucketed by `searchsorted` over `buckets − 1` edges spanning `log_snr_range`; each
    bucket keeps an EMA (β) of the unweighted per-sample loss, updated by the training loop.
    """

    def __init__(
        self,
        log_snr_range: tuple[float, float] = (-10.0, 10.0),
        buckets: int = 300,
        weight_range: tuple[float, float] = (1e-7, 1e7),
    ) -> None:
        self.bucket_edges = torch.linspace(log_snr_range[0], log_snr_range[1], buckets - 1)
        self.bucket_losses = torch.ones(buckets)
        self.weight_range = weight_range

    def _index(self, log_snr: torch.Tensor) -> torch.Tensor:
        return torch.searchsorted(self.bucket_edges.to(log_snr.device), log_snr.contiguous())

    def weight(self, log_snr: torch.Tensor) -> torch.Tensor:
        losses = self.bucket_losses.to(log_snr.device)[self._index(log_snr)]
        return (1 / losses).clamp(*self.weight_range)

    @torch.no_grad()
    def update(self, log_snr: torch.Tensor, loss: torch.Tensor, beta: float = 0.99) -> None:
        """EMA the per-sample losses into their buckets (one sample per bucket wins on ties)."""
        idx = self._index(log_snr).cpu()
        self.bucket_losses[idx] = self.bucket_losses[idx] * beta + loss.detach().float().cpu() * (1 - beta)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"bucket_edges": self.bucket_edges.clone(), "bucket_losses": self.bucket_losses.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.bucket_edges = state["bucket_edges"].clone().float()
        self.bucket_losses = state["bucket_losses"].clone().float()


LOSS_WEIGHTS = {
    "constant": ConstantLossWeight,
    "p2": P2LossWeight,
    "min_snr": MinSNRLossWeight,
    "sech": SechLossWeight,
    "adaptive": AdaptiveLossWeight,
}
