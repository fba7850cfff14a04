"""Classical anchors through Pillow (and pillow-jxl-plugin): a few lines each."""

from __future__ import annotations

import importlib.util
import io
from typing import Any

import PIL
from PIL import Image, features

from neurcodec.bench.codecs.base import Codec


class PillowCodec(Codec):
    """Encode with `Image.save(format=..., **options)` into memory, decode with `Image.open`."""

    format: str = ""
    feature: str | None = None  # Pillow feature that must be compiled in

    def save_options(self, quality: int) -> dict[str, Any]:
        return {"quality": quality}

    @classmethod
    def unavailable(cls) -> str:
        """Why this codec cannot run here, or "" when it can."""
        if cls.feature and not features.check(cls.feature):
            return f"this Pillow {PIL.__version__} was built without {cls.feature}"
        return ""

    def encode(self, img: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format=self.format, **self.save_options(quality))
        return buf.getvalue()

    def decode(self, data: bytes, size: tuple[int, int]) -> Image.Image:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")


class JPEG(PillowCodec):
    name = "jpeg"
    format = "JPEG"
    feature = "jpg"
    # From quality 1: Pillow's JPEG floor on Kodak is ~0.17 bpp.
    qualities = (1, 5, 10, 20, 30, 50, 75)
    description = f"JPEG (Pillow {PIL.__version__}, libjpeg, 4:2:0, baseline)"

    def save_options(self, quality: int) -> dict[str, Any]:
        return {"quality": quality, "subsampling": "4:2:0"}


class WebP(PillowCodec):
    name = "webp"
    format = "WEBP"
    feature = "webp"
    qualities = (0, 5, 10, 20, 40, 60)
    description = f"WebP (Pillow {PIL.__version__}, libwebp lossy, method 4)"

    def save_options(self, quality: int) -> dict[str, Any]:
        return {"quality": quality, "method": 4}


class AVIF(PillowCodec):
    name = "avif"
    format = "AVIF"
    feature = "avif"
    qualities = (0, 10, 20, 30, 40, 50, 60)
    description = f"AVIF (Pillow {PIL.__version__}, libavif, 4:2:0, speed 6)"

    def save_options(self, quality: int) -> dict[str, Any]:
        # One thread: parallelism comes from -j workers, and timings stay comparable.
        return {"quality": quality, "speed": 6, "subsampling": "4:2:0", "max_threads": 1}


class JPEG2000(PillowCodec):
    """JPEG 2000 via OpenJPEG; the knob is the compression ratio (24 / ratio = bpp for RGB)."""

    name = "jpeg2000"
    format = "JPEG2000"
    feature = "jpg_2000"
    qualities = (800, 400, 192, 96, 48, 24)  # lowest quality (highest ratio) first
    quality_label = "ratio"
    description = f"JPEG 2000 (Pillow {PIL.__version__}, OpenJPEG, 9/7 irreversible, rate mode)"

    def save_options(self, quality: int) -> dict[str, Any]:
        return {"quality_mode": "rates", "quality_layers": [quality], "irreversible": True}


class JPEGXL(PillowCodec):
    """JPEG XL through pillow-jxl-plugin (libjxl); skipped when the plugin is not installed."""

    name = "jxl"
    format = "JXL"
    qualities = (0, 5, 10, 20, 40, 60)
    description = "JPEG XL (pillow-jxl-plugin, libjxl, effort 7)"

    @classmethod
    def unavailable(cls) -> str:
        if importlib.util.find_spec("pillow_jxl") is None:
            return "package pillow-jxl-plugin not installed"
        return ""

    def __init__(self) -> None:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)

    def save_options(self, quality: int) -> dict[str, Any]:
        # lossless_jpeg=False: never take the JPEG-recompression path for JPEG inputs.
        return {"quality": quality, "effort": 7, "lossless_jpeg": False, "num_threads": 1}


ANCHORS: dict[str, type[PillowCodec]] = {c.name: c for c in (JPEG, WebP, AVIF, JPEG2000, JPEGXL)}
