"""Generate the shipped integer pmf tables (run once: `python -m neurcodec.bitstream.make_tables`).

Floats are used only here, offline. The result is frozen as integers in `pmf_tables.npz`
and its SHA-256 is pinned in `tables.TABLES_SHA256`, so encoder and decoder on any machine
index the very same integers. Changing the tables is a format change (bump the version).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from neurcodec.bitstream.tables import (
    HALF_RANGE,
    NUM_SCALES,
    PRECISION,
    SHAPES,
    SIGMA_MAX,
    SIGMA_MIN,
    TABLES_PATH,
)


def _continuous(shape: str, sigma: float):
    """A zero-mean distribution with standard deviation `sigma` (in symbol units)."""
    if shape == "gaussian":
        return stats.norm(scale=sigma)
    if shape == "logistic":
        return stats.logistic(scale=sigma * np.sqrt(3.0) / np.pi)
    if shape == "laplace":
        return stats.laplace(scale=sigma / np.sqrt(2.0))
    if shape == "t4":  # Student-t, 4 dof: variance 2 * scale^2
        return stats.t(df=4, scale=sigma / np.sqrt(2.0))
    raise ValueError(shape)


def discretized_pmf(shape: str, sigma: float) -> np.ndarray:
    """P(round(x) = s) for s in [-L, L], plus both tails lumped into the escape bins ±(L+1)."""
    dist = _continuous(shape, sigma)
    edges = np.arange(-HALF_RANGE - 0.5, HALF_RANGE + 1.5, 1.0)
    cdf = dist.cdf(edges)
    inner = np.diff(cdf)
    return np.concatenate([[cdf[0]], inner, [dist.sf(edges[-1])]])


def quantize_pmf(pmf: np.ndarray) -> np.ndarray:
    """Integer frequencies >= 1 summing to exactly 2**PRECISION (largest-remainder rounding)."""
    n = pmf.size
    free = (1 << PRECISION) - n
    ideal = pmf / pmf.sum() * free
    weights = np.floor(ideal).astype(np.int64)
    short = free - int(weights.sum())
    order = np.lexsort((np.arange(n), -(ideal - weights)))  # biggest remainder first, then index
    weights[order[:short]] += 1
    freqs = weights + 1
    assert int(freqs.sum()) == 1 << PRECISION and freqs.min() >= 1
    return freqs.astype(np.uint32)


def build_tables() -> np.ndarray:
    sigmas = np.geomspace(SIGMA_MIN, SIGMA_MAX, NUM_SCALES)
    rows = [quantize_pmf(discretized_pmf(shape, s)) for shape in SHAPES for s in sigmas]
    return np.stack(rows)


def main(path: Path = TABLES_PATH) -> None:
    tables = build_tables()
    np.savez_compressed(path, freqs=tables)
    from neurcodec.bitstream.tables import tables_digest

    print(f"wrote {path} shape={tables.shape} sha256={tables_digest(tables)}")


if __name__ == "__main__":
    main()
