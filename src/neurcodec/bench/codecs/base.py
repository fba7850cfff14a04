"""The one interface every benchmarked codec implements (after CompressAI's bench `Codec`)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Coded:
    """One image through one codec at one setting: the real bytes and the decoded pixels."""

    data: bytes
    decoded: Image.Image
    encode_seconds: float
    decode_seconds: float

    def bpp(self, width: int, height: int) -> float:
        """Bits per pixel from the whole file (headers included)."""
        return 8.0 * len(self.data) / (width * height)


class Codec(ABC):
    """A codec with a scalar quality knob.

    Subclasses set `name` (what `--vs` accepts and results are keyed by), `description`
    (version and settings, for the results file), `qualities` (default sweep, low to high) and
    `quality_label` (what the knob means). `spec` rebuilds the codec in a worker process.
    """

    name: str = ""
    description: str = ""
    qualities: tuple[int, ...] = ()
    quality_label: str = "quality"
    #: Classical codecs are cheap and stateless: safe to run in worker processes.
    parallel_safe: bool = True

    @property
    def spec(self) -> str:
        return self.name

    @abstractmethod
    def encode(self, img: Image.Image, quality: int) -> bytes:
        """Compress an RGB image."""

    @abstractmethod
    def decode(self, data: bytes, size: tuple[int, int]) -> Image.Image:
        """Decompress to an RGB image of `size` (the original size, for codecs that resample)."""

    def run(self, img: Image.Image, quality: int) -> Coded:
        """Encode and decode once, timing each half."""
        img = img.convert("RGB")
        t0 = time.perf_counter()
        data = self.encode(img, quality)
        t1 = time.perf_counter()
        decoded = self.decode(data, img.size).convert("RGB")
        t2 = time.perf_counter()
        if decoded.size != img.size:
            raise RuntimeError(f"{self.name} decoded {decoded.size}, expected {img.size}")
        return Coded(data, decoded, t1 - t0, t2 - t1)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
