"""What a `.dae` file holds, image or video, read from its bytes alone: no model, no torch.

`neurcodec info` prints this; the Python API exposes it as `neurcodec.describe`. A video stream
is read through (its checksums verified) but no latent is decoded.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

import numpy as np

from neurcodec.bitstream import (
    CHUNK_ALPHA,
    CHUNK_AUDIO,
    DaeImage,
    DaeStreamReader,
    blob_check_bits,
    blob_sizes,
    decode_latent,
    dequantize,
    peek_kind,
    read_image,
    step_from_index,
)
from neurcodec.bitstream.container import DecodeSettings


def describe(source: bytes | BinaryIO) -> dict[str, Any]:
    """Header facts and where the bytes go, for an image or a video `.dae` (bytes or a file)."""
    fileobj = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    head = fileobj.read(5)
    if peek_kind(head) == "video":
        return _describe_video(_Prefixed(head, fileobj))
    return _describe_image(head + fileobj.read())


def dequantized_latent(dae: DaeImage) -> np.ndarray:
    """The conditioning latent (16,h,w) float32 a parsed image file carries: what stage B is
    conditioned on, and what latent-space training reads. A damaged payload raises
    CorruptFileError here, before any model is needed."""
    symbols = decode_latent(dae.latent, dae.header.latent_shape, dae.header.latent_checks)
    return dequantize(symbols, step_from_index(dae.header.step_index))


def check_image_latent(data: bytes) -> None:
    """Decode an image file's latent payload and drop it: a damaged one raises CorruptFileError
    in milliseconds, where a decode would first spend seconds loading a model."""
    dequantized_latent(read_image(data))


def _settings(d: DecodeSettings | None) -> dict[str, Any] | None:
    return None if d is None else {"sampler": d.sampler, "steps": d.steps, "guidance": d.guidance, "cfg_rescale": d.cfg_rescale}


def _common(h: Any) -> dict[str, Any]:
    return {
        "model": h.model,
        "weights_digest": h.weights_digest.hex(),
        "width": h.width,
        "height": h.height,
    }


def _describe_image(data: bytes) -> dict[str, Any]:
    dae = read_image(data)
    h = dae.header
    params_bytes, payload_bytes = blob_sizes(dae.latent, h.latent_shape[0])
    return {
        "kind": "image",
        **_common(h),
        "mode": h.mode,
        "latent_shape": list(h.latent_shape),
        "step": step_from_index(h.step_index),
        "step_index": h.step_index,
        "effnet_scale": h.effnet_scale,
        "seed": h.seed,
        "decode_defaults": _settings(h.decode),
        "alpha": any(kind == CHUNK_ALPHA for kind, _ in dae.chunks),
        "bytes": len(data),
        "bpp": 8 * len(data) / (h.width * h.height),
        "latent_check_bits": blob_check_bits(dae.latent),
        "breakdown": {
            "header": dae.header_bytes,
            "chunk_framing": dae.framing_bytes,
            "entropy_params": params_bytes,
            "latent_payload": payload_bytes,
            "extra_chunks": sum(len(body) for _, body in dae.chunks),
        },
    }


def _describe_video(fileobj: _Prefixed) -> dict[str, Any]:
    reader = DaeStreamReader(fileobj)
    h = reader.header
    frames = groups = intra = residual = skipped = 0
    for group in reader:
        groups += 1
        frames += len(group.latents)
        intra += len(group.latents[0])
        residual += sum(len(b) for b in group.latents[1:])
        skipped += sum(1 for b in group.latents[1:] if not b)
    audio = sum(len(body) for kind, body in reader.chunks if kind == CHUNK_AUDIO)
    duration = frames / float(h.fps) if frames else 0.0
    total = fileobj.consumed
    return {
        "kind": "video",
        **_common(h),
        "frames": frames,
        "declared_frames": h.frame_count,
        "fps": f"{h.fps.numerator}/{h.fps.denominator}" if h.fps.denominator != 1 else str(h.fps.numerator),
        "fps_value": float(h.fps),
        "time_base": f"{h.time_base.numerator}/{h.time_base.denominator}",
        "duration": duration,
        "gop": h.gop,
        "groups": groups,
        "latent_shape": list(h.latent_shape),
        "step": step_from_index(h.step_index),
        "step_index": h.step_index,
        "seed": h.seed,
        "decode_defaults": _settings(h.decode),
        "bytes": total,
        "kbps": 8 * total / 1000 / duration if duration else 0.0,
        "bpp": 8 * total / (frames * h.width * h.height) if frames else 0.0,
        "audio": bool(audio),
        "breakdown": {"intra": intra, "residual": residual, "audio": audio, "skipped_frames": skipped, "other": total - intra - residual - audio},
    }


class _Prefixed:
    """A stream whose first bytes were already read (to tell image from video), counting what
    the stream reader consumes."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest
        self.consumed = 0

    def read(self, n: int = -1) -> bytes:
        if self._head:
            take = self._head if n < 0 else self._head[:n]
            self._head = self._head[len(take):]
            more = b"" if n >= 0 and len(take) == n else self._rest.read(-1 if n < 0 else n - len(take))
            data = take + more
        else:
            data = self._rest.read(n)
        self.consumed += len(data)
        return data
