"""Reading and writing still images (Pillow): pixels in, 8-bit RGB to the codec, pixels out.

The codec only ever sees 8-bit sRGB `RGB` images. `prepare` reduces whatever Pillow opened to
that and records in `ImageMeta` what `restore` needs to give the user back an image of the
original size and mode:

- alpha (RGBA, LA, PA, palette or colour-key transparency) is carried losslessly as a PNG of the
  alpha plane (`ImageMeta.alpha_png`, stored by the codec as an extra chunk); a fully opaque
  alpha plane costs nothing and comes back as 255;
- grayscale (`1`, `L`) is coded as RGB and restored to its mode (`1` by thresholding at 128);
- 16-bit grayscale (`I;16`, `I;16B`, `I;16L`, `I`) is coded at 8-bit precision and restored
  to its 16/32-bit mode with values `v8 * 257`: precision above 8 bits is NOT kept
  (big-endian `I;16B` comes back as `I;16`, the same values in native order). Pillow
  itself reads 16-bit-per-channel RGB files as 8-bit `RGB`, so those come back as 8-bit RGB;
- palette images come back as RGB (or RGBA when they had transparency), not re-quantized;
- CMYK, YCbCr, LAB and HSV images are converted to RGB and come back as RGB;
- an embedded ICC profile other than sRGB is converted to sRGB on input; outputs are sRGB
  without an embedded profile;
- EXIF orientation is applied on input (the output is upright, with no EXIF);
- multi-frame files (GIF, APNG, TIFF pages) contribute their first frame only;
- 32-bit float images (`F`) and 16-bit grayscale with a transparent colour key are refused.

Output formats are chosen by extension or by name (`output_format`); `check_can_save` refuses
real transparency or 16-bit depth where the format cannot hold them instead of dropping it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from neurcodec import limits
from neurcodec.errors import CorruptFileError, InputError, LimitError, UsageError

# Picture files by name: what Pillow reads (JPEG XL with the optional plugin). Folder searches
# (`find_files`), `dataset` sources and the bench all go by this list.
IMAGE_SUFFIXES = frozenset(
    ".png .jpg .jpeg .webp .bmp .tif .tiff .ppm .pgm .pbm .pnm .gif .avif .jxl .jp2 .j2k .tga .qoi".split()
)


def find_files(folder: Path, suffixes: frozenset[str], kind: str = "images", *, recursive: bool = False, limit: int | None = None) -> list[Path]:
    """Files in `folder` (and below, `recursive`) whose suffix is one of `suffixes`, sorted by
    path, at most `limit`; InputError for a missing folder or none found."""
    if not folder.is_dir():
        raise InputError(f"not a directory: {folder}")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in suffixes)
    if not found:
        raise InputError(f"no {kind} ({', '.join(sorted(suffixes))}) {'under' if recursive else 'in'} {folder}")
    return found[:limit] if limit else found


def find_images(folder: Path, *, recursive: bool = False, limit: int | None = None) -> list[Path]:
    return find_files(folder, IMAGE_SUFFIXES, "images", recursive=recursive, limit=limit)

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I"})
ALPHA_MODES = frozenset({"RGBA", "LA"})

# Source modes that restore to something other than themselves.
_RESTORE_MODE = {
    "1": "1",
    "L": "L",
    "LA": "LA",
    "La": "LA",
    "RGB": "RGB",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "PA": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "I;16": "I;16",
    "I;16L": "I;16",
    "I;16N": "I;16",
    "I;16B": "I;16",  # same values; the container records native 16-bit only
    "I": "I",
}


@dataclass(frozen=True)
class ImageMeta:
    """What `restore` needs to turn decoded RGB back into the user's image."""

    size: tuple[int, int]  # (width, height) after EXIF orientation
    mode: str  # the mode `restore` produces
    source_mode: str  # the mode Pillow opened (informational, e.g. "P" or "CMYK")
    alpha_png: bytes | None = None  # alpha plane as PNG; None when there is none or it is opaque

    @property
    def has_alpha(self) -> bool:
        return self.mode in ALPHA_MODES

    @property
    def bits(self) -> int:
        return 16 if self.mode in SIXTEEN_BIT_MODES else 8


# --------------------------------------------------------------------------------------------
# Reading


def open_image(source: Path | str | bytes | BinaryIO, *, name: str | None = None) -> Image.Image:
    """Open and fully load an image (first frame, EXIF orientation applied).

    Raises InputError with one line naming the input and what Pillow said.
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else "input")
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with warnings.catch_warnings():
            # Our own pixel limit (below Pillow's warning threshold by default) speaks instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fp)
        limits.check_pixels(*image.size, what=label)  # before the pixels are decoded
        image.load()
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a directory, not an image") from None
    except PermissionError:
        raise InputError(f"{label}: permission denied") from None
    except UnidentifiedImageError:
        raise InputError(f"{label}: not an image format Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise LimitError(f"{label}: {exc} (Pillow's own limit, Image.MAX_IMAGE_PIXELS)") from None
    except LimitError:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, struct.error...)
        raise InputError(f"{label}: cannot decode image ({exc})") from None
    try:
        image = ImageOps.exif_transpose(image) or image
    except Exception:  # a broken EXIF block should not make a viewable image unreadable
        pass
    return image


# --------------------------------------------------------------------------------------------
# To and from the codec's RGB


def prepare(image: Image.Image) -> tuple[Image.Image, ImageMeta]:
    """Reduce `image` to 8-bit sRGB RGB, plus the ImageMeta that restores its size and mode."""
    source_mode = image.mode
    if source_mode == "F":
        raise InputError("32-bit float images (mode F) are not supported; convert to 16-bit first")
    image = _to_srgb(image)
    if source_mode == "P":
        mode = "RGBA" if image.has_transparency_data else "RGB"
    elif source_mode in ("1", "L", "RGB") and image.has_transparency_data:
        mode = "LA" if source_mode in ("1", "L") else "RGBA"
    elif source_mode in _RESTORE_MODE:
        mode = _RESTORE_MODE[source_mode]
    else:
        raise InputError(f"image mode {source_mode} is not supported")

    if mode in SIXTEEN_BIT_MODES:
        if image.has_transparency_data:
            raise InputError("16-bit grayscale with a transparent colour key is not supported")
        gray = _to_8bit(image)
        return gray.convert("RGB"), ImageMeta(image.size, mode, source_mode)

    alpha_png = None
    if mode in ALPHA_MODES:
        image = image.convert(mode)  # also un-premultiplies La/RGBa and applies colour keys
        alpha = image.getchannel("A")
        if alpha.getextrema() != (255, 255):
            alpha_png = _png_bytes(alpha)
    elif source_mode == "1":
        image = image.convert("L")
    rgb = image.convert("RGB")
    return rgb, ImageMeta(image.size, mode, source_mode, alpha_png)


def restore(rgb: Image.Image, meta: ImageMeta, alpha_png: bytes | None = None) -> Image.Image:
    """Turn decoded RGB back into an image of `meta.size` and `meta.mode`.

    `rgb` may be larger than the original (padding at the right/bottom), which is cropped.
    `alpha_png` defaults to `meta.alpha_png`; without either, alpha comes back opaque.
    """
    width, height = meta.size
    if rgb.size != meta.size:
        if rgb.width < width or rgb.height < height:
            raise ValueError(f"decoded image {rgb.size} is smaller than the original {meta.size}")
        rgb = rgb.crop((0, 0, width, height))
    rgb = rgb.convert("RGB")
    mode = meta.mode
    if alpha_png is None:
        alpha_png = meta.alpha_png

    if mode == "RGB":
        return rgb
    if mode == "L":
        return rgb.convert("L")
    if mode == "1":
        return rgb.convert("L").point(lambda v: 255 if v >= 128 else 0).convert("1")
    if mode in SIXTEEN_BIT_MODES:
        return _from_8bit(rgb.convert("L"), mode)
    if mode in ALPHA_MODES:
        alpha = _read_alpha(alpha_png, meta.size)
        base = rgb if mode == "RGBA" else rgb.convert("L")
        base.putalpha(alpha)
        return base
    raise ValueError(f"unknown restore mode {mode!r}")


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert pixels with an embedded non-sRGB ICC profile to sRGB (the model's colour space)."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", ""):
            return image
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(
            image, profile, ImageCms.createProfile("sRGB"), outputMode=out_mode
        )
    except Exception:  # an unusable profile: code the values as they are
        return image
    return converted if converted is not None else image


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit int) grayscale -> L, rounding v/257 (Pillow's convert would clip)."""
    values = np.asarray(image).astype(np.int64)
    values = np.clip(values, 0, 65535)
    return Image.fromarray(((values + 128) // 257).astype(np.uint8))


def _from_8bit(gray: Image.Image, mode: str) -> Image.Image:
    values = np.asarray(gray).astype(np.uint32) * 257
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4"}[mode]
    raw_mode = {"I;16": "I;16", "I;16B": "I;16B", "I": "I;32"}[mode]
    return Image.frombytes(mode, gray.size, values.astype(dtype).tobytes(), "raw", raw_mode)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def open_alpha(alpha_png: bytes, size: tuple[int, int]) -> Image.Image:
    """The alpha chunk opened as PNG only, its size and mode checked; pixels not yet decoded
    (cheap enough to call before a decode, so a bad chunk fails before the slow part)."""
    try:
        alpha = Image.open(io.BytesIO(alpha_png), formats=["PNG"])  # the narrowest opener
    except Exception as exc:
        raise CorruptFileError(f"alpha chunk is not a readable PNG ({exc})") from None
    if alpha.size != size or alpha.mode != "L":
        raise CorruptFileError(
            f"alpha chunk is {alpha.mode} {alpha.size[0]}x{alpha.size[1]}, "
            f"expected L {size[0]}x{size[1]}"
        )
    return alpha


def _read_alpha(alpha_png: bytes | None, size: tuple[int, int]) -> Image.Image:
    if alpha_png is None:
        return Image.new("L", size, 255)
    alpha = open_alpha(alpha_png, size)
    try:
        alpha.load()
    except Exception as exc:
        raise CorruptFileError(f"alpha chunk is not a readable PNG ({exc})") from None
    return alpha


# --------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class OutputFormat:
    """An image format we write: Pillow's name, file extensions, what it can hold, save options."""

    name: str  # what --format accepts
    pillow: str
    extensions: tuple[str, ...]
    alpha: bool
    sixteen_bit: bool
    options: tuple[tuple[str, object], ...] = ()

    @property
    def extension(self) -> str:
        return self.extensions[0]


OUTPUT_FORMATS: dict[str, OutputFormat] = {
    f.name: f
    for f in (
        OutputFormat("png", "PNG", (".png",), alpha=True, sixteen_bit=True,
                     options=(("compress_level", 6),)),
        OutputFormat("jpeg", "JPEG", (".jpg", ".jpeg", ".jpe", ".jfif"), alpha=False,
                     sixteen_bit=False, options=(("quality", 95), ("subsampling", 0))),
        OutputFormat("webp", "WEBP", (".webp",), alpha=True, sixteen_bit=False,
                     options=(("quality", 95), ("method", 4))),
        OutputFormat("tiff", "TIFF", (".tiff", ".tif"), alpha=True, sixteen_bit=True,
                     options=(("compression", "tiff_adobe_deflate"),)),
        OutputFormat("bmp", "BMP", (".bmp",), alpha=True, sixteen_bit=False),
        OutputFormat("ppm", "PPM", (".ppm", ".pgm", ".pbm", ".pnm"), alpha=False,
                     sixteen_bit=True),
        OutputFormat("avif", "AVIF", (".avif",), alpha=True, sixteen_bit=False,
                     options=(("quality", 90), ("subsampling", "4:4:4"))),
    )
}
_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff", "pgm": "ppm", "pbm": "ppm", "pnm": "ppm"}


def available_formats() -> list[str]:
    """Output format names this Pillow build can write."""
    return [name for name in OUTPUT_FORMATS if name != "avif" or features.check("avif")]


def output_format(path: str | Path | None, fmt: str | None = None) -> OutputFormat:
    """The format to write: `fmt` if given, else from `path`'s extension; PNG for stdout (`-`)."""
    if fmt:
        key = fmt.lower().lstrip(".")
        key = _FORMAT_ALIASES.get(key, key)
        if key not in available_formats():
            raise UsageError(
                f"unknown output format {fmt!r} (choose from {', '.join(available_formats())})"
            )
        return OUTPUT_FORMATS[key]
    if path is None or str(path) == "-":
        return OUTPUT_FORMATS["png"]
    suffix = Path(path).suffix.lower()
    for spec in OUTPUT_FORMATS.values():
        if suffix in spec.extensions and spec.name in available_formats():
            return spec
    raise UsageError(
        f"cannot tell the image format of {Path(path).name!r} from its extension; "
        f"use --format ({', '.join(available_formats())})"
    )


def check_can_save(mode: str, spec: OutputFormat, *, transparent: bool) -> None:
    """Refuse (UsageError) to write real transparency or 16-bit depth where `spec` can't hold it.

    An opaque alpha plane may be dropped: that loses nothing.
    """
    if mode in SIXTEEN_BIT_MODES and not spec.sixteen_bit:
        raise UsageError(
            f"{spec.name.upper()} cannot store this 16-bit image (mode {mode}); "
            "write PNG, TIFF or PPM instead"
        )
    if mode in ALPHA_MODES and transparent and not spec.alpha:
        raise UsageError(
            f"{spec.name.upper()} cannot store this image's transparency; "
            "write PNG, WebP, TIFF or AVIF instead"
        )


def write_image(image: Image.Image, fp: BinaryIO, spec: OutputFormat) -> None:
    """Save `image` to `fp` as `spec`, after `check_can_save`, converting only without loss."""
    transparent = image.mode in ALPHA_MODES and image.getchannel("A").getextrema() != (255, 255)
    check_can_save(image.mode, spec, transparent=transparent)
    image = _fit_mode(image, spec)
    image.save(fp, spec.pillow, **dict(spec.options))


def image_bytes(image: Image.Image, spec: OutputFormat) -> bytes:
    buffer = io.BytesIO()
    write_image(image, buffer, spec)
    return buffer.getvalue()


def _fit_mode(image: Image.Image, spec: OutputFormat) -> Image.Image:
    """A mode `spec` can write holding the same pixels (after check_can_save allowed it)."""
    mode = image.mode
    if mode in ALPHA_MODES and not spec.alpha:  # opaque: dropping alpha is lossless
        return image.convert("RGB" if mode == "RGBA" else "L")
    if (spec.pillow, mode) in (("PNG", "I"), ("PPM", "I;16B")):  # same values, a writable mode
        return _clip16(image)
    if spec.pillow in ("JPEG", "WEBP", "AVIF") and mode == "1":
        return image.convert("L")
    if spec.pillow == "BMP" and mode == "LA":
        return image.convert("RGBA")
    if spec.pillow in ("WEBP", "AVIF") and mode == "LA":
        return image.convert("RGBA")
    return image


def _clip16(image: Image.Image) -> Image.Image:
    values = np.clip(np.asarray(image).astype(np.int64), 0, 65535).astype("<u2")
    return Image.frombytes("I;16", image.size, values.tobytes(), "raw", "I;16")
