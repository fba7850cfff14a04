"""LEB128 varints, zigzag, and a bounds-checked reader over untrusted bytes.

Every parse error is a typed `neurcodec.errors` exception: running off the end is
`TruncatedFileError`, anything malformed is `CorruptFileError`.
"""

from __future__ import annotations

from neurcodec.errors import CorruptFileError, TruncatedFileError

MAX_VARINT_BYTES = 10  # enough for 64-bit values; longer encodings are refused


def encode_uvarint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low group first, high bit = more follows."""
    if value < 0:
        raise ValueError(f"uvarint must be >= 0, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def zigzag(value: int) -> int:
    """Map signed to unsigned so small magnitudes stay short: 0,-1,1,-2 -> 0,1,2,3."""
    return (value << 1) if value >= 0 else ((-value << 1) - 1)


def unzigzag(value: int) -> int:
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


def encode_svarint(value: int) -> bytes:
    return encode_uvarint(zigzag(value))


class ByteReader:
    """Sequential reader over an in-memory buffer; never reads past `end`."""

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None):
        self.data = memoryview(data)
        self.pos = pos
        self.end = len(self.data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.remaining:
            raise TruncatedFileError(
                f"file ends inside {what}: needs {n} bytes, {self.remaining} left"
            )
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def byte(self, what: str) -> int:
        if self.pos >= self.end:
            raise TruncatedFileError(f"file ends before {what}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uvarint(self, what: str, maximum: int, minimum: int = 0) -> int:
        """Read a uvarint and check it lies in [minimum, maximum] before anyone uses it."""
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.byte(what)
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i and byte == 0:
                    raise CorruptFileError(f"non-minimal varint in {what}")
                if not minimum <= value <= maximum:
                    raise CorruptFileError(
                        f"{what} is {value}, outside the allowed range {minimum}..{maximum}"
                    )
                return value
        raise CorruptFileError(f"varint in {what} is longer than {MAX_VARINT_BYTES} bytes")

    def svarint(self, what: str, bound: int) -> int:
        return unzigzag(self.uvarint(what, maximum=2 * bound))
