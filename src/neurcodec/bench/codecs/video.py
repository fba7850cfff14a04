"""Video in the bench: H.264 / H.265 anchors through PyAV (CRF sweep) and neurcodec's video codec.

Anchors follow CompressAI's video bench settings: `-preset medium -tune psnr`, no B-frames,
yuv420p, one intra frame per `gop` frames (32 by default, like neurcodec's `--gop`). Every
codec codes a whole clip; rows are per clip (`Row.image` = clip name) with bpp from the whole
stream, kbps, and PSNR over all RGB samples of all frames. The rows and curves have the image
bench's layout, so `report.py` (tables, BD-rate, JSON, plots) works unchanged.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from neurcodec.errors import UsageError
from neurcodec.media import IMAGE_SUFFIXES, find_files
from neurcodec.video_io import VIDEO_SUFFIXES

DEFAULT_GOP = 32


@dataclass(frozen=True)
class CodedClip:
    bytes: int
    decoded: list[np.ndarray]
    encode_seconds: float
    decode_seconds: float


class VideoBenchCodec:
    """A codec with a scalar knob that codes a whole clip (frames as H×W×3 uint8 RGB)."""

    name = ""
    description = ""
    qualities: tuple[int, ...] = ()
    quality_label = "quality"
    parallel_safe = False

    def run(self, frames: list[np.ndarray], fps: Fraction, quality: int) -> CodedClip:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class PyAVAnchor(VideoBenchCodec):
    """FFmpeg's libx264 / libx265 in memory (Matroska), CRF as the knob (lower CRF = more bits)."""

    encoder = ""
    quality_label = "crf"
    qualities = (51, 45, 40, 35, 30, 25, 20)  # from the lowest quality (CRF 51) up, like the image anchors

    def __init__(self, gop: int = DEFAULT_GOP) -> None:
        self.gop = gop
        self.description = f"{self.encoder} via PyAV, preset medium, tune psnr, no B-frames, yuv420p, gop {gop}"

    @classmethod
    def unavailable(cls) -> str:
        import av

        try:
            av.codec.Codec(cls.encoder, "w")
        except Exception:  # noqa: BLE001 - PyAV raises different types across versions
            return f"this FFmpeg build has no {cls.encoder} encoder"
        return ""

    def options(self, quality: int) -> dict[str, str]:
        return {"crf": str(quality), "preset": "medium", "tune": "psnr", "bf": "0", "g": str(self.gop)}

    def run(self, frames: list[np.ndarray], fps: Fraction, quality: int) -> CodedClip:
        import av

        height, width = frames[0].shape[:2]
        buf = io.BytesIO()
        start = time.perf_counter()
        with av.open(buf, "w", format="matroska") as out:
            stream = out.add_stream(self.encoder, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
            stream.options = self.options(quality)
            stream.codec_context.thread_count = 1
            for frame in frames:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[: stream.height, : stream.width]), format="rgb24")
                for packet in stream.encode(vf):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        data = buf.getvalue()
        middle = time.perf_counter()
        decoded = []
        with av.open(io.BytesIO(data)) as container:
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")
                if rgb.shape != frames[0].shape:  # odd sides: repeat the last row/column
                    rgb = np.pad(rgb, ((0, height - rgb.shape[0]), (0, width - rgb.shape[1]), (0, 0)), mode="edge")
                decoded.append(rgb)
        # Container overhead is counted: bpp comes from the whole stream, as for neurcodec.
        return CodedClip(len(data), decoded, middle - start, time.perf_counter() - middle)


class H264(PyAVAnchor):
    name = "h264"
    encoder = "libx264"


class H265(PyAVAnchor):
    name = "h265"
    encoder = "libx265"

    def options(self, quality: int) -> dict[str, str]:
        return {"crf": str(quality), "preset": "medium", "tune": "psnr",
                "x265-params": f"bframes=0:keyint={self.gop}:info=0:log-level=error"}  # info=0: no settings SEI


VIDEO_ANCHORS: dict[str, type[PyAVAnchor]] = {c.name: c for c in (H264, H265)}


class NeuralVideo(VideoBenchCodec):
    """neurcodec's video codec at fixed decode settings; -q is the knob."""

    quality_label = "q"

    def __init__(self, codec, model: str, steps: int | None = None, qualities: Sequence[int] = (5, 20, 40, 60),
                 gop: int = DEFAULT_GOP, seed: int = 0) -> None:
        from neurcodec.video import VideoCodec

        self.video = VideoCodec(codec)
        self.steps, self.gop, self.seed = steps, gop, seed
        self.qualities = tuple(qualities)
        self.name = f"neurcodec-{model}" + (f"-s{steps}" if steps is not None else "")
        self.description = f"neurcodec video, model {model} (gop {gop}, steps {steps or 'default'}, seed {seed})"

    def run(self, frames: list[np.ndarray], fps: Fraction, quality: int) -> CodedClip:
        from neurcodec.video_io import VideoSink

        height, width = frames[0].shape[:2]
        clip = io.BytesIO()  # lossless y4m (4:4:4) of the frames: the codec reads what it was given
        sink = VideoSink(clip, "y4m", width=width, height=height, fps=fps, pix_fmt="yuv444p")
        for frame in frames:
            sink.write(frame)
        sink.close()
        clip.seek(0)
        out = io.BytesIO()
        start = time.perf_counter()
        self.video.encode(clip, out, quality=quality, gop=self.gop, audio=False)
        middle = time.perf_counter()
        decoded = list(self.video.frames(self.video.open(io.BytesIO(out.getvalue())), steps=self.steps, seed=self.seed))
        return CodedClip(len(out.getvalue()), decoded, middle - start, time.perf_counter() - middle)


def find_clips(directory: Path, limit: int | None = None) -> list[Path]:
    """Video files directly in `directory` (sorted by name), at most `limit`."""
    return find_files(directory, VIDEO_SUFFIXES, "videos", limit=limit)


def is_video_dir(directory: Path) -> bool:
    """True when `directory` holds videos and no images (what `neurcodec bench` dispatches on)."""
    if not directory.is_dir():
        return False
    suffixes = {p.suffix.lower() for p in directory.iterdir() if p.is_file()}
    return bool(suffixes & set(VIDEO_SUFFIXES)) and not suffixes & set(IMAGE_SUFFIXES)


def make_video_plan(config):
    """The video counterpart of `plan.make_plan`: anchors h264/h265, neurcodec if a model is set."""
    from neurcodec.bench.plan import Plan

    notes, sweeps = [], []
    for spec in config.anchors:
        key = spec.strip().lower()
        if key not in VIDEO_ANCHORS:
            raise UsageError(f"unknown video anchor {spec!r}; known: {', '.join(VIDEO_ANCHORS)}")
        why = VIDEO_ANCHORS[key].unavailable()
        if why:
            notes.append(f"{spec}: skipped ({why})")
            continue
        codec = VIDEO_ANCHORS[key]()
        sweeps.append((codec, list(config.anchor_qualities.get(codec.name) or codec.qualities)))
    anchors = [c.name for c, _ in sweeps]
    tests: list[str] = []
    if config.model:
        import neurcodec

        loaded = neurcodec.load(config.model, device=config.device) if config.device else neurcodec.load(config.model)
        for steps in list(config.steps) or [None]:
            kwargs = {"qualities": config.qualities} if config.qualities else {}
            codec = NeuralVideo(loaded, config.model, steps, **kwargs)
            sweeps.insert(len(tests), (codec, list(codec.qualities)))
            tests.append(codec.name)
    elif anchors:
        tests, anchors = anchors[1:], anchors[:1]
    if not sweeps:
        raise UsageError("nothing to benchmark: no available video anchor and --no-neural")
    return Plan(sweeps, tests, anchors, notes)


def run_video_bench(
    clips: Sequence[Path],
    sweeps: Sequence[tuple[VideoBenchCodec, Sequence[int]]],
    max_frames: int | None = None,
    on_row: Callable | None = None,
):
    """Every (codec, quality) on every clip (first `max_frames` frames); BenchResults layout,
    with `kbps` added to every curve's results."""
    from neurcodec.bench.metrics import psnr
    from neurcodec.bench.runner import BenchResults, Row, summarize
    from neurcodec.video_io import read_clip

    rows = []
    loaded = []
    for path in clips:
        info, frames = read_clip(path, limit=max_frames)
        loaded.append((path.name, info.fps, frames))
    for codec, qualities in sweeps:
        for q in qualities:
            for name, fps, frames in loaded:
                coded = codec.run(frames, fps, q)
                if len(coded.decoded) != len(frames):
                    raise RuntimeError(f"{codec.name} decoded {len(coded.decoded)} of {len(frames)} frames of {name}")
                height, width = frames[0].shape[:2]
                row = Row(
                    codec=codec.name, quality=q, image=name, width=width, height=height, bytes=coded.bytes,
                    bpp=8 * coded.bytes / (len(frames) * width * height),
                    encoding_time=coded.encode_seconds, decoding_time=coded.decode_seconds,
                    metrics={"psnr-rgb": psnr(np.stack(frames), np.stack(coded.decoded))},
                )
                rows.append(row)
                if on_row:
                    on_row(row)
    metrics = ["psnr-rgb"]
    durations = {name: len(frames) / float(fps) for name, fps, frames in loaded}
    curves = []
    for codec, qualities in sweeps:
        curve = summarize(codec, qualities, rows, metrics)
        curve.results["kbps"] = [  # per-clip means, like bpp (not a metric: no BD on it)
            math.fsum(8 * r.bytes / 1000 / durations[r.image] for r in rows if r.codec == codec.name and r.quality == q)
            / max(1, sum(1 for r in rows if r.codec == codec.name and r.quality == q))
            for q in qualities
        ]
        curves.append(curve)
    return BenchResults([name for name, _, _ in loaded], metrics, rows, curves)
