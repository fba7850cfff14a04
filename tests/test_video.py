"""The video codec end to end on small synthetic clips and the random-weight micro model."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from neurcodec import describe
from neurcodec.bitstream import CHUNK_AUDIO, FrameGroup, iter_dae_stream, read_video
from neurcodec.errors import CorruptFileError, InputError, TruncatedFileError, UsageError, WrongModelError
from neurcodec.video import VideoCodec, group_symbols
from neurcodec.video_io import VideoSource, looks_like_video, output_kind, read_clip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tests share 2 cores with a training job: stay on one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _frames(n: int, width: int, height: int, speed: int = 1, seed: int = 0) -> list[np.ndarray]:
    """A smooth textured background with a bright square moving `speed` px per frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    # Bilinear-upsampled noise: texture with structure, like a photo, cheap to make.
    ys, xs = np.linspace(0, base.shape[0] - 2, height), np.linspace(0, base.shape[1] - 2, width + 64)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    big = (base[y0][:, x0] * (1 - fy) * (1 - fx) + base[y0 + 1][:, x0] * fy * (1 - fx)
           + base[y0][:, x0 + 1] * (1 - fy) * fx + base[y0 + 1][:, x0 + 1] * fy * fx)
    out = []
    for i in range(n):
        frame = big[:, i * speed : i * speed + width].copy()
        frame[height // 4 : height // 4 + 16, 8 + i * speed : 24 + i * speed] = 250
        out.append(frame.clip(0, 255).astype(np.uint8))
    return out


def _write_clip(path: Path, frames: list[np.ndarray], fps=Fraction(24), codec="libx264", audio=False) -> Path:
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "10"}
        astream = out.add_stream("aac", rate=16000) if audio else None
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None:
            t = np.arange(int(16000 * len(frames) / fps)) / 16000
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            aframe.sample_rate, aframe.pts = 16000, 0
            for packet in astream.encode(aframe):
                out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    return path


@pytest.fixture(scope="module")
def video_codec(random_codec):
    return VideoCodec(random_codec, batch=3)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", _frames(7, 96, 64), fps=Fraction(30000, 1001))


def _encode(video_codec, source, **options) -> bytes:
    buf = io.BytesIO()
    video_codec.encode(source, buf, **options)
    return buf.getvalue()


class _Pipe(io.RawIOBase):
    """A read-only, non-seekable stream, like stdin from a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b) -> int:
        chunk = self._data.read(min(len(b), 7))  # short reads, as pipes give
        b[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("kind", ["mp4", "mkv", "y4m"])
def test_round_trip_keeps_frames_fps_and_size(video_codec, clip, tmp_path, kind):
    data = _encode(video_codec, clip, quality=40, gop=4, steps=1)
    target = tmp_path / f"out.{kind}"
    with target.open("wb") as f:
        report = video_codec.decode(io.BytesIO(data), f, kind)
    assert report.frames == 7
    info, frames = read_clip(target)
    assert len(frames) == 7
    assert (info.width, info.height) == (96, 64)
    assert info.fps == Fraction(30000, 1001)
    if kind == "mp4":
        assert info.time_base == Fraction(1, 30000)  # the source's own time base


def test_png_sequence_output(video_codec, clip, tmp_path):
    data = _encode(video_codec, clip, quality=40, gop=3, steps=1, limit=3)
    video_codec.decode(io.BytesIO(data), tmp_path / "f_%03d.png", "png")
    assert sorted(p.name for p in tmp_path.glob("f_*.png")) == ["f_001.png", "f_002.png", "f_003.png"]


def test_decode_from_a_pipe_matches_decode_from_memory(video_codec, clip):
    data = _encode(video_codec, clip, quality=40, gop=4, steps=2, limit=5)
    a = list(video_codec.frames(video_codec.open(io.BytesIO(data))))
    b = list(video_codec.frames(video_codec.open(_Pipe(data))))
    assert len(a) == len(b) == 5
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_encode_to_a_pipe_writes_groups_as_they_complete(video_codec, clip):
    class Sink(io.RawIOBase):  # non-seekable, remembers write sizes
        def __init__(self):
            self.parts = []

        def writable(self):
            return True

        def write(self, b):
            self.parts.append(bytes(b))
            return len(b)

    sink = Sink()
    video_codec.encode(clip, sink, quality=40, gop=2, limit=5)
    data = b"".join(sink.parts)
    assert len(read_video(data).groups) == 3  # 2 + 2 + 1
    assert len(sink.parts) >= 5  # header, groups and END arrive separately, never as one blob


def test_streams_are_deterministic_and_record_settings(video_codec, clip):
    a = _encode(video_codec, clip, quality=30, gop=3, seed=4, steps=5, sampler="ddim")
    assert a == _encode(video_codec, clip, quality=30, gop=3, seed=4, steps=5, sampler="ddim")
    info = describe(io.BytesIO(a))
    assert info["frames"] == 7 and info["groups"] == 3 and info["gop"] == 3
    assert info["seed"] == 4 and info["decode_defaults"]["steps"] == 5
    assert info["fps"] == "30000/1001"
    assert info["duration"] == pytest.approx(7 * 1001 / 30000)
    assert info["kbps"] == pytest.approx(8 * len(a) / 1000 / info["duration"])
    assert info["bytes"] == len(a)


def test_closed_loop_symbols_stay_within_hysteresis(random_codec, clip):
    """The decoder's symbols equal the encoder's; each latent is within hysteresis·Δ."""
    from neurcodec.bitstream import step_from_index

    video_codec = VideoCodec(random_codec, batch=3)
    data = _encode(video_codec, clip, quality=60, gop=7, hysteresis=0.75)
    video = read_video(data)
    step = step_from_index(video.header.step_index)
    _, frames = read_clip(clip)
    latents = list(video_codec._latents(iter(frames)))
    decoded = list(group_symbols(video.groups[0], tuple(video.header.latent_shape)))
    assert len(decoded) == 7
    for latent, symbols in zip(latents, decoded, strict=True):
        assert np.abs(latent / step - symbols).max() <= 0.75 + 1e-6


def test_temporal_prediction_spends_fewer_bits_than_intra(video_codec, tmp_path):
    slow = _write_clip(tmp_path / "slow.mp4", _frames(8, 128, 96, speed=1))
    temporal = _encode(video_codec, slow, quality=50, gop=8)
    intra = _encode(video_codec, slow, quality=50, temporal=False)
    assert len(read_video(intra).groups) == 8
    assert len(temporal) < 0.8 * len(intra)


def test_static_clip_costs_almost_nothing_after_the_first_frame_and_does_not_flicker(video_codec, tmp_path):
    still = _write_clip(tmp_path / "still.y4m", [_frames(1, 64, 64)[0]] * 4, codec="rawvideo")
    data = _encode(video_codec, still, quality=50, gop=4, steps=2)
    group = read_video(data).groups[0]
    assert [len(b) for b in group.latents[1:]] == [0, 0, 0]  # skipped frames
    frames = list(video_codec.frames(video_codec.open(io.BytesIO(data))))
    assert all(np.array_equal(frames[0], f) for f in frames[1:])  # same latent, same noise


def test_one_frame_video_decodes_like_the_image_codec(random_codec, clip):
    from PIL import Image

    video_codec = VideoCodec(random_codec, batch=1)
    data = _encode(video_codec, clip, quality=50, steps=2, guidance=2.0, limit=1)
    frame = next(video_codec.frames(video_codec.open(io.BytesIO(data))))
    _, frames = read_clip(clip, limit=1)
    image = random_codec.decode(random_codec.encode(Image.fromarray(frames[0]), quality=50, steps=2, guidance=2.0))
    assert np.array_equal(frame, np.asarray(image))


def test_refine_starts_from_the_previous_result(video_codec, clip):
    data = _encode(video_codec, clip, quality=40, gop=7, steps=3, limit=6)
    plain = list(video_codec.frames(video_codec.open(io.BytesIO(data))))
    refined = list(video_codec.frames(video_codec.open(io.BytesIO(data)), refine=0.5))
    assert np.array_equal(plain[0], refined[0])  # the first batch has nothing to start from
    assert not np.array_equal(plain[-1], refined[-1])
    with pytest.raises(UsageError):
        list(video_codec.frames(video_codec.open(io.BytesIO(data)), refine=1.5))


def test_bpp_target_is_met(video_codec, clip):
    low, high = (len(_encode(video_codec, clip, quality=q, gop=7)) for q in (0, 100))
    target = 8 * (low + high) / 2 / (7 * 96 * 64)
    data = _encode(video_codec, clip, bpp=target, gop=7)  # one group: the search sees the whole file
    assert low < len(data) <= target * 7 * 96 * 64 / 8


def test_audio_is_carried_through(video_codec, tmp_path):
    source = _write_clip(tmp_path / "a.mp4", _frames(6, 64, 64), audio=True)
    data = _encode(video_codec, source, quality=30, gop=6)
    assert any(kind == CHUNK_AUDIO for kind, _ in read_video(data).chunks)
    with (tmp_path / "out.mkv").open("wb") as f:
        video_codec.decode(io.BytesIO(data), f, "mkv", steps=1)
    with av.open(str(source)) as a, av.open(str(tmp_path / "out.mkv")) as b:
        original = [bytes(p) for p in a.demux(audio=0) if p.size]
        copied = [bytes(p) for p in b.demux(audio=0) if p.size]
    assert copied == original
    with (tmp_path / "out.y4m").open("wb") as f:
        report = video_codec.decode(io.BytesIO(data), f, "y4m", steps=1)
    assert any("audio" in note for note in report.notes)


def test_raw_h264_gets_an_assumed_rate_and_a_note(tmp_path):
    mp4 = _write_clip(tmp_path / "c.mp4", _frames(3, 64, 64))
    raw = tmp_path / "c.h264"
    with av.open(str(mp4)) as src, av.open(str(raw), "w", format="h264") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    with VideoSource(raw) as src:
        assert src.info.fps == 25 and any("assuming" in n for n in src.info.notes)
        assert len(list(src.frames())) == 3
    with VideoSource(raw, fps=Fraction(50)) as src:
        assert src.info.fps == 50 and not src.info.notes


def test_corrupt_and_truncated_streams_raise_typed_errors(video_codec, clip, random_codec):
    data = _encode(video_codec, clip, quality=40, gop=4, limit=5)
    with pytest.raises(TruncatedFileError):
        list(video_codec.frames(video_codec.open(io.BytesIO(data[:-3])), steps=1))
    with pytest.raises(TruncatedFileError):
        describe(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    with pytest.raises(CorruptFileError):
        list(video_codec.frames(video_codec.open(io.BytesIO(bytes(flipped))), steps=1))
    with pytest.raises(CorruptFileError):
        describe(b"NOTDAE" + data)
    with pytest.raises(CorruptFileError):
        list(group_symbols(FrameGroup((b"",)), (16, 2, 3)))


def test_stream_from_another_model_is_refused(video_codec, clip):
    import dataclasses

    from neurcodec.bitstream import DaeStreamWriter

    data = _encode(video_codec, clip, quality=40, gop=4, limit=2)
    header, groups = iter_dae_stream(io.BytesIO(data))
    other = io.BytesIO()
    with DaeStreamWriter(other, dataclasses.replace(header, model="stable-cascade-lite")) as w:
        for g in groups:
            w.write_group(g)
    with pytest.raises(WrongModelError, match="stable-cascade-lite"):
        video_codec.open(io.BytesIO(other.getvalue()))


def test_bad_inputs_are_input_errors(video_codec, tmp_path):
    with pytest.raises(InputError):
        _encode(video_codec, tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError):
        _encode(video_codec, junk)
    with pytest.raises(UsageError):
        _encode(video_codec, junk, quality=10, bpp=0.1)


def test_input_and_output_kinds():
    assert looks_like_video("a.MP4") and looks_like_video("x.y4m") and not looks_like_video("a.png")
    assert looks_like_video("-", b"YUV4MPEG2 W64") and looks_like_video(None, b"\x00\x00\x00\x18ftypisom")
    assert not looks_like_video(None, b"\x00\x00\x00\x18ftypavif") and not looks_like_video(None, b"\x89PNG")
    assert output_kind("o.mkv") == "mkv" and output_kind("-") == "y4m" and output_kind("o_%04d.png") == "png"
    assert output_kind("x.bin", "matroska") == "mkv"
    with pytest.raises(UsageError):
        output_kind("o.png")  # a single PNG is not a sequence
    with pytest.raises(UsageError):
        output_kind("o.avi")
