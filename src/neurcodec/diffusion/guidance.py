"""Classifier-free guidance: combine the conditional and unconditional predictions.

The sampler runs the network once on the doubled batch [x; x] and splits the output; the
conditioning is doubled once, before sampling, with `cfg_batch`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["cfg_combine", "cfg_batch"]


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float, rho: float = 0.7) -> torch.Tensor:
    """uncond + scale·(cond − uncond), then the reference's std rescale by ρ.

    `torch.lerp` is used, not the written-out formula: for scale ≥ 0.5 it rounds differently,
    and the first step amplifies that ~100× (parity with the reference needs it). The rescale
    pulls the guided prediction's std back towards the conditional one, using torch's default
    *unbiased* std over the whole tensor (all samples together), as the reference does.
    """
    guided = torch.lerp(uncond, cond, scale)
    if rho > 0:
        std_cond, std_guided = cond.std(), guided.std()
        guided = rho * (guided * std_cond / (std_guided + 1e-9)) + guided * (1 - rho)
    return guided


def cfg_batch(
    cond: Mapping[str, torch.Tensor | None],
    uncond: Mapping[str, torch.Tensor | None] | None = None,
) -> dict[str, torch.Tensor | None]:
    """Stack each conditioning tensor as [cond; uncond] along the batch axis.

    Keys are paired by name. A key missing from `uncond` (or `uncond=None`) gets zeros, which
    is the reference's default; for Stable Cascade pass the empty-caption CLIP vector instead.
    `None` values (optional inputs) stay `None`.
    """
    uncond = uncond or {}
    out: dict[str, torch.Tensor | None] = {}
    for key, value in cond.items():
        if value is None:
            out[key] = None
            continue
        other = uncond.get(key)
        out[key] = torch.cat([value, torch.zeros_like(value) if other is None else other.to(value)], dim=0)
    return out
