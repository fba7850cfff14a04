"""Pixel losses shared by training and the latent search: what "closer to the photo" means when
a gradient has to say it. (The reported metrics live in `bench.metrics`, on uint8 images.)"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim, ssim

_LEVELS = 5  # pytorch-msssim's default five scales


def loss_window(height: int, width: int) -> int:
    """The Gaussian window for a differentiable MS-SSIM at this size: 11 where the picture
    allows, else the largest odd window pytorch-msssim accepts for five scales (side >
    16·(window − 1)); 0 when not even 3 fits (side ≤ 32): single-scale SSIM then."""
    side = min(height, width)
    for win in (11, 9, 7, 5, 3):
        if side > (win - 1) * 2 ** (_LEVELS - 1):
            return win
    return 0


def structural_similarity(decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Batch-mean MS-SSIM of [0,1] images (SSIM with a 3-px window below 33 px)."""
    win = loss_window(*target.shape[-2:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytorch-msssim warns on small windows: chosen on purpose
        if win:
            return ms_ssim(decoded, target, data_range=1.0, win_size=win)
        return ssim(decoded, target, data_range=1.0, win_size=3)


def ms_ssim_l1(decoded: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """0.84·(1 − MS-SSIM) + 0.16·L1 (the mix of Zhao et al., "Loss Functions for Image
    Restoration with Neural Networks") and the MS-SSIM itself. `decoded` is clamped to [0,1]
    for the structural part only, so L1 still pulls an out-of-range decode back."""
    score = structural_similarity(decoded.clamp(0, 1), target)
    return 0.84 * (1 - score) + 0.16 * F.l1_loss(decoded, target), score


def ms_ssim_mse(decoded: torch.Tensor, target: torch.Tensor, mse_weight: float) -> torch.Tensor:
    """(1 − MS-SSIM) + mse_weight·MSE: structure, with colour and PSNR kept in the loss."""
    return (1 - structural_similarity(decoded, target)) + mse_weight * torch.mean((decoded - target) ** 2)


# ----------------------------------------------------------------- training's named terms
# Each term reads the named outputs of a training model's forward (`train.model`) and gives
# its value plus anything worth logging; a config lists the terms it uses with their weights.
Outputs = Mapping[str, torch.Tensor]


def diffusion_term(out: Outputs) -> tuple[torch.Tensor, dict[str, float]]:
    """The diffusion loss: stage B's prediction against the target, per-sample weighted by the
    schedule's loss weight (min-SNR etc.)."""
    per_sample = F.mse_loss(out["pred"], out["target"], reduction="none").mean(dim=(1, 2, 3))
    return (per_sample * out["loss_weight"]).mean(), {"mse": per_sample.mean().item()}


def direct_latent_term(out: Outputs) -> tuple[torch.Tensor, dict[str, float]]:
    """Keeps the direct head's estimate near the true latent (MSE in latent space): the pixel
    loss alone cannot, where stage A's decoder saturates (TAESD soft-clamps its input), and an
    estimate drifting out of range makes the residual stage B learns explode."""
    value = F.mse_loss(out["base"], out["z0"])
    return value, {"direct_mse": value.item()}


def one_step_pixel_term(out: Outputs) -> tuple[torch.Tensor, dict[str, float]]:
    """`ms_ssim_l1` of the one-step decode against the photo (the windows the model decoded)."""
    value, score = ms_ssim_l1(out["decoded"], out["real"])
    return value, {"ms_ssim_1step": score.item()}


def adversarial_term(out: Outputs) -> tuple[torch.Tensor, dict[str, float]]:
    """Hinge generator loss: the critic's score of the one-step decode, to be raised."""
    value = -out["fake_score"].float().mean()
    return value, {"g_adv": value.item()}


@dataclass(frozen=True)
class Term:
    compute: Callable[[Outputs], tuple[torch.Tensor, dict[str, float]]]
    inputs: tuple[str, ...]  # the outputs it reads: a step without them skips the term


TERMS: dict[str, Term] = {
    "diffusion": Term(diffusion_term, ("pred", "target", "loss_weight")),
    "direct_latent": Term(direct_latent_term, ("base", "z0")),
    "one_step_pixel": Term(one_step_pixel_term, ("decoded", "real")),
    "adversarial": Term(adversarial_term, ("fake_score",)),
}


def weighted_loss(out: Outputs, weights: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """Σ weight·term over the listed terms whose inputs `out` has, and what they log."""
    total: torch.Tensor | None = None
    stats: dict[str, float] = {}
    for name, weight in weights.items():
        term = TERMS[name]
        if not weight or not all(key in out for key in term.inputs):
            continue
        value, logged = term.compute(out)
        total = weight * value if total is None else total + weight * value
        stats.update(logged)
    if total is None:
        raise ValueError(f"no loss term of {sorted(weights)} has its inputs in this step's outputs")
    return total, stats
