"""Reading and writing video clips through PyAV (FFmpeg), one frame at a time.

Reading: anything FFmpeg demuxes (mp4, mkv, webm, mov, y4m, raw .h264/.hevc ...). Frames come
out as H×W×3 uint8 RGB arrays from a generator, so memory does not grow with clip length.
Raw elementary streams (.h264, .hevc, .m4v) carry no timing: their rate is *assumed* (25 fps
unless the caller gives one) and a note says so.

Writing: mp4 / mkv / mov (H.264, CRF 12 by default, or lossless), y4m (raw yuv420p/yuv444p),
or a PNG sequence (`out_%04d.png`). Frames get constant-rate timestamps `i / fps` in the
stored time base; variable frame rate is not kept.

Audio: `audio_payload` copies the first audio stream's packets, untouched, into a small
in-memory Matroska file; `VideoSink` muxes them into outputs that can hold that codec (mkv
holds any; mp4 most; y4m and PNG sequences none, a note says it was dropped).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from neurcodec import fileio
from neurcodec.errors import CorruptFileError, InputError, UsageError

DEFAULT_ASSUMED_FPS = Fraction(25)
DEFAULT_CRF = 12  # visually lossless for H.264: the output should show the codec, not x264
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".y4m", ".avi", ".ts", ".mts", ".h264", ".264", ".h265", ".265", ".hevc", ".ivf", ".flv", ".mpg", ".mpeg"}
)
# Elementary streams without container timing: FFmpeg guesses a rate, we say so.
_RAW_FORMATS = frozenset({"h264", "hevc", "m4v", "mpegvideo", "rawvideo", "ivf"})
# (container format, video codec, audio allowed) per output kind.
OUTPUT_KINDS: dict[str, tuple[str, str, bool]] = {
    "mp4": ("mp4", "libx264", True),
    "mov": ("mov", "libx264", True),
    "mkv": ("matroska", "libx264", True),
    "y4m": ("yuv4mpegpipe", "rawvideo", False),
    "png": ("image2", "png", False),
}
_SUFFIX_KIND = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "mkv", ".y4m": "y4m", ".png": "png"}
PIX_FMTS = ("yuv420p", "yuv444p")


@dataclass(frozen=True)
class VideoInfo:
    """What a decoder needs to rebuild the clip's timing, and what the user should be told."""

    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frame_count: int | None  # None when the container does not say (y4m, raw streams, pipes)
    codec: str
    container: str
    has_audio: bool = False
    notes: tuple[str, ...] = field(default=())


def looks_like_video(name: str | os.PathLike | None, head: bytes = b"") -> bool:
    """True for a video input, judged by extension, else by the first bytes (for pipes)."""
    if name is not None and Path(name).suffix.lower() in VIDEO_SUFFIXES:
        return True
    if head.startswith(b"YUV4MPEG2") or head.startswith(b"\x1a\x45\xdf\xa3"):  # y4m, Matroska/WebM
        return True
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] not in (b"avif", b"avis", b"heic", b"heix", b"mif1"):
        return True  # ISO BMFF that is not a still-image brand
    return head.startswith(b"\x00\x00\x00\x01\x67") or head.startswith(b"\x00\x00\x00\x01\x09")  # Annex B


# The containers people hand in. Demuxers that open other files or URLs (concat, HLS, DASH,
# playlists, image2 patterns) are not on it: a clip is read from itself only.
INPUT_DEMUXERS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "yuv4mpegpipe", "h264", "hevc", "mpegts",
                  "mpegvideo", "mpeg", "flv", "ivf", "obu", "asf", "ogg", "gif", "m4v")
INPUT_KINDS = "mp4/mov, mkv/webm, avi, y4m, raw H.264/HEVC/AV1, MPEG-TS/PS, flv, ivf, wmv, ogg, gif"


def _open_input(source: str | os.PathLike | BinaryIO):
    import av

    try:
        return av.open(source if not isinstance(source, os.PathLike) else os.fspath(source), "r",
                       options={"format_whitelist": ",".join(INPUT_DEMUXERS)})
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise InputError(f"{_name(source)}: not a video in a container neurcodec reads ({INPUT_KINDS}): {exc}") from None


def _name(source: object) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "<stream>"


class VideoSource:
    """An opened input clip: `.info`, then `frames()` once (RGB arrays, in display order)."""

    def __init__(self, source: str | os.PathLike | BinaryIO, *, fps: Fraction | float | None = None) -> None:
        self._source = source
        self._container = _open_input(source)
        streams = self._container.streams.video
        if not streams:
            self._container.close()
            raise InputError(f"{_name(source)}: has no video stream")
        stream = streams[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            self._container.close()
            raise InputError(f"{_name(source)}: video stream has no frame size")
        notes: list[str] = []
        fmt = self._container.format.name.split(",")[0]
        raw = fmt in _RAW_FORMATS and fmt != "rawvideo"
        if fps is not None:
            rate = Fraction(fps).limit_denominator(1_000_000)
            if rate <= 0:
                raise UsageError(f"fps must be positive, got {fps}")
        elif raw:
            rate = DEFAULT_ASSUMED_FPS
            notes.append(f"{_name(source)}: raw {fmt} stream has no timing; assuming {rate} fps (set --fps)")
        else:
            guess = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not guess:
                rate = DEFAULT_ASSUMED_FPS
                notes.append(f"{_name(source)}: no frame rate in the container; assuming {rate} fps")
            else:
                rate = Fraction(guess.numerator, guess.denominator)
        time_base = Fraction(stream.time_base.numerator, stream.time_base.denominator) if stream.time_base else 1 / rate
        if raw or fps is not None:
            time_base = 1 / rate  # a raw stream's time base is FFmpeg's parser clock, not the clip's
        self.info = VideoInfo(
            width=ctx.width,
            height=ctx.height,
            fps=rate,
            time_base=time_base,
            frame_count=stream.frames or None,
            codec=ctx.name,
            container=fmt,
            has_audio=bool(self._container.streams.audio),
            notes=tuple(notes),
        )
        self._stream = stream

    def frames(self) -> Iterator[np.ndarray]:
        """H×W×3 uint8 RGB frames, decoded one at a time."""
        import av

        self._stream.thread_type = "AUTO"
        try:
            for frame in self._container.decode(self._stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise InputError(f"{_name(self._source)}: cannot decode video ({exc})") from None

    def audio_payload(self) -> bytes | None:
        """The first audio stream, stream-copied into an in-memory Matroska file (None if none).

        Needs a second pass over the input, so only for inputs that can be reopened (paths) or
        rewound (seekable file objects); for a pipe the audio is dropped with a note.
        """
        if not self.info.has_audio:
            return None
        source = self._source
        if not isinstance(source, (str, os.PathLike)):
            if not (hasattr(source, "seekable") and source.seekable()):
                return None
        return copy_audio(source)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def copy_audio(source: str | os.PathLike | BinaryIO) -> bytes | None:
    """Stream-copy the first audio stream of `source` into Matroska bytes (None if none)."""
    import av

    if not isinstance(source, (str, os.PathLike)):
        position = source.tell()
    container = _open_input(source)
    try:
        if not container.streams.audio:
            return None
        in_stream = container.streams.audio[0]
        buf = io.BytesIO()
        with av.open(buf, "w", format="matroska") as out:
            out_stream = out.add_stream_from_template(in_stream)
            for packet in container.demux(in_stream):
                if packet.dts is None:  # the demuxer's final flush packet
                    continue
                packet.stream = out_stream
                out.mux(packet)
        return buf.getvalue()
    finally:
        container.close()
        if not isinstance(source, (str, os.PathLike)):
            source.seek(position)


def output_kind(target: str | os.PathLike | None, fmt: str | None = None) -> str:
    """mp4 / mov / mkv / y4m / png from `--format` or the extension (stdout: y4m)."""
    if fmt is not None:
        kind = {"matroska": "mkv", "yuv4mpegpipe": "y4m", "m4v": "mp4"}.get(fmt.lower(), fmt.lower())
        if kind not in OUTPUT_KINDS:
            raise UsageError(f"unknown video format {fmt!r}; choose one of {', '.join(OUTPUT_KINDS)}")
        return kind
    if target is None or str(target) == "-":
        return "y4m"  # raw and streamable: what ffmpeg/x264 read from a pipe
    suffix = Path(target).suffix.lower()
    if suffix not in _SUFFIX_KIND:
        raise UsageError(f"{target}: cannot tell the video format from '{suffix}'; use one of .mp4 .mkv .mov .y4m or out_%04d.png")
    kind = _SUFFIX_KIND[suffix]
    if kind == "png" and fileio.number_fields(Path(target).name) != 1:
        raise UsageError(f"{target}: a PNG sequence needs a name with one number field such as out_%04d.png (%% for a literal %)")
    return kind


class VideoSink:
    """Writes RGB frames to a clip with constant-rate timestamps; `close()` finishes the file.

    `target` is a binary file object (container kinds) or a `%d`-style path pattern (png).
    """

    def __init__(
        self,
        target: BinaryIO | str | os.PathLike,
        kind: str,
        *,
        width: int,
        height: int,
        fps: Fraction,
        time_base: Fraction | None = None,
        pix_fmt: str = "yuv420p",
        crf: int | None = None,
        lossless: bool = False,
        audio: bytes | None = None,
        overwrite: bool = True,
    ) -> None:
        import av

        if kind not in OUTPUT_KINDS:
            raise UsageError(f"unknown video format {kind!r}")
        if pix_fmt not in PIX_FMTS:
            raise UsageError(f"pixel format must be one of {', '.join(PIX_FMTS)}, got {pix_fmt!r}")
        self.kind = kind
        self.notes: list[str] = []
        self.frames_written = 0
        self._size = (width, height)
        self._pattern = None
        self._overwrite = overwrite  # PNG sequences: whether a frame may replace an existing file
        if kind == "png":
            self._pattern = str(target)
            if audio:
                self.notes.append("a PNG sequence cannot hold audio; the audio was not written")
            return
        fmt, codec, audio_ok = OUTPUT_KINDS[kind]
        options = {}
        if kind in ("mp4", "mov") and not (hasattr(target, "seekable") and target.seekable()):
            options["movflags"] = "frag_keyframe+empty_moov"  # mp4 to a pipe
        self._out = av.open(target, "w", format=fmt, options=options)
        if kind == "y4m" and (width % 2 or height % 2) and pix_fmt == "yuv420p":
            pix_fmt = "yuv444p"  # 4:2:0 needs even sides; keep every pixel instead of cropping
        stream = self._out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        # y4m stores the frame rate as the time base: a clip's own time base cannot survive there.
        tb = 1 / fps if kind == "y4m" or time_base is None else time_base
        stream.time_base = tb
        stream.codec_context.time_base = tb
        if codec == "libx264":
            if (width % 2 or height % 2) and pix_fmt == "yuv420p":
                pix_fmt = stream.pix_fmt = "yuv444p"
            stream.options = {"crf": "0" if lossless else str(DEFAULT_CRF if crf is None else crf), "preset": "medium"}
            if lossless and pix_fmt == "yuv420p":
                self.notes.append("lossless H.264 in yuv420p still subsamples chroma; use yuv444p for exact colour")
        self._stream = stream
        self._tb = tb
        self._fps = fps
        self._pix_fmt = pix_fmt
        self._audio_in = None
        self._audio_packets: Iterator | None = None
        self._audio_stream = None
        self._pending_audio = None
        if audio:
            if not audio_ok:
                self.notes.append(f"{kind} cannot hold audio; the audio was not written")
            else:
                self._open_audio(audio)

    def _open_audio(self, audio: bytes) -> None:
        import av

        try:
            self._audio_in = av.open(io.BytesIO(audio), "r", format="matroska")  # what the encoder stores, only
        except (av.error.FFmpegError, ValueError) as exc:
            raise CorruptFileError(f"the audio chunk is not a Matroska audio stream ({exc})") from None
        try:
            template = self._audio_in.streams.audio[0]
            self._audio_stream = self._out.add_stream_from_template(template)
        except (av.error.FFmpegError, ValueError, IndexError) as exc:
            self.notes.append(f"audio could not be carried into {self.kind} ({exc}); it was not written")
            self._audio_in = self._audio_stream = None
            return
        self._audio_packets = (p for p in self._audio_in.demux(template) if p.dts is not None)

    def _mux_audio_until(self, seconds: float | None) -> None:
        """Interleave audio packets up to the current video time (all of them at the end)."""
        while self._audio_packets is not None:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None:
                self._audio_packets = None
                return
            if seconds is not None and packet.pts is not None and float(packet.pts * packet.time_base) > seconds:
                self._pending_audio = packet
                return
            packet.stream = self._audio_stream
            self._out.mux(packet)

    def write(self, rgb: np.ndarray) -> None:
        import av

        if rgb.shape != (self._size[1], self._size[0], 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame must be {self._size[1]}×{self._size[0]}×3 uint8, got {rgb.shape} {rgb.dtype}")
        index = self.frames_written
        if self._pattern is not None:
            from PIL import Image

            path = fileio.numbered(self._pattern, index + 1)  # numbered from 1, as ffmpeg's image2 muxer does
            fileio.atomic_write(path, lambda f: Image.fromarray(rgb, "RGB").save(f, format="PNG"), overwrite=self._overwrite)
            self.frames_written += 1
            return
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=self._pix_fmt)
        frame.pts = round(index / (self._fps * self._tb))
        frame.time_base = self._tb
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        self.frames_written += 1
        self._mux_audio_until(float(index / self._fps))

    def close(self) -> None:
        if self._pattern is not None:
            return
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._mux_audio_until(None)
        self._out.close()
        if self._audio_in is not None:
            self._audio_in.close()


def read_clip(source: str | os.PathLike | BinaryIO, limit: int | None = None) -> tuple[VideoInfo, list[np.ndarray]]:
    """All (or the first `limit`) frames of a short clip in memory; for tests and benchmarks."""
    with VideoSource(source) as src:
        frames = []
        for frame in src.frames():
            frames.append(frame)
            if limit is not None and len(frames) >= limit:
                break
        return src.info, frames
