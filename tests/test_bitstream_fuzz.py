"""Hostile input: >= 10,000 truncated / bit-flipped / spliced files per run.

Only neurcodec's typed bitstream errors may escape, nothing may hang, no declared size may
drive an allocation (tracemalloc peak stays small), and a mutated latent payload behind valid
CRCs never decodes to other symbols when the blob carries its check.
"""

from __future__ import annotations

import io
import random
import tracemalloc
from fractions import Fraction

import numpy as np

from neurcodec.bitstream import (
    DecodeSettings,
    FrameGroup,
    ImageHeader,
    VideoHeader,
    decode_latent,
    encode_latent,
    iter_dae_stream,
    read_image,
    write_image,
    write_video,
)
from neurcodec.errors import BitstreamError

N_FILES = 10_500
PEAK_LIMIT = 8 << 20  # bytes; a single unchecked declared length could ask for 64 MiB+


def _seed_symbols() -> np.ndarray:
    rng = np.random.default_rng(0)
    sym = np.rint(rng.laplace(size=(3, 2, 3)) * 3).astype(np.int32)
    sym[0, 0, 0] = 5000  # an escape
    return sym


def _seed_parts(check_bits: int = 32):
    sym = _seed_symbols()
    blob = encode_latent(sym, check_bits=check_bits)
    checked = bool(check_bits)
    img = ImageHeader("tiny", b"abcd", 40, 30, sym.shape, step_index=100, seed=9,
                      decode=DecodeSettings("ddim", 20, 3.0, 0.5), latent_checks=checked)
    named = ImageHeader("x-model", b"abcd", 5, 5, sym.shape, step_index=3, mode="LA", latent_checks=checked)
    vid = VideoHeader("tiny", b"abcd", 40, 30, sym.shape, step_index=90, fps=Fraction(24000, 1001),
                      frame_count=3, latent_checks=checked)
    return blob, img, named, vid


def seeds() -> list[tuple[str, bytes]]:
    blob, img, named, vid = _seed_parts()
    return [
        ("image", write_image(img, blob)),
        ("image", write_image(named, blob, [(0x81, b"meta"), (0x03, b"alpha")])),
        ("video", write_video(vid, [FrameGroup((blob, blob)), FrameGroup((blob,))])),
        ("blob", blob),
    ]


def payload_mutant(rng: random.Random, pool: list[bytes]) -> tuple[str, bytes, str]:
    """A file whose every CRC holds but whose latent payload is mutated: what a forger (not a
    flaky disk) hands in, reaching the entropy decoder past the container's checks. Its blob
    carries a 32-bit check, or (one in four) none, as files written before checks existed."""
    checked = rng.random() < 0.75
    blob, img, _, vid = _seed_parts(32 if checked else 0)
    bad = mutate(rng, blob, pool)
    tag = "checked" if checked else "unchecked"
    if rng.random() < 0.5:
        return "image", write_image(img, bad), tag
    return "video", write_video(vid, [FrameGroup((blob, bad)), FrameGroup((bad,))]), tag


def fuzz_cases(n: int, rng: random.Random):
    """`n` (kind, bytes, tag) cases: every fifth a CRC-valid file with a mutated latent payload
    (tag "checked"/"unchecked"), the rest (tag "") truncated / bit-flipped / spliced /
    overwritten variants of the seed files."""
    corpus = seeds()
    pool = [d for _, d in corpus]
    for i in range(n):
        if i % 5 == 4:
            yield payload_mutant(rng, pool)
        else:
            kind, data = corpus[i % len(corpus)]
            yield kind, mutate(rng, data, pool), ""


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # truncate
        return data[: rng.randrange(len(data))]
    buf = bytearray(data)
    if kind == 1:  # flip 1-3 bits
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        return bytes(buf)
    if kind == 2:  # splice another file's tail in
        other = rng.choice(pool)
        return bytes(buf[: rng.randrange(len(buf))] + other[rng.randrange(len(other)) :])
    i = rng.randrange(len(buf))  # overwrite a byte with an extreme value
    buf[i] = rng.choice([0x00, 0x7F, 0x80, 0xFF])
    return bytes(buf)


def parse(kind: str, data: bytes) -> list[np.ndarray]:
    """Every latent blob of a file, decoded."""
    if kind == "blob":
        return [decode_latent(data, (3, 2, 3))]
    if kind == "image":
        image = read_image(data)
        return [decode_latent(image.latent, image.header.latent_shape, image.header.latent_checks)]
    header, groups = iter_dae_stream(io.BytesIO(data))
    return [decode_latent(blob, header.latent_shape, header.latent_checks)
            for group in groups for blob in group.latents]


def outcome(kind: str, sample: bytes, tag: str) -> str:
    """The error type's name, "accepted", or for a payload mutant that decodes to symbols other
    than the seed's, "altered_<tag>" (a different picture behind valid CRCs)."""
    try:
        decoded = parse(kind, sample)
    except BitstreamError as exc:
        return type(exc).__name__
    if tag and any(not np.array_equal(d, _seed_symbols()) for d in decoded):
        return f"altered_{tag}"
    return "accepted"


def run_fuzz(n: int, seed: int = 1234) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    for case in fuzz_cases(n, random.Random(seed)):
        name = outcome(*case)
        outcomes[name] = outcomes.get(name, 0) + 1
    return outcomes


def test_seeds_parse_cleanly():
    for kind, data in seeds():
        assert all(np.array_equal(d, _seed_symbols()) for d in parse(kind, data))


def test_fuzzed_files_raise_only_typed_errors_with_bounded_memory():
    tracemalloc.start()
    try:
        outcomes = run_fuzz(N_FILES)  # any other exception type fails the test right here
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(outcomes.values()) == N_FILES
    assert outcomes.get("CorruptFileError", 0) > 0 and outcomes.get("TruncatedFileError", 0) > 0
    assert "altered_checked" not in outcomes, outcomes
    assert peak < PEAK_LIMIT


def test_huge_declared_sizes_are_refused_before_allocating():
    base = bytearray(seeds()[0][1])
    # declare a 2**40-byte chunk right after the header: must fail fast on the bound
    header_len = read_image(bytes(base)).header_bytes
    bad = bytes(base[: header_len + 1]) + bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x20])
    tracemalloc.start()
    try:
        try:
            read_image(bad)
            raise AssertionError("accepted a 2**40-byte chunk")
        except BitstreamError:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
