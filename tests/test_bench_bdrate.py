"""Bjøntegaard deltas on curves whose answer is known in closed form."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurcodec.bench.bdrate import Curve, bd_quality, bd_rate, quality_at_rate

# A JPEG-like curve: PSNR rising with log(bpp), slightly concave.
RATES = [0.17, 0.22, 0.33, 0.51, 0.75, 1.1]
PSNRS = [21.5, 23.9, 26.6, 29.1, 31.0, 33.0]
ANCHOR = Curve(RATES, PSNRS)


def test_identical_curves_give_zero() -> None:
    r = bd_rate(ANCHOR, Curve(list(RATES), list(PSNRS)))
    assert r.ok and r.value == pytest.approx(0.0, abs=1e-9)
    q = bd_quality(ANCHOR, ANCHOR)
    assert q.ok and q.value == pytest.approx(0.0, abs=1e-9)


def test_half_the_rate_everywhere_is_minus_50_percent() -> None:
    r = bd_rate(ANCHOR, Curve([x / 2 for x in RATES], PSNRS))
    assert r.value == pytest.approx(-50.0, abs=1e-9)
    # and the anchor against it needs twice the bits
    assert bd_rate(Curve([x / 2 for x in RATES], PSNRS), ANCHOR).value == pytest.approx(100.0, abs=1e-9)


def test_one_db_better_everywhere_is_plus_one_db() -> None:
    q = bd_quality(ANCHOR, Curve(RATES, [p + 1.0 for p in PSNRS]))
    assert q.value == pytest.approx(1.0, abs=1e-9)
    assert q.overlap == pytest.approx((min(RATES), max(RATES)))


def test_disjoint_curves_report_no_overlap_not_a_number() -> None:
    low = Curve([0.01, 0.02, 0.04], [18.0, 19.5, 21.0])
    high = Curve([0.3, 0.5, 0.9], [27.0, 29.0, 31.5])
    r = bd_rate(low, high)
    assert r.value is None and not r.ok and "no overlap" in r.note
    q = bd_quality(low, high)
    assert q.value is None and "no overlap" in q.note


def test_only_the_overlapping_range_is_integrated() -> None:
    # log-linear curves (PCHIP reproduces them exactly): the test is half-rate and covers only
    # the upper part of the anchor's quality range.
    rates = [0.05, 0.1, 0.2, 0.4, 0.8]
    anchor = Curve(rates, [20.0 + 4.0 * math.log2(r / 0.05) for r in rates])
    test = Curve([0.1, 0.2, 0.4], [28.0, 32.0, 36.0])
    r = bd_rate(anchor, test)
    assert r.value == pytest.approx(-50.0, abs=1e-9)
    assert r.overlap == (28.0, 36.0)


def test_too_few_points_is_said() -> None:
    r = bd_rate(ANCHOR, Curve([0.3], [27.0]))
    assert r.value is None and "2 distinct points" in r.note


def test_unsorted_and_duplicate_points_are_accepted() -> None:
    shuffled = Curve(RATES[::-1] + [RATES[0]], PSNRS[::-1] + [PSNRS[0]])
    assert bd_rate(ANCHOR, shuffled).value == pytest.approx(0.0, abs=1e-9)


def test_thin_overlap_is_flagged() -> None:
    # Overlap in quality holds only one measured point of the test curve.
    test = Curve([0.05, 0.2], [20.0, 22.0])
    r = bd_rate(ANCHOR, test)
    assert r.ok and "thin overlap" in r.note


def test_quality_at_rate_interpolates_inside_and_refuses_outside() -> None:
    got = quality_at_rate(ANCHOR, [0.01, RATES[2], 0.4, 5.0])
    assert got[0] is None and got[3] is None
    assert got[1] == pytest.approx(PSNRS[2])
    assert PSNRS[2] < got[2] < PSNRS[3]


@settings(max_examples=40, deadline=None)
@given(
    factor=st.floats(0.05, 20.0),
    steps=st.lists(st.floats(0.2, 3.0), min_size=3, max_size=7),
)
def test_scaling_rates_by_k_gives_k_minus_one(factor: float, steps: list[float]) -> None:
    # Any increasing curve; scaling all its rates by k is exactly a BD-rate of (k − 1).
    quality = [20.0 + sum(steps[: i + 1]) for i in range(len(steps))]
    rates = [0.05 * math.exp(0.7 * i) for i in range(len(steps))]
    r = bd_rate(Curve(rates, quality), Curve([x * factor for x in rates], quality))
    assert r.value == pytest.approx((factor - 1.0) * 100.0, rel=1e-6, abs=1e-6)
