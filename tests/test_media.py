"""media.py: reading any Pillow image, reducing it to RGB for the codec and restoring it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from neurcodec import media
from neurcodec.errors import CorruptFileError, InputError, UsageError


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _noise(size: tuple[int, int], channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _roundtrip(image: Image.Image) -> tuple[Image.Image, media.ImageMeta]:
    """prepare -> a perfect codec (identity on RGB) -> restore."""
    rgb, meta = media.prepare(image)
    assert rgb.mode == "RGB" and rgb.size == image.size
    return media.restore(rgb.copy(), meta, meta.alpha_png), meta


# ---------------------------------------------------------------------------- open_image


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("PNG", "RGB"), ("JPEG", "RGB"), ("WEBP", "RGB"), ("TIFF", "RGB"), ("BMP", "RGB"),
     ("GIF", "P"), ("PNG", "I;16"), ("TIFF", "CMYK"), ("JPEG", "L"), ("PNG", "RGBA")],
)
def test_open_image_reads_common_formats_from_bytes_path_and_file(tmp_path, fmt, mode):
    source = Image.fromarray(_noise((9, 5), 3)).convert(mode)
    data = _encoded(source, fmt)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    for opened in (media.open_image(data), media.open_image(path),
                   media.open_image(io.BytesIO(data))):
        assert opened.size == (9, 5)
        assert opened.mode == mode


def test_open_image_takes_the_first_frame_of_an_animation():
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    opened = media.open_image(buffer.getvalue()).convert("RGB")
    assert opened.getpixel((0, 0)) == (255, 0, 0)


def test_open_image_applies_exif_orientation():
    image = Image.new("RGB", (6, 2), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    opened = media.open_image(_encoded(image, "JPEG", exif=exif))
    assert opened.size == (2, 6)


def test_open_image_errors_name_the_input(tmp_path):
    with pytest.raises(InputError, match="nothere.png: no such file"):
        media.open_image(tmp_path / "nothere.png")
    text = tmp_path / "notes.png"
    text.write_text("hello, not an image")
    with pytest.raises(InputError, match="notes.png: not an image"):
        media.open_image(text)
    truncated = _encoded(Image.fromarray(_noise((64, 64), 3)), "PNG")[:200]
    with pytest.raises(InputError, match="cut.png"):
        media.open_image(truncated, name="cut.png")


# ---------------------------------------------------------------------------- prepare / restore


def test_rgb_and_grayscale_round_trip_exactly():
    for image in (Image.fromarray(_noise((7, 3), 3)), Image.fromarray(_noise((7, 3), 1))):
        out, meta = _roundtrip(image)
        assert (out.mode, out.size) == (image.mode, image.size)
        assert out.tobytes() == image.tobytes()
        assert meta.alpha_png is None


def test_bilevel_comes_back_bilevel():
    image = Image.fromarray(_noise((7, 3), 1)).convert("1")
    out, meta = _roundtrip(image)
    assert meta.mode == "1" and out.mode == "1"
    assert out.tobytes() == image.tobytes()


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_carried_losslessly(mode):
    image = Image.fromarray(_noise((7, 3), 4)).convert(mode)
    out, meta = _roundtrip(image)
    assert meta.mode == mode and meta.has_alpha and meta.alpha_png is not None
    assert out.mode == mode
    assert out.getchannel("A").tobytes() == image.getchannel("A").tobytes()
    assert out.tobytes() == image.tobytes()


def test_opaque_alpha_costs_nothing_and_comes_back_opaque():
    image = Image.new("RGBA", (5, 4), (1, 2, 3, 255))
    out, meta = _roundtrip(image)
    assert meta.alpha_png is None
    assert out.mode == "RGBA" and out.getchannel("A").getextrema() == (255, 255)


def test_palette_with_transparency_restores_as_rgba():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0
    out, meta = _roundtrip(image)
    assert meta.source_mode == "P" and meta.mode == "RGBA"
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((1, 1)) == (0, 255, 0, 255)

    opaque = image.copy()
    del opaque.info["transparency"]
    out, meta = _roundtrip(opaque)
    assert meta.mode == "RGB" and out.getpixel((1, 1)) == (0, 255, 0)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16_bit_grayscale_keeps_its_mode_at_8_bit_precision(mode):
    values = np.random.default_rng(1).integers(0, 65536, (3, 7)).astype(np.int64)
    image = Image.fromarray(values.astype(np.uint16)).convert(mode) if mode != "I;16B" else (
        Image.frombytes("I;16B", (7, 3), values.astype(">u2").tobytes()))
    if mode == "I":
        image = Image.fromarray(values.astype(np.int32))
    out, meta = _roundtrip(image)
    assert meta.bits == 16 and out.size == (7, 3)
    assert out.mode == ("I;16" if mode == "I;16B" else mode)  # same values, native order
    restored = np.asarray(out).astype(np.int64)
    assert np.all(restored % 257 == 0)
    assert np.abs(restored - values).max() <= 128  # nearest 8-bit level, nothing finer


def test_cmyk_comes_back_as_rgb():
    out, meta = _roundtrip(Image.new("CMYK", (3, 3), (0, 255, 255, 0)))
    assert meta.source_mode == "CMYK" and out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 0, 0)


def test_float_images_are_refused_clearly():
    with pytest.raises(InputError, match="mode F"):
        media.prepare(Image.new("F", (2, 2)))


def test_restore_crops_right_bottom_padding():
    image = Image.fromarray(_noise((7, 3), 3))
    rgb, meta = media.prepare(image)
    padded = Image.new("RGB", (16, 16))
    padded.paste(rgb, (0, 0))
    assert media.restore(padded, meta).tobytes() == image.tobytes()
    with pytest.raises(ValueError):
        media.restore(Image.new("RGB", (4, 4)), meta)


def test_restore_rejects_a_bad_alpha_chunk():
    rgb, meta = media.prepare(Image.fromarray(_noise((7, 3), 4)))
    with pytest.raises(CorruptFileError, match="alpha"):
        media.restore(rgb, meta, b"\x89PNG garbage")
    wrong_size = _encoded(Image.new("L", (2, 2)), "PNG")
    with pytest.raises(CorruptFileError, match="alpha chunk is L 2x2"):
        media.restore(rgb, meta, wrong_size)


@settings(max_examples=25, deadline=None)
@given(
    width=st.integers(1, 12),
    height=st.integers(1, 12),
    mode=st.sampled_from(["RGB", "L", "RGBA", "LA", "1"]),
    seed=st.integers(0, 2**16),
)
def test_any_size_and_mode_round_trips_exactly_through_a_perfect_codec(width, height, mode, seed):
    image = Image.fromarray(_noise((width, height), 4, seed)).convert(mode)
    out, _ = _roundtrip(image)
    assert (out.mode, out.size) == (mode, (width, height))
    assert out.tobytes() == image.tobytes()


# ---------------------------------------------------------------------------- output formats


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.png", "png"), ("b.JPG", "jpeg"), ("c.jpeg", "jpeg"), ("d.webp", "webp"),
     ("e.tif", "tiff"), ("f.bmp", "bmp"), ("g.pgm", "ppm"), ("-", "png")],
)
def test_output_format_from_extension(name, expected):
    assert media.output_format(name).name == expected


def test_output_format_by_name_wins_and_unknowns_are_usage_errors():
    assert media.output_format("x.png", "jpg").name == "jpeg"
    assert media.output_format("-", "WEBP").name == "webp"
    with pytest.raises(UsageError, match="--format"):
        media.output_format("x.dae")
    with pytest.raises(UsageError, match="unknown output format 'gif'"):
        media.output_format("x.png", "gif")


@pytest.mark.parametrize("name", media.available_formats())
@pytest.mark.parametrize("mode", ["RGB", "L", "1", "RGBA"])
def test_every_format_writes_what_it_can_hold(name, mode):
    image = Image.new(mode, (7, 3), {"1": 0, "L": 90, "RGB": (9, 90, 200)}.get(mode, (9, 9, 9, 255)))
    spec = media.OUTPUT_FORMATS[name]
    reread = Image.open(io.BytesIO(media.image_bytes(image, spec)))
    assert reread.size == (7, 3)
    assert reread.format == spec.pillow


@pytest.mark.parametrize("name", ["png", "tiff", "ppm"])
@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16_bit_outputs_keep_their_values(name, mode):
    rgb, meta = media.prepare(Image.fromarray(np.arange(21, dtype=np.uint16).reshape(3, 7) * 3000))
    restored = media.restore(rgb, media.ImageMeta(meta.size, mode, mode))
    reread = Image.open(io.BytesIO(media.image_bytes(restored, media.OUTPUT_FORMATS[name])))
    assert np.array_equal(np.asarray(reread).astype(np.int64),
                          np.asarray(restored).astype(np.int64))
    assert reread.mode in media.SIXTEEN_BIT_MODES


@pytest.mark.parametrize("name", ["jpeg", "webp", "bmp", "avif"])
def test_16_bit_is_refused_where_it_would_be_lost(name):
    if name not in media.available_formats():
        pytest.skip(f"{name} not available in this Pillow")
    with pytest.raises(UsageError, match="16-bit"):
        media.image_bytes(Image.new("I;16", (2, 2), 999), media.OUTPUT_FORMATS[name])


@pytest.mark.parametrize("name", ["jpeg", "ppm"])
def test_transparency_is_refused_where_it_would_be_lost_but_opaque_alpha_is_dropped(name):
    spec = media.OUTPUT_FORMATS[name]
    with pytest.raises(UsageError, match="transparency"):
        media.image_bytes(Image.new("RGBA", (2, 2), (1, 2, 3, 100)), spec)
    data = media.image_bytes(Image.new("RGBA", (2, 2), (1, 2, 3, 255)), spec)
    assert Image.open(io.BytesIO(data)).mode == "RGB"
