"""Noise schedules: t ∈ [0, 1] (0 = clean, 1 = pure noise) → logSNR λ.

Everything is evaluated in float32 with the reference's operation order, because the first
sampling step divides by a ≈ 0.01 and amplifies any rounding difference about 100×.
"""

from __future__ import annotations

import math

import torch

__all__ = ["CosineSchedule", "COSINE_LIMITS"]

# λ(1) and λ(0) of the unshifted cosine schedule as the reference computes them in float32.
# They are asymmetric only because of float32 rounding; kept verbatim for bit parity. Shifted
# schedules are clamped to these same limits (so the high end drops with shift > 1).
COSINE_LIMITS: tuple[float, float] = (-9.210240364074707, 9.210074424743652)


class CosineSchedule:
    """Improved-DDPM cosine schedule in logSNR form, with resolution shift.

    `shift` > 1 lowers every λ by 2·ln(shift) (more noise at each t), as for larger images.
    """

    def __init__(
        self,
        s: float = 0.008,
        clamp_range: tuple[float, float] = (1e-4, 0.9999),
        limits: tuple[float, float] | None = COSINE_LIMITS,
    ) -> None:
        self.s = torch.tensor([s], dtype=torch.float32)
        self.clamp_range = clamp_range
        self.limits = limits
        # var(t) is normalised by var(0) so the schedule starts at exactly 1 before clamping.
        self.min_var = torch.cos(self.s / (1 + self.s) * torch.pi * 0.5) ** 2

    def __call__(self, t: torch.Tensor | float, shift: float = 1.0) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32)
        t = t.clamp(0, 1)
        s, min_var = self.s.to(t.device), self.min_var.to(t.device)
        var = torch.cos((s + t) / (1 + s) * torch.pi * 0.5).clamp(0, 1) ** 2 / min_var
        var = var.clamp(*self.clamp_range)
        log_snr = (var / (1 - var)).log()
        if shift != 1:
            log_snr = log_snr + 2 * math.log(1 / shift)
        if self.limits is not None:
            log_snr = log_snr.clamp(*self.limits)
        return log_snr.reshape(t.shape)

    def random_t(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training times: uniform on [0.001, 1] (the reference avoids the clean end)."""
        return (1 - torch.rand(batch, generator=generator)).add(0.001).clamp(0.001, 1.0)
