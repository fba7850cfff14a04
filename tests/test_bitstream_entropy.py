"""Entropy coding: exact round trips, integer tables, efficiency, cross-process determinism."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurcodec.bitstream import analyse_latent, decode_latent, empirical_entropy_bits, encode_latent
from neurcodec.bitstream.entropy import METHOD_ANS, METHOD_RANGE, blob_check_bits, blob_sizes
from neurcodec.bitstream.quantize import MAX_SYMBOL
from neurcodec.bitstream.tables import TABLES_SHA256, load_tables, tables_digest
from neurcodec.errors import CorruptFileError, UnsupportedFileError


def laplace_symbols(seed: int, shape=(16, 16, 24), step=0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.geomspace(0.2, 3.0, shape[0])[:, None, None]
    return np.rint(rng.laplace(size=shape) * scales / step).astype(np.int32)


def test_shipped_tables_match_pinned_hash_and_are_exact():
    freqs = load_tables()
    assert tables_digest(freqs) == TABLES_SHA256
    assert (freqs.astype(np.int64).sum(axis=1) == 1 << 24).all()
    assert freqs.min() >= 1


symbol_arrays = hnp.arrays(
    np.int32,
    st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
    elements=st.one_of(
        st.integers(-3, 3),  # the bulk
        st.integers(-MAX_SYMBOL, MAX_SYMBOL),  # escapes, up to the limit
        st.sampled_from([-64, -63, 63, 64, 65, -MAX_SYMBOL, MAX_SYMBOL]),  # table edges
    ),
)


@settings(max_examples=150, deadline=None)
@given(symbols=symbol_arrays, method=st.sampled_from([METHOD_ANS, METHOD_RANGE]),
       adaptive=st.sampled_from([None, False, True]), check_bits=st.sampled_from([16, 32]))
def test_round_trip_is_exact_including_escapes(symbols, method, adaptive, check_bits):
    blob = encode_latent(symbols, method=method, adaptive=adaptive, check_bits=check_bits)
    assert np.array_equal(decode_latent(blob, symbols.shape), symbols)
    assert blob_check_bits(blob) == check_bits


@pytest.mark.parametrize("method", [METHOD_ANS, METHOD_RANGE])
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("check_bits", [16, 32])
def test_a_checked_payload_that_ends_early_or_was_altered_is_refused(method, adaptive, check_bits):
    symbols = laplace_symbols(8, shape=(4, 6, 8))
    blob = encode_latent(symbols, method=method, adaptive=adaptive, check_bits=check_bits)
    start = len(blob) - blob_sizes(blob, 4)[1]
    rng = np.random.default_rng(check_bits + method)
    damaged = [blob[:cut] for cut in range(start, len(blob))]
    for _ in range(300):
        flipped = bytearray(blob)
        flipped[rng.integers(start, len(blob))] ^= 1 << int(rng.integers(8))
        damaged.append(bytes(flipped))
    refused = 0
    for bad in damaged:
        try:
            decoded = decode_latent(bad, symbols.shape)
        except CorruptFileError:
            refused += 1
        else:  # a range coder's last word has bits nothing depends on: harmless damage
            assert method == METHOD_RANGE and np.array_equal(decoded, symbols)
    assert refused >= 0.97 * len(damaged)


@pytest.mark.parametrize("method", [METHOD_ANS, METHOD_RANGE])
@pytest.mark.parametrize("adaptive", [False, True])
def test_unchecked_payloads_of_older_files_still_decode(method, adaptive):
    for seed in range(20):
        symbols = laplace_symbols(seed, shape=(4, 5, 7))
        symbols[0, 0, 0] = 5000  # an escape
        blob = encode_latent(symbols, method=method, adaptive=adaptive, check_bits=0)
        assert np.array_equal(decode_latent(blob, symbols.shape), symbols)


def test_an_unchecked_payload_that_runs_out_early_is_refused():
    # Files written before checks existed: an ANS coder that empties before the latent is
    # decoded would otherwise go on producing the first bin for free.
    rng = np.random.default_rng(12)
    for first in [METHOD_ANS] * 10 + [METHOD_ANS | 0x10] * 10:  # static and adaptive
        head = bytes([first]) + rng.integers(0, 256, 16).astype(np.uint8).tobytes()
        with pytest.raises(CorruptFileError, match="latent payload"):
            decode_latent(head + rng.bytes(64), (16, 128, 128))  # 64 bytes for a 4096² image
    symbols = laplace_symbols(9)
    blob = encode_latent(symbols, check_bits=0)
    half = (len(blob) + len(blob) - blob_sizes(blob, 16)[1]) // 2
    with pytest.raises(CorruptFileError, match="ends before the latent does"):
        decode_latent(blob[:half], symbols.shape)  # the words of the first half of the latent


def test_a_check_width_this_build_does_not_know_is_unsupported():
    symbols = laplace_symbols(10, shape=(2, 4, 4))
    blob = encode_latent(symbols)
    with pytest.raises(UnsupportedFileError, match="check"):
        decode_latent(bytes([blob[0] | 0x60]) + blob[1:], symbols.shape)
    with pytest.raises(ValueError, match="check_bits"):
        encode_latent(symbols, check_bits=8)


def test_constant_and_offset_channels_use_centres():
    symbols = np.full((2, 4, 4), 40, dtype=np.int32)
    symbols[1] = -200
    blob = encode_latent(symbols)
    assert np.array_equal(decode_latent(blob, symbols.shape), symbols)
    params, coded = blob_sizes(blob, 2)
    assert coded <= 4 + 4  # nearly free once centred (+ the 32-bit check)


def test_coded_size_is_close_to_ideal_and_to_empirical_entropy():
    symbols = laplace_symbols(3)
    report = analyse_latent(symbols)
    coded_bits = 8 * report.coded_bytes
    assert report.check_bits == 32
    assert report.ideal_bits <= coded_bits <= report.ideal_bits * 1.005 + 32 + report.check_bits
    # per-image, per-channel empirical entropy: the cost of 16 ideal histograms sent for free
    assert 8 * report.total_bytes <= 1.05 * empirical_entropy_bits(symbols)


def test_adaptive_model_is_chosen_when_statistics_drift():
    # left half of every channel small, right half wide: no single static pmf fits both
    rng = np.random.default_rng(7)
    symbols = np.rint(rng.laplace(size=(4, 16, 32)) * np.r_[0.3, 4.0].repeat(16)[None, None]).astype(np.int32)
    symbols = symbols.transpose(0, 2, 1).copy()  # raster order: first rows small, later wide
    static = analyse_latent(symbols, adaptive=False)
    chosen = analyse_latent(symbols)
    assert chosen.adaptive and chosen.total_bytes < 0.95 * static.total_bytes
    assert np.array_equal(decode_latent(encode_latent(symbols), symbols.shape), symbols)


def test_more_spread_symbols_cost_more():
    small = analyse_latent(laplace_symbols(4, step=2.0)).total_bytes
    large = analyse_latent(laplace_symbols(4, step=0.25)).total_bytes
    assert small < large


def test_refuses_unknown_method_and_trailing_garbage():
    symbols = laplace_symbols(5, shape=(2, 4, 4))
    blob = encode_latent(symbols)
    with pytest.raises(UnsupportedFileError, match="method 5"):
        decode_latent(bytes([5]) + blob[1:], symbols.shape)
    with pytest.raises(CorruptFileError):
        decode_latent(blob + b"\x01\x02\x03\x04\x05", symbols.shape)


_CHILD = """
import sys, numpy as np, torch
torch.set_num_threads(1)
from neurcodec.bitstream import decode_latent, encode_latent
data = sys.stdin.buffer.read()
shape = (16, 16, 24)
symbols = decode_latent(data, shape)
sys.stdout.buffer.write(symbols.astype('<i4').tobytes() + encode_latent(symbols))
"""


def test_decoding_in_another_process_with_other_thread_count_is_identical():
    import torch

    torch.set_num_threads(2)
    symbols = laplace_symbols(6)
    blob = encode_latent(symbols)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], input=blob, capture_output=True, env=env, check=True
    ).stdout
    n = symbols.size * 4
    child_symbols = np.frombuffer(out[:n], dtype="<i4").reshape(symbols.shape)
    assert np.array_equal(child_symbols, symbols)
    assert out[n:] == blob  # and the child re-encodes to the very same bytes
