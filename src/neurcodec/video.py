"""The video codec: clips → a streamed `.dae` and back, through the image codec's models.

Encoding, frame by frame (memory does not grow with clip length):

    frame → EfficientNet latent → latent / Δ → integer symbols S_t
    intra (first frame of each group of `gop`):  S_t = round(latent / Δ), coded as is
    residual (the others):  R_t = round(latent / Δ − S_{t−1}), |·| < hysteresis → 0,
                            S_t = S_{t−1} + R_t, coded as R_t (an empty blob = all zero)

Prediction runs on the *decoded* symbols S_{t−1} (closed loop) and entirely in integers, so
encoder and decoder agree bit for bit and errors cannot drift. The hysteresis (≥ 0.5) keeps a
latent value that jitters around a bin edge from costing a ±1 every frame; the reconstruction
error stays below `hysteresis · Δ` instead of `Δ / 2`. Residuals go through the same
integer-table entropy coder as intra latents (its per-channel table choice adapts to them).

Decoding is temporally consistent: every frame of the clip starts from the same initial noise
and draws the same per-step noise (one seed), frames are sampled in batches through stage B,
and optionally (`refine`) a batch starts from the previous batch's result noised to
`t = refine` instead of from pure noise (partial diffusion). Identical latents thus decode to
identical frames: static content does not flicker.

Container use: a `VideoHeader`, an optional AUDIO chunk (0x81: the input's first audio stream,
stream-copied into Matroska bytes), then one FRAME_GROUP chunk per group as it is encoded, then
END (see docs/format.md).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, BinaryIO

import numpy as np
import torch

from neurcodec import limits
from neurcodec.bitstream import (
    CHUNK_AUDIO,
    DaeStreamReader,
    DaeStreamWriter,
    DecodeSettings,
    FrameGroup,
    VideoHeader,
    decode_latent,
    dequantize,
    encode_latent,
    quality_to_step_index,
    quantize,
    step_from_index,
)
from neurcodec.bitstream.container import MAX_DIM, MAX_GROUP_FRAMES
from neurcodec.bitstream.quantize import MAX_SYMBOL
from neurcodec.codec import DEFAULT_SEED, Codec, check_rate, settings_over
from neurcodec.errors import CorruptFileError, InputError, UsageError
from neurcodec.video_io import VideoInfo, VideoSink, VideoSource

DEFAULT_GOP = 32  # intra refresh period (frames); DCVC's low-delay setting uses 32 as well
DEFAULT_HYSTERESIS = 0.75  # see benchmarks/video_temporal.py for the rate/distortion trade
DEFAULT_BATCH = 4  # frames per stage B / encoder batch
MAX_AUDIO_BYTES = 1 << 26  # the container's chunk limit

ProgressFn = Callable[[int, int | None], None]
"""`progress(frames_done, frames_total_or_None)`."""


@dataclass
class VideoEncodeReport:
    """What one video encode produced (for the CLI summary and benchmarks)."""

    frames: int
    groups: int
    bytes: int
    intra_bytes: int
    residual_bytes: int
    width: int
    height: int
    fps: Fraction
    quality: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def kbps(self) -> float:
        return 8 * self.bytes / 1000 / max(self.frames / float(self.fps), 1e-9)

    @property
    def bpp(self) -> float:
        return 8 * self.bytes / max(1, self.frames * self.width * self.height)


@dataclass
class VideoDecodeReport:
    frames: int
    width: int
    height: int
    fps: Fraction
    kind: str
    seconds: float
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- symbols


class _SymbolPredictor:
    """Encoder side of the closed loop: latents → (blob, decoded symbols), group by group."""

    def __init__(self, step: float, hysteresis: float) -> None:
        if hysteresis < 0.5:
            raise UsageError(f"hysteresis must be >= 0.5 (plain rounding), got {hysteresis}")
        self.step = step
        self.hysteresis = hysteresis
        self.previous: np.ndarray | None = None

    def code(self, latent: np.ndarray, intra: bool) -> bytes:
        if intra or self.previous is None:
            symbols = quantize(latent, self.step)  # the image codec's exact quantizer
            self.previous = symbols
            return encode_latent(symbols)
        drift = np.asarray(latent, dtype=np.float64) / self.step - self.previous
        residual = np.rint(drift)
        residual[np.abs(drift) < self.hysteresis] = 0
        residual = np.clip(self.previous + residual, -MAX_SYMBOL, MAX_SYMBOL) - self.previous
        residual = residual.astype(np.int32)
        self.previous = self.previous + residual
        # residual blobs are tens of bytes: 16 check bits cost ~0.3 byte there, 32 cost ~2
        return encode_latent(residual, check_bits=16) if residual.any() else b""


def group_symbols(
    group: FrameGroup, shape: tuple[int, int, int], require_check: bool = False
) -> Iterator[np.ndarray]:
    """Decoder side: a frame group's blobs → each frame's integer symbols, in order
    (`require_check`: the header's `latent_checks`)."""
    previous: np.ndarray | None = None
    for i, blob in enumerate(group.latents):
        if i == 0:
            if not blob:
                raise CorruptFileError("a frame group starts with an empty intra latent")
            previous = decode_latent(blob, shape, require_check).astype(np.int64)
        elif blob:
            previous = previous + decode_latent(blob, shape, require_check)
            if np.abs(previous).max() > MAX_SYMBOL:
                raise CorruptFileError("residual latents add up to an out-of-range symbol")
        yield previous.astype(np.int32)


# ---------------------------------------------------------------------------- sampling


def generate_frames(
    codec: Codec,
    latents: torch.Tensor,
    size: tuple[int, int],
    settings: DecodeSettings,
    init: torch.Tensor | None = None,
    t_start: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of conditioning latents (B,16,h,w) → ([0,1] frames (B,3,H,W), stage A latents).

    Every frame gets the same initial noise and the same per-step noise from `settings.seed`
    (the pipeline's shared noise); for B = 1 and no `init` this is exactly the image decode.
    With `init` (B,c,h',w') and `t_start < 1`, sampling starts from `init` noised to `t_start`
    (partial diffusion). Frames with identical inputs (skipped frames of a still scene) are
    sampled once: they come out bit-identical, which batched kernels alone do not promise, and
    cost nothing extra.
    """
    rows = latents.flatten(1)
    if init is not None:
        rows = torch.cat([rows, init.to(rows.device, rows.dtype).flatten(1)], dim=1)
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    if len(unique) == len(rows):
        return codec.pipeline.generate(latents, size, settings, noise="shared", init=init, t_start=t_start)
    first = [int((inverse == k).nonzero()[0]) for k in range(len(unique))]
    pixels, z = codec.pipeline.generate(
        latents[first], size, settings, noise="shared", init=None if init is None else init[first], t_start=t_start
    )
    return pixels[inverse], z[inverse]


def _to_uint8(pixels: torch.Tensor) -> list[np.ndarray]:
    arrays = (pixels.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    return list(arrays)


# ---------------------------------------------------------------------------- codec


class VideoCodec:
    """Video on top of a loaded image `Codec` (same models, same bitstream room)."""

    def __init__(self, codec: Codec, *, batch: int = DEFAULT_BATCH) -> None:
        if batch < 1:
            raise UsageError(f"batch must be >= 1, got {batch}")
        self.codec = codec
        self.batch = batch

    # ------------------------------------------------------------------ encode
    def _latents(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Frames → (16,h,w) float32 latents, encoded `batch` frames at a time."""
        pending: list[np.ndarray] = []

        def flush() -> list[np.ndarray]:
            pixels = torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2).float().div_(255.0)
            latents = self.codec.encode_latent(pixels.to(self.codec.device)).numpy()
            pending.clear()
            return list(latents)

        for frame in frames:
            pending.append(frame)
            if len(pending) == self.batch:
                yield from flush()
        if pending:
            yield from flush()

    def encode(
        self,
        source: VideoSource | str | os.PathLike | BinaryIO,
        out: BinaryIO,
        *,
        quality: int | None = None,
        bpp: float | None = None,
        gop: int = DEFAULT_GOP,
        temporal: bool = True,
        hysteresis: float = DEFAULT_HYSTERESIS,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        sampler: str | None = None,
        fps: Fraction | float | None = None,
        audio: bool = True,
        limit: int | None = None,
        progress: ProgressFn | None = None,
    ) -> VideoEncodeReport:
        """Encode a clip into a `.dae` video stream written to `out` as groups complete.

        `temporal=False` codes every frame as intra (the reference point for the saving);
        `bpp` picks the highest `-q` whose first group fits the target; `limit` stops after
        that many frames.
        """
        check_rate(quality, bpp)
        if not 1 <= gop <= MAX_GROUP_FRAMES:
            raise UsageError(f"gop must be in 1..{MAX_GROUP_FRAMES}, got {gop}")
        if not temporal:
            gop = 1
        owned = not isinstance(source, VideoSource)
        src = VideoSource(source, fps=fps) if owned else source
        start = time.perf_counter()
        try:
            return self._encode(src, out, quality, bpp, gop, hysteresis, seed, steps, guidance, sampler, audio, limit, progress, start)
        finally:
            if owned:
                src.close()

    def _encode(self, src, out, quality, bpp, gop, hysteresis, seed, steps, guidance, sampler, audio, limit, progress, start):
        info: VideoInfo = src.info
        limits.check_pixels(info.width, info.height, what="video frame")
        if info.width > MAX_DIM or info.height > MAX_DIM:
            raise InputError(f"video is {info.width}×{info.height}; the largest side this format holds is {MAX_DIM}")
        notes = list(info.notes)
        decode = settings_over(self.codec.family.decode, steps=steps, guidance=guidance, sampler=sampler, seed=DEFAULT_SEED if seed is None else seed)
        frames = src.frames()
        if limit is not None:
            frames = (f for i, f in zip(range(limit), frames))
        latents = self._latents(frames)
        first_group = [latent for _, latent in zip(range(gop), latents)]
        if not first_group:
            raise InputError("the video has no frames")

        def header_for(q: int) -> VideoHeader:
            return VideoHeader(
                model=self.codec.name,
                weights_digest=self.codec.digest,
                width=info.width,
                height=info.height,
                latent_shape=tuple(first_group[0].shape),
                step_index=quality_to_step_index(q),
                effnet_scale=self.codec.pipeline.effnet_factor,
                seed=decode.seed,
                decode=decode,
                fps=info.fps,
                time_base=info.time_base,
                frame_count=info.frame_count if limit is None else None,
                gop=gop,
            )

        if bpp is not None:
            target = bpp * info.width * info.height * len(first_group) / 8
            quality = self._search_quality(first_group, target, gop, hysteresis, header_for)
        quality = self.codec.family.default_quality if quality is None else quality
        index = quality_to_step_index(quality)
        header = header_for(quality)
        counter = _CountingWriter(out)
        writer = DaeStreamWriter(counter, header)
        if audio and info.has_audio:
            payload = src.audio_payload()
            if payload is None:
                notes.append("the audio of a non-seekable input cannot be carried; it was dropped")
            elif len(payload) > MAX_AUDIO_BYTES:
                notes.append(f"the audio stream ({len(payload)} bytes) exceeds {MAX_AUDIO_BYTES}; it was dropped")
            else:
                writer.write_chunk(CHUNK_AUDIO, payload)
        predictor = _SymbolPredictor(step_from_index(index), hysteresis)
        report = VideoEncodeReport(0, 0, 0, 0, 0, info.width, info.height, info.fps, quality, 0.0, notes)
        group: list[bytes] = []

        def flush() -> None:
            writer.write_group(FrameGroup(tuple(group)))
            report.groups += 1
            report.intra_bytes += len(group[0])
            report.residual_bytes += sum(len(b) for b in group[1:])
            group.clear()

        for latent in _chain(first_group, latents):
            group.append(predictor.code(latent, intra=not group))
            report.frames += 1
            if progress is not None:
                progress(report.frames, info.frame_count)
            if len(group) == gop:
                flush()
        if group:
            flush()
        writer.close()
        if header.frame_count is not None and header.frame_count != report.frames:
            notes.append(f"the container declared {header.frame_count} frames; {report.frames} were decoded and coded")
        report.bytes = counter.written
        report.seconds = time.perf_counter() - start
        return report

    def _search_quality(self, latents, target: float, gop: int, hysteresis: float, header_for) -> int:
        """Highest -q whose first group, as a whole file, fits `target` bytes (bisection over
        entropy coding only: the latents are already computed)."""
        from neurcodec.bitstream import search_step, write_video

        def size(q: int) -> int:
            predictor = _SymbolPredictor(step_from_index(quality_to_step_index(q)), hysteresis)
            blobs = [predictor.code(latent, intra=i % gop == 0) for i, latent in enumerate(latents)]
            groups = [FrameGroup(tuple(blobs[i : i + gop])) for i in range(0, len(blobs), gop)]
            return len(write_video(header_for(q), groups))

        return search_step(size, math.floor(target)).q

    # ------------------------------------------------------------------ decode
    def open(self, fileobj: BinaryIO, *, any_model: bool = False) -> DaeStreamReader:
        """Start reading a video stream made by this model (header checked, nothing decoded)."""
        model = None if any_model else self.codec.name
        digest = None if any_model else self.codec.digest
        reader = DaeStreamReader(fileobj, model, digest)
        header = reader.header
        limits.check_pixels(header.width, header.height, what="the file's video frame")
        if header.frame_count is not None:
            limits.check_frames(header.frame_count)
        expected = self.codec.latent_shape(header.width, header.height)
        if tuple(header.latent_shape) != expected:
            raise CorruptFileError(
                f"latent shape {header.latent_shape} does not fit {header.width}×{header.height} frames (expected {expected})"
            )
        return reader

    def frames(
        self, reader: DaeStreamReader, *, refine: float | None = None, progress: ProgressFn | None = None, **overrides: Any
    ) -> Iterator[np.ndarray]:
        """Decoded frames (H×W×3 uint8 RGB) of an opened stream, in order, batch by batch.

        `overrides`: steps, guidance, sampler, seed over the stream's own (as `Codec.decode`).
        """
        header = reader.header
        if refine is not None and not 0.0 < refine < 1.0:
            raise UsageError(f"refine (the partial-diffusion start time) must be in (0, 1), got {refine}")
        settings = self.codec.settings_for(header, **overrides)  # a video header has the image's fields
        step = step_from_index(header.step_index)
        size = (header.width, header.height)
        shape = tuple(header.latent_shape)
        done = 0
        previous: torch.Tensor | None = None
        for group in reader:
            if len(group.latents) > header.gop:
                raise CorruptFileError(f"frame group of {len(group.latents)} frames in a stream with gop {header.gop}")
            pending: list[np.ndarray] = []
            symbols = group_symbols(group, shape, header.latent_checks)
            while True:
                pending = [s for _, s in zip(range(self.batch), symbols)]
                if not pending:
                    break
                latents = torch.from_numpy(np.stack([dequantize(s, step) for s in pending]))
                init = None if previous is None or refine is None else previous[-1:].expand(len(pending), *previous.shape[1:])
                pixels, z = generate_frames(self.codec, latents, size, settings, init=init, t_start=refine or 1.0)
                previous = z
                for frame in _to_uint8(pixels):
                    done += 1
                    limits.check_frames(done)  # a stream need not declare its length
                    yield frame
                    if progress is not None:
                        progress(done, header.frame_count)
            if refine is not None:
                previous = None  # an intra refresh also restarts the sampling chain

    def decode(
        self,
        fileobj: BinaryIO,
        target: BinaryIO | str | os.PathLike,
        kind: str,
        *,
        pix_fmt: str = "yuv420p",
        crf: int | None = None,
        lossless: bool = False,
        audio: bool = True,
        overwrite: bool = True,
        **decode_options: Any,
    ) -> VideoDecodeReport:
        """Decode a `.dae` video stream from `fileobj` into a clip (`kind` = mp4/mkv/mov/y4m/png).

        `decode_options`: steps, guidance, sampler, seed, refine, progress (see `frames`).
        `overwrite`: whether PNG-sequence frames may replace existing files.
        """
        start = time.perf_counter()
        reader = self.open(fileobj)
        header = reader.header
        frames = self.frames(reader, **decode_options)
        first = next(frames, None)  # the AUDIO chunk, if any, precedes the first group
        payload = next((body for kind_, body in reader.chunks if kind_ == CHUNK_AUDIO), None)
        sink = VideoSink(
            target, kind, width=header.width, height=header.height, fps=header.fps, time_base=header.time_base,
            pix_fmt=pix_fmt, crf=crf, lossless=lossless, audio=payload if audio else None, overwrite=overwrite,
        )
        try:
            if first is not None:
                sink.write(first)
                for frame in frames:
                    sink.write(frame)
        finally:
            sink.close()
        return VideoDecodeReport(sink.frames_written, header.width, header.height, header.fps, kind, time.perf_counter() - start, sink.notes)


class _CountingWriter:
    """Counts bytes on their way to the real output (which may be a pipe)."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._file = fileobj
        self.written = 0

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        if hasattr(self._file, "flush"):
            self._file.flush()


def _chain(first: list[np.ndarray], rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield from first
    yield from rest


# ---------------------------------------------------------------------------- info


__all__ = [
    "DEFAULT_GOP",
    "DEFAULT_HYSTERESIS",
    "VideoCodec",
    "VideoDecodeReport",
    "VideoEncodeReport",
    "generate_frames",
    "group_symbols",
]
