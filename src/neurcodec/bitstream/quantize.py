"""Scalar quantization of the normalized latent, the quality -> step mapping, and --bpp search.

The file stores the *step index* (one byte), not `-q`: retuning the q -> index mapping
changes which index an encoder picks but never how an existing file decodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neurcodec.errors import InputError

STEP_INDEX_MAX = 255
STEP_INDEX_UNIT = 96  # index of step 1.0; 16 indices per octave
# -q 0 -> index 128 (step 4.0); -q 100 -> index 27 (step ~0.050): one index per q value.
Q0_INDEX = 128
Q100_INDEX = 27

MAX_SYMBOL = (1 << 20) - 1  # |symbol| bound shared with the entropy coder's escape path


def step_from_index(index: int) -> float:
    """Quantizer step for a stored index: 2 ** ((index - 96) / 16), log-spaced, 16 per octave."""
    if not 0 <= index <= STEP_INDEX_MAX:
        raise ValueError(f"step index {index} outside 0..{STEP_INDEX_MAX}")
    return 2.0 ** ((index - STEP_INDEX_UNIT) / 16)


def quality_to_step_index(q: int) -> int:
    """-q 0..100 -> step index; strictly decreasing in q (higher q, smaller step, more bits)."""
    if not 0 <= q <= 100:
        raise ValueError(f"quality must be in 0..100, got {q}")
    return round(Q0_INDEX - q * (Q0_INDEX - Q100_INDEX) / 100)


def quality_to_step(q: int) -> float:
    """-q 0..100 -> quantizer step Δ, from 4.0 (q=0) down to ~0.05 (q=100)."""
    return step_from_index(quality_to_step_index(q))


def quantize(latent, step: float) -> np.ndarray:
    """Round latent / step to int32 symbols (round half to even), clipped to ±MAX_SYMBOL.

    Accepts a numpy array or a torch tensor of any float dtype; returns numpy int32.
    """
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    if hasattr(latent, "detach"):  # torch tensor, without importing torch here
        latent = latent.detach().to("cpu").float().numpy()
    values = np.asarray(latent, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InputError("latent contains NaN or infinite values; cannot quantize")
    symbols = np.rint(values / step)
    return np.clip(symbols, -MAX_SYMBOL, MAX_SYMBOL).astype(np.int32)


def dequantize(symbols: np.ndarray, step: float, offset: float = 0.0) -> np.ndarray:
    """Symbols -> float32 latent: sign(s) * (|s| - offset) * step for s != 0, and 0 for s = 0.

    `offset` in [0, 0.5) pulls reconstructions toward zero. For peaked (Laplacian-like)
    latents the values that land in a bin sit closer to zero than its centre, so a small
    offset (≈0.1–0.2 at coarse steps) lowers the expected error; 0 gives plain bin centres.
    """
    if not 0.0 <= offset < 0.5:
        raise ValueError(f"reconstruction offset must be in [0, 0.5), got {offset}")
    s = np.asarray(symbols).astype(np.float64)
    magnitude = np.maximum(np.abs(s) - offset, 0.0)
    return (np.sign(s) * magnitude * step).astype(np.float32)


@dataclass(frozen=True)
class StepSearchResult:
    q: int
    size: int  # coded size for q, as returned by encode_fn
    met: bool  # size <= target (False only when even q=0 is too big)
    evaluations: int


def search_step(
    encode_fn: Callable[[int], int], target_bytes: int, q_min: int = 0, q_max: int = 100
) -> StepSearchResult:
    """Highest q whose coded size fits target_bytes, by bisection (cwebp `-size` style).

    `encode_fn(q)` returns the coded size in bytes; it is assumed non-decreasing in q.
    If even q_min is too large, returns q_min with met=False.
    """
    cache: dict[int, int] = {}

    def size(q: int) -> int:
        if q not in cache:
            cache[q] = int(encode_fn(q))
        return cache[q]

    if size(q_min) > target_bytes:
        return StepSearchResult(q_min, size(q_min), False, len(cache))
    if size(q_max) <= target_bytes:
        return StepSearchResult(q_max, size(q_max), True, len(cache))
    lo, hi = q_min, q_max  # invariant: size(lo) fits, size(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size(mid) <= target_bytes:
            lo = mid
        else:
            hi = mid
    return StepSearchResult(lo, size(lo), True, len(cache))
