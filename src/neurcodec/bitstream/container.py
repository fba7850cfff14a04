"""The `.dae` container: magic + version, a compact varint header, then CRC-chained chunks.

Layout (full spec in docs/format.md):

    "DAE" version:u8  header fields (varints)  chunk*
    chunk = type:u8  length:uvarint  data  crc32:u32le

Each chunk's CRC continues from the previous one (the first from the CRC of all header
bytes), so one checksum per chunk also covers the header and chunk order at no extra cost.
Chunk types with bit 7 set are optional (skipped when unknown); others are critical
(refused when unknown), as in PNG. Video frame groups are appended as they are encoded and
an END chunk closes the stream, so a pipe reader never seeks and can tell truncation.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import BinaryIO

from neurcodec.bitstream.varint import ByteReader, encode_uvarint
from neurcodec.errors import (
    CorruptFileError,
    TruncatedFileError,
    UnsupportedFileError,
    WrongModelError,
)

MAGIC = b"DAE"
VERSION = 1
SUPPORTED_VERSIONS = (1,)

# Hard limits, checked before anything is allocated from a declared size.
MAX_DIM = 1 << 16
MAX_CHANNELS = 255
MAX_LATENT_SIDE = 1 << 12
MAX_LATENT_ELEMENTS = 1 << 22
MAX_CHUNK_LENGTH = 1 << 26
MAX_MODEL_NAME = 32
MAX_GROUP_FRAMES = 1 << 10
MAX_STEPS = 10_000
MAX_SEED = (1 << 64) - 1
MAX_RATIONAL = (1 << 31) - 1  # FFmpeg's AVRational terms are C ints
_READ_PIECE = 1 << 20  # stream reads grow in bounded pieces, never by a declared length

# Chunk types. Bit 7 set = optional.
CHUNK_END = 0x00
CHUNK_LATENT = 0x01
CHUNK_FRAME_GROUP = 0x02
CHUNK_ALPHA = 0x03  # reserved for the codec's alpha plane (opaque to the container)
CHUNK_AUDIO = 0x81  # a video's audio: Matroska bytes of the input's audio stream, untouched
KNOWN_CRITICAL = frozenset({CHUNK_END, CHUNK_LATENT, CHUNK_FRAME_GROUP, CHUNK_ALPHA})
OPTIONAL_BIT = 0x80

KIND_IMAGE, KIND_VIDEO = 0, 1
# Flags byte: bit 0 kind, bit 1 decode defaults present, bit 2 model stored by name,
# bits 3-5 EXIF orientation - 1, bit 6 every latent blob carries a check, bit 7 reserved (zero).
_F_VIDEO, _F_DECODE, _F_NAME, _F_CHECKED = 0x01, 0x02, 0x04, 0x40
_F_RESERVED = 0x80

# Fixed code tables: part of the format, append-only.
MODEL_CODES: dict[int, str] = {1: "tiny", 2: "stable-cascade-lite", 3: "stable-cascade", 4: "tiny2"}
MODES: tuple[str, ...] = ("RGB", "L", "RGBA", "LA", "I;16", "I", "F", "CMYK", "P", "1", "YCbCr")
# The modes a file may carry: what the encoder keeps (CMYK and palette are coded as RGB(A); F
# and YCbCr are never written). The others stay reserved in the table above.
STORED_MODES = frozenset({"RGB", "L", "RGBA", "LA", "I;16", "I", "1"})
SAMPLERS: tuple[str, ...] = ("ddpm", "ddim", "dpmpp-2m")
GUIDANCE_UNIT = 16  # guidance stored as round(g * 16)
RESCALE_UNIT = 100  # cfg rescale stored as round(r * 100)
EFFNET_SCALE_UNIT = 64  # effnet input factor stored as round(f * 64)


@dataclass(frozen=True)
class DecodeSettings:
    """How a picture is decoded: the defaults a file stores (or a model family declares) and,
    with the caller's overrides merged over them (`with_overrides`), what one decode runs with.

    Snapped to the fixed-point grid the file stores (guidance 1/16, cfg rescale 1/100), so a
    setting reads back exactly as written. A file stores the seed once, in its header's `seed`.
    """

    sampler: str = "ddpm"  # one spelling: ddpm, ddim, dpmpp-2m (`sampler_name` normalises input)
    steps: int = 30
    guidance: float = 0.0
    cfg_rescale: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; known: {', '.join(SAMPLERS)}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be in 1..{MAX_STEPS}, got {self.steps}")
        if not 0 <= self.guidance <= 100 or not 0 <= self.cfg_rescale <= 1:
            raise ValueError(f"guidance must be in 0..100 (got {self.guidance}) and cfg_rescale in 0..1 (got {self.cfg_rescale})")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be in 0..{MAX_SEED}, got {self.seed}")
        object.__setattr__(self, "guidance", round(self.guidance * GUIDANCE_UNIT) / GUIDANCE_UNIT)
        object.__setattr__(self, "cfg_rescale", round(self.cfg_rescale * RESCALE_UNIT) / RESCALE_UNIT)

    def with_overrides(
        self, *, steps: int | None = None, guidance: float | None = None, sampler: str | None = None, seed: int | None = None
    ) -> DecodeSettings:
        """These settings with each given value in place of the stored one (None keeps it)."""
        given = {"steps": steps, "guidance": guidance, "sampler": None if sampler is None else sampler_name(sampler), "seed": seed}
        return replace(self, **{k: v for k, v in given.items() if v is not None})


def sampler_name(name: str) -> str:
    """A user's sampler name in the one spelling files and samplers use (ddpm, ddim, dpmpp-2m)."""
    key = name.lower().replace("_", "-")
    if key not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return key


@dataclass(frozen=True)
class _Header:
    model: str
    weights_digest: bytes  # first 4 bytes of the weights' sha256
    width: int
    height: int
    latent_shape: tuple[int, int, int]  # (C, h, w)
    step_index: int  # see quantize.step_from_index
    mode: str = "RGB"
    orientation: int = 1  # EXIF orientation 1..8
    effnet_scale: float = 1.0  # EfficientNet input factor, multiple of 1/64
    seed: int = 0
    decode: DecodeSettings | None = None  # stored defaults; their seed is `seed`
    # Every latent blob carries a check of its symbols (files written before checks: False).
    # Said in the CRC-covered header, so damage to a blob's flags cannot switch its check off;
    # the decoder enforces it (`decode_latent(..., require_check=)`), the container does not look.
    latent_checks: bool = True

    def decode_settings(self, fallback: DecodeSettings) -> DecodeSettings:
        """What this file decodes with when nothing is overridden: its stored settings (or, in a
        file that stores none, `fallback` — the model family's) with the file's seed."""
        return replace(self.decode or fallback, seed=self.seed)

    def __post_init__(self) -> None:
        checks = [
            (0 < len(self.model.encode("ascii", "replace")) <= MAX_MODEL_NAME, "model name length"),
            (self.model.isascii() and self.model.isprintable(), "model name must be printable ASCII"),
            (isinstance(self.weights_digest, bytes) and len(self.weights_digest) == 4, "digest"),
            (1 <= self.width <= MAX_DIM and 1 <= self.height <= MAX_DIM, "image size"),
            (self.mode in STORED_MODES, f"mode {self.mode!r} (a file stores {', '.join(sorted(STORED_MODES))})"),
            (1 <= self.orientation <= 8, "orientation"),
            (0 <= self.step_index <= 255, "step index"),
            (0 <= self.seed <= MAX_SEED, "seed"),
            (0 < round(self.effnet_scale * EFFNET_SCALE_UNIT) <= 4 * EFFNET_SCALE_UNIT, "effnet scale"),
        ]
        for ok, what in checks:
            if not ok:
                raise ValueError(f"invalid header field: {what}")
        _check_latent_shape(self.latent_shape, ValueError)
        object.__setattr__(self, "latent_shape", tuple(int(x) for x in self.latent_shape))
        object.__setattr__(
            self, "effnet_scale", round(self.effnet_scale * EFFNET_SCALE_UNIT) / EFFNET_SCALE_UNIT
        )
        if self.decode is not None and self.decode.seed != self.seed:  # the file stores one seed
            object.__setattr__(self, "decode", replace(self.decode, seed=self.seed))


@dataclass(frozen=True)
class ImageHeader(_Header):
    """Everything a decoder needs besides the latent payload of a single image."""


@dataclass(frozen=True)
class VideoHeader(_Header):
    """Stream header of a video: the image fields (per frame) plus timing."""

    fps: Fraction = Fraction(25)
    time_base: Fraction = Fraction(1, 25)
    frame_count: int | None = None  # None when unknown (e.g. encoding from a pipe)
    gop: int = 32  # frames per group (intra refresh period)

    def __post_init__(self) -> None:
        super().__post_init__()
        for rational in (self.fps, self.time_base):
            if not (0 < rational.numerator <= MAX_RATIONAL and rational.denominator <= MAX_RATIONAL):
                raise ValueError("fps and time base must be positive rationals of terms below 2³¹")
        if self.frame_count is not None and not 0 <= self.frame_count < MAX_SEED:
            raise ValueError("frame count out of range")
        if not 1 <= self.gop <= MAX_GROUP_FRAMES:
            raise ValueError(f"gop must be in 1..{MAX_GROUP_FRAMES}")


def _check_latent_shape(shape, error) -> None:
    if len(shape) != 3:
        raise error(f"latent shape must have 3 dimensions, got {shape}")
    c, h, w = shape
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_LATENT_SIDE and 1 <= w <= MAX_LATENT_SIDE):
        raise error(f"latent shape {tuple(shape)} outside the limits")
    if c * h * w > MAX_LATENT_ELEMENTS:
        raise error(f"latent shape {tuple(shape)} has more than {MAX_LATENT_ELEMENTS} elements")


@dataclass(frozen=True)
class FrameGroup:
    """One GOP: the intra latent blob, then residual blobs against the previous decoded latent."""

    latents: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.latents) <= MAX_GROUP_FRAMES:
            raise ValueError(f"a frame group holds 1..{MAX_GROUP_FRAMES} latents")


@dataclass(frozen=True)
class DaeImage:
    header: ImageHeader
    latent: bytes  # entropy-coded blob, see entropy.decode_latent
    chunks: tuple[tuple[int, bytes], ...] = ()  # other chunks (type, data), in file order
    header_bytes: int = 0  # magic + version + header fields
    framing_bytes: int = 0  # chunk type + length + CRC bytes, all chunks


# ---------------------------------------------------------------------------- writing


def _encode_header(header: _Header) -> bytes:
    kind = KIND_VIDEO if isinstance(header, VideoHeader) else KIND_IMAGE
    code = next((c for c, name in MODEL_CODES.items() if name == header.model), None)
    flags = kind | (_F_DECODE if header.decode else 0) | (0 if code else _F_NAME)
    flags |= _F_CHECKED if header.latent_checks else 0
    flags |= (header.orientation - 1) << 3
    out = bytearray(MAGIC) + bytes([VERSION, flags])
    if code:
        out += encode_uvarint(code)
    else:
        name = header.model.encode("ascii")
        out += encode_uvarint(len(name)) + name
    out += header.weights_digest
    for value in (header.width, header.height, MODES.index(header.mode), *header.latent_shape):
        out += encode_uvarint(value)
    out += encode_uvarint(header.step_index)
    out += encode_uvarint(round(header.effnet_scale * EFFNET_SCALE_UNIT))
    out += encode_uvarint(header.seed)
    if header.decode:
        d = header.decode
        out += encode_uvarint(SAMPLERS.index(d.sampler)) + encode_uvarint(d.steps)
        out += encode_uvarint(round(d.guidance * GUIDANCE_UNIT))
        out += encode_uvarint(round(d.cfg_rescale * RESCALE_UNIT))
    if isinstance(header, VideoHeader):
        for value in (header.fps.numerator, header.fps.denominator):
            out += encode_uvarint(value)
        for value in (header.time_base.numerator, header.time_base.denominator):
            out += encode_uvarint(value)
        out += encode_uvarint(0 if header.frame_count is None else header.frame_count + 1)
        out += encode_uvarint(header.gop)
    return bytes(out)


def _encode_chunk(chunk_type: int, data: bytes, crc: int) -> tuple[bytes, int]:
    if not 0 <= chunk_type <= 0xFF:
        raise ValueError(f"chunk type {chunk_type} is not a byte")
    if len(data) > MAX_CHUNK_LENGTH:
        raise ValueError(f"chunk of {len(data)} bytes exceeds {MAX_CHUNK_LENGTH}")
    body = bytes([chunk_type]) + encode_uvarint(len(data)) + data
    crc = zlib.crc32(body, crc)
    return body + crc.to_bytes(4, "little"), crc


def _encode_frame_group(group: FrameGroup) -> bytes:
    out = bytearray(encode_uvarint(len(group.latents)))
    for blob in group.latents:
        out += encode_uvarint(len(blob)) + blob
    return bytes(out)


def write_image(
    header: ImageHeader, latent: bytes, extra_chunks: Sequence[tuple[int, bytes]] = ()
) -> bytes:
    """Serialize a single image: header, one LATENT chunk, then any extra chunks."""
    if not isinstance(header, ImageHeader):
        raise TypeError("write_image needs an ImageHeader")
    for chunk_type, _ in extra_chunks:
        if chunk_type in (CHUNK_END, CHUNK_LATENT, CHUNK_FRAME_GROUP):
            raise ValueError(f"chunk type {chunk_type} cannot be an extra chunk of an image")
    out = bytearray(_encode_header(header))
    crc = zlib.crc32(out)
    for chunk_type, data in ((CHUNK_LATENT, latent), *extra_chunks):
        chunk, crc = _encode_chunk(chunk_type, bytes(data), crc)
        out += chunk
    return bytes(out)


class DaeStreamWriter:
    """Writes a video stream to a file object, group by group, never seeking back."""

    def __init__(self, fileobj: BinaryIO, header: VideoHeader):
        if not isinstance(header, VideoHeader):
            raise TypeError("DaeStreamWriter needs a VideoHeader")
        self._file = fileobj
        head = _encode_header(header)
        self._crc = zlib.crc32(head)
        self._file.write(head)
        self._closed = False

    def _write(self, chunk_type: int, data: bytes) -> None:
        if self._closed:
            raise ValueError("stream already closed")
        chunk, self._crc = _encode_chunk(chunk_type, data, self._crc)
        self._file.write(chunk)

    def write_group(self, group: FrameGroup) -> None:
        self._write(CHUNK_FRAME_GROUP, _encode_frame_group(group))

    def write_chunk(self, chunk_type: int, data: bytes) -> None:
        """An extra chunk (e.g. optional metadata), in stream order."""
        if chunk_type in (CHUNK_END, CHUNK_LATENT, CHUNK_FRAME_GROUP):
            raise ValueError(f"use write_group/close, not chunk type {chunk_type}")
        self._write(chunk_type, data)

    def close(self) -> None:
        """Write the END chunk; a reader treats a stream without it as truncated."""
        if not self._closed:
            self._write(CHUNK_END, b"")
            self._closed = True
            if hasattr(self._file, "flush"):
                self._file.flush()

    def __enter__(self) -> DaeStreamWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:  # an aborted encode must not look like a complete stream
            self.close()


# ---------------------------------------------------------------------------- reading


def _check_magic_version(prefix: bytes) -> None:
    if len(prefix) < len(MAGIC) or prefix[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(prefix[: len(MAGIC)]):
            raise TruncatedFileError(f"file ends inside the magic ({len(prefix)} bytes)")
        raise CorruptFileError(f"not a .dae file (starts with {prefix[:4]!r}, expected {MAGIC!r})")
    if len(prefix) < len(MAGIC) + 1:
        raise TruncatedFileError("file ends before the version byte")
    version = prefix[len(MAGIC)]
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise UnsupportedFileError(
            f".dae format version {version} is not supported (this build reads version {supported})"
        )


def peek_kind(data: bytes) -> str:
    """'image' or 'video' from the first bytes of a file (at least 5)."""
    _check_magic_version(bytes(data[:4]))
    if len(data) < 5:
        raise TruncatedFileError("file ends before the header flags")
    flags = data[4]
    if flags & _F_RESERVED:
        raise UnsupportedFileError(f"header uses flag bits this build does not know (0x{flags:02x})")
    return "video" if flags & _F_VIDEO else "image"


def _parse_header(reader: ByteReader, deferred: list[UnsupportedFileError] | None = None) -> _Header:
    """The header's fields. With `deferred`, "unsupported" findings (unknown flag bits or model
    code) are collected there rather than raised, for the caller to raise once the first chunk's
    CRC has vouched for the header: a flipped bit is then "corrupt", as it is."""

    def unsupported(error: UnsupportedFileError) -> None:
        if deferred is None:
            raise error
        deferred.append(error)

    _check_magic_version(reader.take(min(4, reader.remaining), "magic and version"))
    flags = reader.byte("header flags")
    if flags & _F_RESERVED:
        unsupported(UnsupportedFileError(f"header uses flag bits this build does not know (0x{flags:02x})"))
    if flags & _F_NAME:
        size = reader.uvarint("model name length", MAX_MODEL_NAME, 1)
        raw = reader.take(size, "model name")
        if not all(0x20 <= b < 0x7F for b in raw):
            raise CorruptFileError("model name is not printable ASCII")
        model = raw.decode("ascii")
    else:
        code = reader.uvarint("model code", 127, 1)
        if code not in MODEL_CODES:
            unsupported(UnsupportedFileError(
                f"file was made by model code {code}, unknown to this build "
                f"(known: {', '.join(f'{c}={n}' for c, n in MODEL_CODES.items())})"
            ))
        model = MODEL_CODES.get(code, f"model-code-{code}")
    digest = reader.take(4, "weights digest")
    width = reader.uvarint("image width", MAX_DIM, 1)
    height = reader.uvarint("image height", MAX_DIM, 1)
    mode = MODES[reader.uvarint("image mode", len(MODES) - 1)]
    if mode not in STORED_MODES:  # refused here, not after a whole decode
        raise CorruptFileError(f"header says image mode {mode}, which no .dae stores ({', '.join(sorted(STORED_MODES))})")
    shape = (
        reader.uvarint("latent channels", MAX_CHANNELS, 1),
        reader.uvarint("latent height", MAX_LATENT_SIDE, 1),
        reader.uvarint("latent width", MAX_LATENT_SIDE, 1),
    )
    _check_latent_shape(shape, CorruptFileError)
    common = dict(
        model=model,
        weights_digest=digest,
        width=width,
        height=height,
        mode=mode,
        orientation=((flags >> 3) & 0x07) + 1,
        latent_checks=bool(flags & _F_CHECKED),
        latent_shape=shape,
        step_index=reader.uvarint("step index", 255),
        effnet_scale=reader.uvarint("effnet scale", 4 * EFFNET_SCALE_UNIT, 1) / EFFNET_SCALE_UNIT,
        seed=reader.uvarint("seed", MAX_SEED),
    )
    if flags & _F_DECODE:
        common["decode"] = DecodeSettings(
            sampler=SAMPLERS[reader.uvarint("sampler", len(SAMPLERS) - 1)],
            steps=reader.uvarint("steps", MAX_STEPS, 1),
            guidance=reader.uvarint("guidance", 100 * GUIDANCE_UNIT) / GUIDANCE_UNIT,
            cfg_rescale=reader.uvarint("cfg rescale", RESCALE_UNIT) / RESCALE_UNIT,
            seed=common["seed"],
        )
    if not flags & _F_VIDEO:
        return ImageHeader(**common)
    fps = (reader.uvarint("fps numerator", MAX_RATIONAL, 1), reader.uvarint("fps denominator", MAX_RATIONAL, 1))
    tb = (reader.uvarint("time base numerator", MAX_RATIONAL, 1), reader.uvarint("time base denominator", MAX_RATIONAL, 1))
    count = reader.uvarint("frame count", MAX_SEED)
    return VideoHeader(
        **common,
        fps=Fraction(*fps),
        time_base=Fraction(*tb),
        frame_count=None if count == 0 else count - 1,
        gop=reader.uvarint("gop", MAX_GROUP_FRAMES, 1),
    )


def _check_model(header: _Header, model: str | None, digest: bytes | None) -> None:
    if model is not None and header.model != model:
        raise WrongModelError(
            f"file was encoded with model '{header.model}', not '{model}'; decode it with --model {header.model}"
        )
    if digest is not None and header.weights_digest != digest:
        raise WrongModelError(
            f"file was encoded with different weights of '{header.model}' "
            f"(digest {header.weights_digest.hex()}, loaded {digest.hex()})"
        )


def _check_chunk_type(chunk_type: int) -> None:
    if chunk_type not in KNOWN_CRITICAL and not chunk_type & OPTIONAL_BIT:
        raise UnsupportedFileError(
            f"file needs chunk type 0x{chunk_type:02x}, which this build does not know"
        )


def _read_chunk(reader: ByteReader, crc: int) -> tuple[int, bytes, int]:
    """The next chunk's type and body, its chained CRC verified; returns the CRC to chain on."""
    start = reader.pos
    chunk_type = reader.byte("chunk type")
    length = reader.uvarint("chunk length", MAX_CHUNK_LENGTH)
    body = reader.take(length, f"chunk 0x{chunk_type:02x}")
    stored = int.from_bytes(reader.take(4, "chunk checksum"), "little")
    crc = zlib.crc32(reader.data[start : reader.pos - 4], crc)
    if stored != crc:
        raise CorruptFileError(f"checksum mismatch in chunk 0x{chunk_type:02x} at byte {start}")
    return chunk_type, body, crc


def read_image(
    data: bytes, model: str | None = None, weights_digest: bytes | None = None
) -> DaeImage:
    """Parse and verify a single-image file. Pass `model`/`weights_digest` to refuse others."""
    reader = ByteReader(bytes(data))
    deferred: list[UnsupportedFileError] = []
    header = _parse_header(reader, deferred)
    header_bytes = reader.pos
    crc = zlib.crc32(reader.data[:header_bytes])
    latent: bytes | None = None
    extras: list[tuple[int, bytes]] = []
    while reader.remaining:
        chunk_type, body, crc = _read_chunk(reader, crc)
        _check_chunk_type(chunk_type)
        if chunk_type == CHUNK_LATENT:
            if latent is not None:
                raise CorruptFileError("image has more than one latent chunk")
            latent = body
        elif chunk_type in (CHUNK_END, CHUNK_FRAME_GROUP):
            raise CorruptFileError(f"chunk type 0x{chunk_type:02x} does not belong in an image")
        else:
            extras.append((chunk_type, body))
    # Every CRC has held: what the header says can now be believed.
    if deferred:
        raise deferred[0]
    if isinstance(header, VideoHeader):
        raise UnsupportedFileError("this .dae file holds a video, not an image")
    if latent is None:
        raise TruncatedFileError("file ends before the latent chunk")
    _check_model(header, model, weights_digest)
    framing = reader.pos - header_bytes - len(latent) - sum(len(b) for _, b in extras)
    return DaeImage(header, latent, tuple(extras), header_bytes, framing)


class _StreamSource:
    """Exact reads from a non-seekable binary stream; remembers bytes for the CRC."""

    def __init__(self, fileobj: BinaryIO):
        self._file = fileobj
        self.consumed = 0

    def read(self, n: int, what: str) -> bytes:
        parts, need = [], n
        while need:
            piece = self._file.read(min(need, _READ_PIECE))
            if not piece:
                raise TruncatedFileError(f"stream ends inside {what} ({n - need} of {n} bytes)")
            parts.append(piece)
            need -= len(piece)
        self.consumed += n
        return b"".join(parts)

    def at_end(self) -> bool:
        return not self._file.read(1)

    def read_uvarint_bytes(self, what: str) -> bytes:
        out = bytearray()
        while True:
            b = self.read(1, what)
            out += b
            if not b[0] & 0x80 or len(out) >= 10:
                return bytes(out)


class DaeStreamReader:
    """Reads a video stream from a (possibly non-seekable) file object.

    `header` is available after construction; iterating yields `FrameGroup`s in order and
    raises `TruncatedFileError` if the stream ends before its END chunk. Extra chunks
    seen so far are collected in `chunks`.
    """

    def __init__(self, fileobj: BinaryIO, model: str | None = None, weights_digest: bytes | None = None):
        self._src = _StreamSource(fileobj)
        head = bytearray(self._src.read(5, "magic, version and flags"))
        peek_kind(bytes(head))
        # The header has no length prefix: grow it field by field through a re-parse.
        while True:
            deferred: list[UnsupportedFileError] = []
            try:
                header = _parse_header(ByteReader(bytes(head)), deferred)
                break
            except TruncatedFileError:
                if len(head) > 256:
                    raise CorruptFileError("video header is implausibly long") from None
                head += self._src.read(1, "video header")
        self._crc = zlib.crc32(head)
        self.header: VideoHeader = header  # type: ignore[assignment]  # checked below, once vouched for
        self.chunks: list[tuple[int, bytes]] = []
        self._done = False
        # Verify the header's CRC (carried by the first chunk) before trusting its fields.
        self._pending = self._next_chunk()
        if deferred:
            raise deferred[0]
        if not isinstance(header, VideoHeader):
            raise UnsupportedFileError("this .dae file holds an image, not a video stream")
        _check_model(header, model, weights_digest)

    def _next_chunk(self) -> tuple[int, bytes]:
        type_byte = self._src.read(1, "chunk type")
        raw_len = self._src.read_uvarint_bytes("chunk length")
        length = ByteReader(raw_len).uvarint("chunk length", MAX_CHUNK_LENGTH)
        body = self._src.read(length, f"chunk 0x{type_byte[0]:02x}")
        stored = int.from_bytes(self._src.read(4, "chunk checksum"), "little")
        crc = zlib.crc32(type_byte + raw_len + body, self._crc)
        if crc != stored:
            raise CorruptFileError(f"checksum mismatch in chunk 0x{type_byte[0]:02x}")
        self._crc = crc
        _check_chunk_type(type_byte[0])
        return type_byte[0], body

    def __iter__(self) -> Iterator[FrameGroup]:
        while not self._done:
            if self._pending is not None:
                chunk_type, body = self._pending
                self._pending = None
            else:
                chunk_type, body = self._next_chunk()
            if chunk_type == CHUNK_END:
                if body:
                    raise CorruptFileError("END chunk carries data")
                if not self._src.at_end():  # as in an image file, nothing may follow the last chunk
                    raise CorruptFileError("data after the END chunk")
                self._done = True
            elif chunk_type == CHUNK_FRAME_GROUP:
                yield _parse_frame_group(body, self.header)
            elif chunk_type == CHUNK_LATENT:
                raise CorruptFileError("a video stream cannot hold a single-image latent chunk")
            else:
                self.chunks.append((chunk_type, body))


def _parse_frame_group(body: bytes, header: VideoHeader) -> FrameGroup:
    reader = ByteReader(body)
    count = reader.uvarint("frames in group", MAX_GROUP_FRAMES, 1)
    latents = []
    for _ in range(count):
        size = reader.uvarint("frame latent length", reader.remaining)
        latents.append(reader.take(size, "frame latent"))
    if reader.remaining:
        raise CorruptFileError(f"frame group has {reader.remaining} unexplained trailing bytes")
    return FrameGroup(tuple(latents))


def iter_dae_stream(
    fileobj: BinaryIO, model: str | None = None, weights_digest: bytes | None = None
) -> tuple[VideoHeader, Iterator[FrameGroup]]:
    """(header, iterator over frame groups) for a video stream; nothing is read ahead."""
    reader = DaeStreamReader(fileobj, model, weights_digest)
    return reader.header, iter(reader)


@dataclass(frozen=True)
class DaeVideo:
    header: VideoHeader
    groups: tuple[FrameGroup, ...]
    chunks: tuple[tuple[int, bytes], ...] = field(default=())


def write_video(header: VideoHeader, groups: Sequence[FrameGroup]) -> bytes:
    """Whole-stream convenience over DaeStreamWriter."""
    buf = io.BytesIO()
    with DaeStreamWriter(buf, header) as writer:
        for group in groups:
            writer.write_group(group)
    return buf.getvalue()


def read_video(data: bytes, model: str | None = None, weights_digest: bytes | None = None) -> DaeVideo:
    reader = DaeStreamReader(io.BytesIO(bytes(data)), model, weights_digest)
    groups = tuple(reader)
    return DaeVideo(reader.header, groups, tuple(reader.chunks))


def read_header(data: bytes) -> ImageHeader | VideoHeader:
    """Header only (for quick inspection); the first chunk's CRC is checked when `data` holds it,
    so a damaged header reads as corrupt rather than as an unknown model or feature."""
    reader = ByteReader(bytes(data))
    deferred: list[UnsupportedFileError] = []
    header = _parse_header(reader, deferred)
    if deferred:
        try:
            _read_chunk(reader, zlib.crc32(reader.data[: reader.pos]))
        except TruncatedFileError:
            raise deferred[0] from None  # the first chunk is not in `data`: nothing to verify with
        raise deferred[0]
    return header


__all__ = [
    "CHUNK_ALPHA",
    "CHUNK_AUDIO",
    "DaeImage",
    "DaeStreamReader",
    "DaeStreamWriter",
    "DaeVideo",
    "DecodeSettings",
    "sampler_name",
    "FrameGroup",
    "ImageHeader",
    "VideoHeader",
    "iter_dae_stream",
    "peek_kind",
    "read_header",
    "read_image",
    "read_video",
    "write_image",
    "write_video",
]
