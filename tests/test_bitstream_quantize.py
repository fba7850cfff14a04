"""Quantizer: quality mapping, rounding, reconstruction offset, --bpp search."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurcodec.bitstream import (
    dequantize,
    quality_to_step,
    quality_to_step_index,
    quantize,
    search_step,
    step_from_index,
)
from neurcodec.bitstream.quantize import MAX_SYMBOL
from neurcodec.errors import InputError


def test_quality_is_strictly_monotone_and_spans_the_latent_range():
    steps = [quality_to_step(q) for q in range(101)]
    assert all(a > b for a, b in zip(steps, steps[1:]))
    assert steps[0] == pytest.approx(4.0)
    assert 0.045 < steps[-1] < 0.055
    assert len({quality_to_step_index(q) for q in range(101)}) == 101


def test_step_index_is_the_stored_quantity():
    assert step_from_index(96) == 1.0
    assert step_from_index(112) == 2.0
    with pytest.raises(ValueError):
        step_from_index(256)
    with pytest.raises(ValueError):
        quality_to_step(101)


def test_quantize_rounds_and_accepts_torch():
    latent = torch.tensor([[[0.24, 0.26, -0.26, 1.0]]])
    symbols = quantize(latent, 0.5)
    assert symbols.dtype == np.int32
    assert symbols.tolist() == [[[0, 1, -1, 2]]]
    assert quantize(np.array([[[1e9]]]), 1.0).item() == MAX_SYMBOL


def test_quantize_refuses_nan():
    with pytest.raises(InputError):
        quantize(np.array([[[np.nan]]]), 1.0)


def test_dequantize_offset_pulls_toward_zero_only():
    s = np.array([-3, -1, 0, 1, 3])
    assert dequantize(s, 2.0).tolist() == [-6, -2, 0, 2, 6]
    assert dequantize(s, 2.0, offset=0.25).tolist() == [-5.5, -1.5, 0, 1.5, 5.5]
    with pytest.raises(ValueError):
        dequantize(s, 1.0, offset=0.5)


def test_quantization_error_is_bounded_by_half_a_step():
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(4, 8, 8)).astype(np.float32)
    for q in (0, 50, 100):
        step = quality_to_step(q)
        err = np.abs(dequantize(quantize(latent, step), step) - latent)
        assert err.max() <= step / 2 + 1e-6


def test_search_step_finds_the_largest_q_that_fits():
    sizes = {q: 100 + 7 * q for q in range(101)}  # a monotone size curve
    calls = []

    def encode(q):
        calls.append(q)
        return sizes[q]

    result = search_step(encode, target_bytes=450)
    assert result.met and result.q == 50 and result.size == 450
    assert len(set(calls)) <= 10  # bisection, not a scan
    assert search_step(encode, 10).met is False
    assert search_step(encode, 10**6).q == 100
