"""GDF: a diffusion setup as five small parts (schedule, scaler, target, noise cond, loss weight).

`diffuse` (training: x0 → x_t plus everything the loss needs) and `undiffuse` (sampling: a
prediction → x0 and ε) are a symmetric pair; samplers only ever see the GDF object, so swapping
ε + P2 for x0 + min-SNR or v + sech is one argument to `build_gdf`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from neurcodec.errors import UsageError
from neurcodec.diffusion.loss_weights import LOSS_WEIGHTS, MinSNRLossWeight
from neurcodec.diffusion.noise_conditions import CosineTNoiseCond
from neurcodec.diffusion.scalers import VPScaler
from neurcodec.diffusion.schedules import CosineSchedule
from neurcodec.diffusion.targets import TARGETS

__all__ = ["GDF", "Diffused", "GDFConfig", "RECIPES", "build_gdf", "pyramid_noise"]


class Diffused(NamedTuple):
    """What `GDF.diffuse` returns; unpacks like the reference's 6-tuple."""

    x_t: torch.Tensor
    noise: torch.Tensor
    target: torch.Tensor
    log_snr: torch.Tensor
    noise_cond: torch.Tensor
    loss_weight: torch.Tensor


def _per_sample(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """(B,) → (B, 1, …, 1) so per-sample scalars broadcast over a (B, …) tensor."""
    return v.view(-1, *[1] * (ndim - 1)) if v.ndim == 1 else v


def pyramid_noise(
    shape: torch.Size | tuple[int, ...],
    generator: torch.Generator | None = None,
    *,
    discount: float = 0.75,
    levels: int = 10,
    size_range: tuple[int, int] | None = (1, 16),
) -> torch.Tensor:
    """Unit-variance N(0, I) plus nearest-upsampled coarse noise (stage B's training noise).

    Level i (1 ≤ i < levels) has H/2^i × W/2^i noise weighted discount^i, and is used only when
    its height or width lies in `size_range` (so only the coarse structure gets extra noise).
    Drawn on the CPU from `generator`; the sum is renormalised to unit variance.
    """
    b, c, height, width = shape
    eps = torch.randn(shape, generator=generator)
    weights = [1.0]
    for i in range(1, levels):
        h, w = max(1, height >> i), max(1, width >> i)
        if size_range is None or size_range[0] <= h <= size_range[1] or size_range[0] <= w <= size_range[1]:
            coarse = torch.randn(b, c, h, w, generator=generator)
            eps = eps + F.interpolate(coarse, size=(height, width), mode="nearest") * discount**i
            weights.append(discount**i)
        if h <= 1 or w <= 1:
            break
    return eps / sum(m * m for m in weights) ** 0.5


class GDF:
    def __init__(
        self,
        schedule=None,
        input_scaler=None,
        target=None,
        noise_cond=None,
        loss_weight=None,
        *,
        pyramid: bool = False,
    ) -> None:
        # Defaults are Stable Cascade's stage B setup (ε target, P2 weight).
        self.schedule = schedule or CosineSchedule()
        self.input_scaler = input_scaler or VPScaler()
        self.target = target or TARGETS["eps"]()
        self.noise_cond = noise_cond or CosineTNoiseCond()
        self.loss_weight = loss_weight or LOSS_WEIGHTS["p2"]()
        self.pyramid = pyramid

    def diffuse(
        self,
        x0: torch.Tensor,
        t: torch.Tensor | float | None = None,
        noise: torch.Tensor | None = None,
        shift: float = 1.0,
        loss_shift: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Diffused:
        """Noise x0 to time t (random per sample if None): x_t = a·x0 + b·ε.

        Random t and ε are drawn on the CPU from `generator`, then moved to x0's device.
        """
        batch = x0.shape[0]
        if t is None:
            t = self.schedule.random_t(batch, generator)
        t = torch.as_tensor(t, dtype=torch.float32)
        if t.numel() == 1:
            t = t.reshape(1).expand(batch)
        if noise is None:
            noise = pyramid_noise(x0.shape, generator) if self.pyramid else torch.randn(x0.shape, generator=generator)
            noise = noise.to(device=x0.device, dtype=x0.dtype)
        log_snr = self.schedule(t, shift=shift).to(x0.device)
        a, b = (_per_sample(v, x0.ndim) for v in self.input_scaler(log_snr))
        target = self.target(x0, noise, a, b)
        return Diffused(
            x0 * a + noise * b,
            noise,
            target,
            log_snr,
            self.noise_cond(log_snr),
            self.loss_weight(log_snr, shift=loss_shift),
        )

    def undiffuse(self, x_t: torch.Tensor, log_snr: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A prediction in the target's parametrisation → (x0 estimate, ε estimate)."""
        a, b = (_per_sample(v, x_t.ndim) for v in self.input_scaler(log_snr))
        return self.target.x0(x_t, pred, a, b), self.target.eps(x_t, pred, a, b)


@dataclass(frozen=True)
class GDFConfig:
    """A GDF as data: the thesis' training options are the target × loss-weight pair."""

    target: Literal["eps", "x0", "v"] = "eps"
    loss_weight: Literal["constant", "p2", "min_snr", "sech", "adaptive"] = "p2"
    min_snr_gamma: float = 5.0
    min_snr_floor: float = 0.0
    pyramid_noise: bool = False


RECIPES: dict[str, GDFConfig] = {
    "eps_p2": GDFConfig("eps", "p2"),  # Stable Cascade stage B
    "eps_adaptive": GDFConfig("eps", "adaptive", pyramid_noise=True),  # its finetune recipe
    "x0_min_snr": GDFConfig("x0", "min_snr"),  # the thesis' default
    "v_sech": GDFConfig("v", "sech"),
}


def build_gdf(config: GDFConfig | str = "eps_p2") -> GDF:
    """`build_gdf("x0_min_snr")` or `build_gdf(GDFConfig(...))`; cosine schedule + VP always."""
    if isinstance(config, str):
        if config not in RECIPES:
            raise UsageError(f"unknown diffusion recipe {config!r}; known: {', '.join(RECIPES)}")
        config = RECIPES[config]
    weight_cls = LOSS_WEIGHTS[config.loss_weight]
    if weight_cls is MinSNRLossWeight:
        loss_weight = MinSNRLossWeight(config.min_snr_gamma, config.min_snr_floor)
    else:
        loss_weight = weight_cls()
    return GDF(target=TARGETS[config.target](), loss_weight=loss_weight, pyramid=config.pyramid_noise)
