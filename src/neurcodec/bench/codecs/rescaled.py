""""Downscale ×N, encode, upscale" around any anchor: classical points in the 0.01–0.1 bpp range."""

from __future__ import annotations

import math

from PIL import Image

from neurcodec.bench.codecs.base import Codec

# Lanczos both ways: this reproduces the Kodak figure (×4 + JPEG q60: 0.093 bpp / 24.20 dB).
_RESAMPLE = Image.Resampling.LANCZOS


class Rescaled(Codec):
    """`inner` run on an image shrunk by `factor`, decoded then enlarged back to the original size.

    The original size is handed to `decode` rather than stored: a real format would spend ≤ 4 bytes
    on it, which are not counted in bpp.
    """

    def __init__(self, inner: Codec, factor: int) -> None:
        if factor < 2:
            raise ValueError(f"rescale factor must be ≥ 2, got {factor}")
        self.inner = inner
        self.factor = factor
        self.name = f"{inner.name}-x{factor}"
        self.description = f"{inner.description}; Lanczos downscale ×{factor} before, upscale after"
        self.qualities = inner.qualities
        self.quality_label = inner.quality_label
        self.parallel_safe = inner.parallel_safe

    def small_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return (max(1, math.ceil(size[0] / self.factor)), max(1, math.ceil(size[1] / self.factor)))

    def encode(self, img: Image.Image, quality: int) -> bytes:
        return self.inner.encode(img.resize(self.small_size(img.size), _RESAMPLE), quality)

    def decode(self, data: bytes, size: tuple[int, int]) -> Image.Image:
        small = self.inner.decode(data, self.small_size(size))
        return small.resize(size, _RESAMPLE)
