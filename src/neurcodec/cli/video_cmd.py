"""Video branches of `neurcodec encode/decode/info`: codec_cmd asks `is_video_*` and hands over.

Kept apart from codec_cmd so the image commands stay readable; like them, these functions only
open files and call the Python API (`neurcodec.video`).
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

from neurcodec import fileio
from neurcodec.errors import InputError, UsageError

VIDEO_OUTPUT_FORMATS = ("mp4", "mkv", "mov", "y4m", "png")
VIDEO_DEFAULT_SUFFIX = ".mp4"


def _head(path: str, n: int = 16) -> bytes:
    """First bytes of a file, or of stdin without consuming them (b"" when unreadable)."""
    if fileio.is_stdio(path):
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None or sys.stdin.isatty():
            return b""
        if hasattr(stream, "peek"):  # a pipe: look without consuming
            return stream.peek(n)[:n]
        if stream.seekable():
            head = stream.read(n)
            stream.seek(-len(head), 1)
            return head
        return b""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""  # the image path reports the error with its own wording


def is_video_input(path: str) -> bool:
    from neurcodec.video_io import looks_like_video

    return looks_like_video(None if fileio.is_stdio(path) else path, _head(path))


def is_video_dae(path: str) -> bool:
    from neurcodec.bitstream import peek_kind
    from neurcodec.errors import NeurcodecError

    try:
        return peek_kind(_head(path, 5)) == "video"
    except NeurcodecError:  # not a .dae at all: the image path reports what is wrong with it
        return False


def is_video_format(fmt: str | None) -> bool:
    return fmt is not None and fmt.lower() in (*VIDEO_OUTPUT_FORMATS, "matroska")


def output_name(name: str, fmt: str | None) -> str:
    """Default output for a video `.dae`: same stem, `.mp4` (or the --format's extension)."""
    suffix = f".{fmt.lower()}" if is_video_format(fmt) and fmt.lower() != "png" else VIDEO_DEFAULT_SUFFIX
    if fmt and fmt.lower() == "png":
        return f"{fileio.escape_percent(str(Path(name).with_suffix('')))}_%04d.png"
    return str(Path(name).with_suffix(suffix))


def _open_source(path: str) -> BinaryIO | str:
    if fileio.is_stdio(path):
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("refusing to read binary data from a terminal; pipe a file into '-'")
        return sys.stdin.buffer  # PyAV streams from it (formats that need seeking will fail)
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    return path


def encode_one(codec: Any, source: str, target: str, *, overwrite: bool, quality: int | None, bpp: float | None,
               gop: int | None, fps: float | None, progress: Any = None, quiet: bool = False, **decode_defaults: Any) -> tuple[dict[str, Any], str]:
    from neurcodec.video import DEFAULT_GOP, VideoCodec

    video = VideoCodec(codec)
    reports = []

    def write(f: BinaryIO) -> None:
        reports.append(video.encode(
            _open_source(source), f, quality=quality, bpp=bpp, gop=gop or DEFAULT_GOP,
            fps=Fraction(fps).limit_denominator(1_000_000) if fps else None,
            progress=progress, **decode_defaults,
        ))

    fileio.atomic_write(target, write, overwrite=overwrite)
    r = reports[0]
    _notes(r.notes, quiet)
    result = {
        "file": source, "output": target, "kind": "video", "bytes": r.bytes, "frames": r.frames,
        "fps": float(r.fps), "width": r.width, "height": r.height, "kbps": r.kbps, "bpp": r.bpp,
        "quality": r.quality, "intra_bytes": r.intra_bytes, "residual_bytes": r.residual_bytes,
        "seconds": round(r.seconds, 4),
    }
    label = lambda p: "<stdin>" if fileio.is_stdio(p) else p  # noqa: E731
    summary = (
        f"{label(source)} -> {label(target)}: {r.bytes} bytes, {r.frames} frames {r.width}x{r.height} "
        f"@ {float(r.fps):.3f} fps, {r.kbps:.1f} kbps, {r.seconds:.2f} s"
    )
    return result, summary


def decode_one(load: Any, model: str | None, source: str, target: str, *, fmt: str | None, overwrite: bool, crf: int | None,
               pix_fmt: str | None, refine: float | None, progress: Any = None, quiet: bool = False, **settings: Any) -> tuple[dict[str, Any], str]:
    from neurcodec.video import VideoCodec
    from neurcodec.video_io import output_kind

    from neurcodec.bitstream import read_header

    kind = output_kind(target, fmt if is_video_format(fmt) else None)
    if kind == "png" and fileio.is_stdio(target):
        raise UsageError("a PNG sequence cannot go to stdout; give -o out_%04d.png")
    if model is None:  # the model named in the stream header (at most a few dozen bytes)
        model = read_header(_head(source, 256)).model
    video = VideoCodec(load(model))
    options = dict(pix_fmt=pix_fmt or "yuv420p", crf=crf, refine=refine, progress=progress, **settings)
    reports = []

    def run(f: BinaryIO | str) -> None:
        if fileio.is_stdio(source):
            reports.append(video.decode(sys.stdin.buffer, f, kind, **options))
            return
        with open(source, "rb") as src:
            reports.append(video.decode(src, f, kind, **options))

    if kind == "png":
        fileio.check_numbered_output(target, overwrite)  # before the model loads
        options["overwrite"] = overwrite
        run(target)
    else:
        fileio.atomic_write(target, run, overwrite=overwrite)
    r = reports[0]
    _notes(r.notes, quiet)
    result = {
        "file": source, "output": target, "kind": "video", "format": kind, "frames": r.frames,
        "fps": float(r.fps), "width": r.width, "height": r.height, "seconds": round(r.seconds, 4),
    }
    label = lambda p: "<stdout>" if fileio.is_stdio(p) else p  # noqa: E731
    summary = f"{source} -> {label(target)}: {r.frames} frames {r.width}x{r.height} {kind}, {r.seconds:.2f} s"
    return result, summary


def _notes(notes: list[str], quiet: bool) -> None:
    if notes and not quiet:
        from rich.console import Console

        console = Console(stderr=True, highlight=False)
        for note in notes:
            console.print(f"note: {note}", markup=False)
