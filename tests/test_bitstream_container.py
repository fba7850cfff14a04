"""The .dae container: header round trips, chunks, streaming, refusals, test vectors."""

from __future__ import annotations

import io
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurcodec.bitstream import (
    DecodeSettings,
    DaeStreamWriter,
    FrameGroup,
    ImageHeader,
    VideoHeader,
    blob_check_bits,
    decode_latent,
    encode_latent,
    iter_dae_stream,
    peek_kind,
    read_image,
    read_video,
    write_image,
    write_video,
)
from neurcodec.bitstream.container import SAMPLERS, STORED_MODES
from neurcodec.errors import (
    CorruptFileError,
    TruncatedFileError,
    UnsupportedFileError,
    WrongModelError,
)

VECTORS = Path(__file__).parent / "vectors"
DIGEST = b"\x01\x02\x03\x04"

model_names = st.one_of(
    st.sampled_from(["tiny", "stable-cascade-lite", "stable-cascade"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=32),
)
decode_defaults = st.none() | st.builds(
    DecodeSettings,
    sampler=st.sampled_from(SAMPLERS),
    steps=st.integers(1, 10_000),
    guidance=st.integers(0, 1600).map(lambda g: g / 16),
    cfg_rescale=st.integers(0, 100).map(lambda r: r / 100),
)
common = dict(
    model=model_names,
    weights_digest=st.binary(min_size=4, max_size=4),
    width=st.integers(1, 1 << 16),
    height=st.integers(1, 1 << 16),
    latent_shape=st.tuples(st.integers(1, 16), st.integers(1, 64), st.integers(1, 64)),
    step_index=st.integers(0, 255),
    mode=st.sampled_from(sorted(STORED_MODES)),
    orientation=st.integers(1, 8),
    effnet_scale=st.integers(1, 256).map(lambda k: k / 64),
    seed=st.integers(0, 2**64 - 1),
    decode=decode_defaults,
)
image_headers = st.builds(ImageHeader, **common)
rationals = st.builds(Fraction, st.integers(1, 2**31 - 1), st.integers(1, 2**20))
video_headers = st.builds(
    VideoHeader,
    **common,
    fps=rationals,
    time_base=rationals,
    frame_count=st.none() | st.integers(0, 10**9),
    gop=st.integers(1, 1024),
)


def small_header(**kw) -> ImageHeader:
    args = dict(model="tiny", weights_digest=DIGEST, width=768, height=512,
                latent_shape=(16, 16, 24), step_index=100, seed=12345)
    return ImageHeader(**(args | kw))


@settings(max_examples=200, deadline=None)
@given(header=image_headers, payload=st.binary(max_size=64),
       extra=st.lists(st.tuples(st.sampled_from([0x03, 0x81, 0xFE]), st.binary(max_size=8)), max_size=3))
def test_image_round_trip(header, payload, extra):
    data = write_image(header, payload, extra)
    image = read_image(data)
    assert image.header == header
    assert image.latent == payload
    assert list(image.chunks) == extra
    assert peek_kind(data) == "image"


@settings(max_examples=100, deadline=None)
@given(header=video_headers, groups=st.lists(
    st.lists(st.binary(max_size=16), min_size=1, max_size=4).map(lambda x: FrameGroup(tuple(x))),
    max_size=4))
def test_video_round_trip(header, groups):
    data = write_video(header, groups)
    video = read_video(data)
    assert video.header == header
    assert list(video.groups) == groups
    assert peek_kind(data) == "video"


def test_kodak_image_header_is_small():
    symbols = np.zeros((16, 16, 24), dtype=np.int32)
    image = read_image(write_image(small_header(), encode_latent(symbols)))
    assert image.header_bytes <= 24
    assert image.framing_bytes <= 7  # type + length varint (1-2 bytes) + CRC32


class Pipe(io.RawIOBase):
    """A non-seekable stream that hands out data in small, uneven pieces."""

    def __init__(self, data: bytes):
        self._data, self._pos, self._n = data, 0, 0

    def readable(self):
        return True

    def seekable(self):
        return False

    def read(self, n=-1):
        self._n += 1
        n = min(n if n >= 0 else len(self._data), 1 + self._n % 5)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


def test_stream_is_written_incrementally_and_read_from_a_pipe():
    header = VideoHeader("tiny", DIGEST, 64, 48, (16, 2, 2), step_index=90)
    frames = [np.full((16, 2, 2), i, dtype=np.int32) for i in range(5)]
    sink = io.BytesIO()
    sizes = []
    with DaeStreamWriter(sink, header) as writer:
        for start in (0, 2, 4):
            writer.write_group(FrameGroup(tuple(encode_latent(f) for f in frames[start : start + 2])))
            sizes.append(len(sink.getvalue()))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]  # appended as encoded
    got_header, groups = iter_dae_stream(Pipe(sink.getvalue()))
    assert got_header == header
    decoded = [decode_latent(blob, header.latent_shape) for g in groups for blob in g.latents]
    assert all(np.array_equal(a, b) for a, b in zip(decoded, frames, strict=True))


def test_stream_without_end_is_truncated_and_aborted_writer_writes_no_end():
    header = VideoHeader("tiny", DIGEST, 64, 48, (16, 2, 2), step_index=90)
    sink = io.BytesIO()
    with pytest.raises(RuntimeError):
        with DaeStreamWriter(sink, header) as writer:
            writer.write_group(FrameGroup((b"abc",)))
            raise RuntimeError("encoder failed")
    _, groups = iter_dae_stream(io.BytesIO(sink.getvalue()))
    with pytest.raises(TruncatedFileError):
        list(groups)


def test_unknown_critical_chunk_refused_optional_skipped():
    header = small_header()
    assert read_image(write_image(header, b"x", [(0xC7, b"later")])).chunks == ((0xC7, b"later"),)
    with pytest.raises(UnsupportedFileError, match="0x47"):
        read_image(write_image(header, b"x", [(0x47, b"later")]))


def test_header_corruption_is_caught_by_the_chained_crc():
    data = bytearray(write_image(small_header(), b"payload"))
    data[10] ^= 0x01  # a bit of the width
    with pytest.raises(CorruptFileError, match="checksum"):
        read_image(bytes(data))


def test_not_a_dae_file():
    with pytest.raises(CorruptFileError, match="not a .dae"):
        read_image(b"\x89PNG\r\n\x1a\n....")
    with pytest.raises(TruncatedFileError):
        read_image(b"DA")


def test_wrong_weights_digest_names_the_model():
    data = write_image(small_header(), b"x")
    with pytest.raises(WrongModelError, match="tiny"):
        read_image(data, model="tiny", weights_digest=b"\0\0\0\0")


# ------------------------------------------------------------------ test vectors

EXPECTED = json.loads((VECTORS / "expected.json").read_text())


def test_vector_image_tiny_decodes_to_recorded_symbols():
    image = read_image((VECTORS / "image_tiny.dae").read_bytes(), model="tiny")
    for key, value in EXPECTED["image_tiny"].items():
        got = getattr(image.header, key)
        assert (list(got) if isinstance(got, tuple) else got) == value
    expected = np.load(VECTORS / "image_tiny.npy")
    assert np.array_equal(decode_latent(image.latent, image.header.latent_shape), expected)


def test_vector_image_with_a_latent_check_decodes_to_the_same_symbols():
    image = read_image((VECTORS / "image_checked.dae").read_bytes(), model="tiny")
    assert blob_check_bits(image.latent) == 32
    expected = np.load(VECTORS / "image_checked.npy")
    assert np.array_equal(expected, np.load(VECTORS / "image_tiny.npy"))
    assert np.array_equal(decode_latent(image.latent, image.header.latent_shape), expected)


def test_vector_image_named_decodes_to_recorded_symbols():
    image = read_image((VECTORS / "image_named.dae").read_bytes())
    exp = EXPECTED["image_named"]
    h = image.header
    assert (h.model, h.mode, h.orientation, h.effnet_scale, h.seed) == (
        exp["model"], exp["mode"], exp["orientation"], exp["effnet_scale"], exp["seed"])
    assert (h.decode.sampler, h.decode.steps, h.decode.guidance) == (
        exp["sampler"], exp["steps"], exp["guidance"])
    assert image.chunks == ((0x81, b"hello"),)
    expected = np.load(VECTORS / "image_named.npy")
    assert np.array_equal(decode_latent(image.latent, h.latent_shape), expected)


def test_vector_video_decodes_to_recorded_symbols():
    with open(VECTORS / "video_two_groups.dae", "rb") as f:
        header, groups = iter_dae_stream(f)
        groups = list(groups)
    assert header.fps == Fraction(*EXPECTED["video_two_groups"]["fps"])
    assert header.frame_count == EXPECTED["video_two_groups"]["frame_count"]
    assert [len(g.latents) for g in groups] == EXPECTED["video_two_groups"]["groups"]
    frames = np.load(VECTORS / "video_two_groups.npz")
    blobs = [b for g in groups for b in g.latents]
    for i, blob in enumerate(blobs):
        assert np.array_equal(decode_latent(blob, header.latent_shape), frames[f"arr_{i}"])


def test_vector_unknown_version_names_found_and_supported():
    with pytest.raises(UnsupportedFileError, match=r"version 99 .*version 1"):
        read_image((VECTORS / "version_99.dae").read_bytes())


def test_vector_other_model_refused_naming_it():
    with pytest.raises(WrongModelError, match="stable-cascade"):
        read_image((VECTORS / "other_model.dae").read_bytes(), model="tiny")
