"""Bjøntegaard deltas (BD-rate, BD-quality) and quality at matched bitrate.

PCHIP interpolation as in the JCT-VC CTC sheet, integrated over the range
where both curves have data only: outside it the answer would be an
extrapolation, so "no overlap" is reported instead of a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator


@dataclass(frozen=True)
class Curve:
    """One rate–quality curve: rates (bpp or kbps, > 0) and a quality per point."""

    rate: Sequence[float]
    quality: Sequence[float]


@dataclass(frozen=True)
class BDResult:
    """A Bjøntegaard delta, or why there is none (`value is None`, `note` says why)."""

    value: float | None
    overlap: tuple[float, float] | None  # the integrated range (quality for BD-rate, log-rate for BD-quality)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.value is not None


def _clean(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Finite points sorted by x, duplicate x averaged (PCHIP needs strictly increasing x)."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    ux, inverse = np.unique(xa, return_inverse=True)
    uy = np.zeros_like(ux)
    np.add.at(uy, inverse, ya)
    uy /= np.bincount(inverse)
    return ux, uy


def _mean_over(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    return float(PchipInterpolator(x, y).integrate(lo, hi) / (hi - lo))


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    lo, hi = max(a[0], b[0]), min(a[-1], b[-1])
    return (float(lo), float(hi)) if hi > lo else None


def _thin(a: np.ndarray, b: np.ndarray, span: tuple[float, float]) -> str:
    """A note when the overlap holds fewer than 2 measured points of either curve."""
    inside = min(int(np.sum((x >= span[0]) & (x <= span[1]))) for x in (a, b))
    return f"thin overlap: {inside} measured point(s) of one curve inside" if inside < 2 else ""


def _prepare(curve: Curve, by_quality: bool) -> tuple[np.ndarray, np.ndarray]:
    rate = np.asarray(curve.rate, dtype=np.float64)
    if np.any(rate <= 0):
        raise ValueError("rates must be > 0 for a Bjøntegaard delta")
    log_rate = np.log(rate)
    if by_quality:
        return _clean(curve.quality, log_rate)
    return _clean(log_rate, curve.quality)


def bd_rate(anchor: Curve, test: Curve) -> BDResult:
    """Average rate difference of `test` vs `anchor` at equal quality, in percent.

    Negative means `test` needs fewer bits. log(rate) is PCHIP-interpolated as a
    function of quality over the overlapping quality range.
    """
    qa, ra = _prepare(anchor, by_quality=True)
    qt, rt = _prepare(test, by_quality=True)
    if len(qa) < 2 or len(qt) < 2:
        return BDResult(None, None, "needs at least 2 distinct points per curve")
    span = _overlap(qa, qt)
    if span is None:
        return BDResult(None, None, "no overlap in quality")
    diff = _mean_over(qt, rt, *span) - _mean_over(qa, ra, *span)
    return BDResult((math.exp(diff) - 1.0) * 100.0, span, _thin(qa, qt, span))


def bd_quality(anchor: Curve, test: Curve) -> BDResult:
    """Average quality difference of `test` vs `anchor` at equal rate (e.g. BD-PSNR in dB).

    Quality is PCHIP-interpolated as a function of log(rate) over the overlapping rate range;
    `overlap` is returned in rate units (not log).
    """
    ra, qa = _prepare(anchor, by_quality=False)
    rt, qt = _prepare(test, by_quality=False)
    if len(ra) < 2 or len(rt) < 2:
        return BDResult(None, None, "needs at least 2 distinct points per curve")
    span = _overlap(ra, rt)
    if span is None:
        return BDResult(None, None, "no overlap in rate")
    diff = _mean_over(rt, qt, *span) - _mean_over(ra, qa, *span)
    return BDResult(diff, (math.exp(span[0]), math.exp(span[1])), _thin(ra, rt, span))


def quality_at_rate(curve: Curve, rates: Sequence[float]) -> list[float | None]:
    """`curve`'s quality at each rate (PCHIP in log-rate); None outside its rate range."""
    lr, q = _prepare(curve, by_quality=False)
    if len(lr) == 0:
        return [None for _ in rates]
    if len(lr) == 1:
        return [float(q[0]) if math.isclose(math.log(r), lr[0]) else None for r in rates]
    interp = PchipInterpolator(lr, q, extrapolate=False)
    out: list[float | None] = []
    for r in rates:
        v = float(interp(math.log(r))) if r > 0 else math.nan
        out.append(None if math.isnan(v) else v)
    return out
