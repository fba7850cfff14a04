"""`.dae` through Pillow: Image.open / Image.save, imageio, multi-frame video."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import neurcodec.pillow
from neurcodec.cli import app
from neurcodec.errors import TruncatedFileError, UnsupportedFileError
from neurcodec.video import VideoCodec


def _photo(width: int = 160, height: int = 128) -> Image.Image:
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


@pytest.fixture
def stand_in(random_codec, monkeypatch):
    """The plugin's model loader answers with the random-weights codec (registered as "tiny")."""
    monkeypatch.setattr(neurcodec.pillow, "_codec", lambda model: random_codec)
    return random_codec


def test_open_and_save_equal_the_cli_bytes_and_pixels(tmp_path):
    src = tmp_path / "photo.png"
    _photo().save(src)
    runner = CliRunner()
    cli_dae, cli_png = tmp_path / "cli.dae", tmp_path / "cli.png"
    assert runner.invoke(app, ["encode", str(src), "-o", str(cli_dae)]).exit_code == 0
    assert runner.invoke(app, ["decode", str(cli_dae), "-o", str(cli_png)]).exit_code == 0

    Image.open(src).save(tmp_path / "pillow.dae")  # the extension picks the plugin
    assert (tmp_path / "pillow.dae").read_bytes() == cli_dae.read_bytes()
    with Image.open(cli_dae) as opened:
        assert (opened.format, opened.size, opened.mode) == ("DAE", (160, 128), "RGB")
        assert np.array_equal(np.asarray(opened), np.asarray(Image.open(cli_png)))


def test_size_and_mode_are_known_before_decoding(stand_in, tmp_path):
    path = tmp_path / "grey.dae"
    _photo().convert("L").save(path, quality=30)
    opened = Image.open(path)
    assert (opened.size, opened.mode, opened.n_frames) == ((160, 128), "L", 1)
    assert opened._im is None  # nothing decoded yet
    assert opened.load() is not None and opened.getpixel((0, 0)) is not None


def test_save_options_reach_the_encoder(stand_in, tmp_path):
    image = _photo()
    image.save(tmp_path / "a.dae", quality=10)
    image.save(tmp_path / "b.dae", quality=90, seed=5, steps=3)
    small, large = (tmp_path / "a.dae").read_bytes(), (tmp_path / "b.dae").read_bytes()
    assert len(small) < len(large)
    assert large == stand_in.encode(image, quality=90, seed=5, steps=3)


def test_imageio_reads_a_dae(stand_in, tmp_path):
    iio = pytest.importorskip("imageio.v3")
    path = tmp_path / "photo.dae"
    _photo().save(path)
    pixels = iio.imread(path)
    assert pixels.shape == (128, 160, 3)
    assert np.array_equal(pixels, np.asarray(stand_in.decode(path.read_bytes())))


def test_a_video_dae_opens_as_a_multi_frame_image(stand_in, tmp_path):
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(5):
            frame = np.full((64, 96, 3), 40 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf = io.BytesIO()
    video = VideoCodec(stand_in, batch=2)
    video.encode(str(clip), buf, quality=40)
    path = tmp_path / "clip.dae"
    path.write_bytes(buf.getvalue())
    expected = list(video.frames(video.open(io.BytesIO(buf.getvalue()))))

    opened = Image.open(path)
    assert (opened.n_frames, opened.is_animated, opened.size, opened.mode) == (5, True, (96, 64), "RGB")
    for index in (3, 0, 4):  # forward, back, forward again
        opened.seek(index)
        assert np.array_equal(np.asarray(opened), expected[index])
    with pytest.raises(EOFError):
        opened.seek(5)


def test_a_file_that_is_not_a_dae_is_left_to_other_plugins(tmp_path):
    path = tmp_path / "photo.png"
    _photo().save(path)
    assert Image.open(path).format == "PNG"
    (tmp_path / "future.dae").write_bytes(b"DAE\x09broken")
    with pytest.raises(UnsupportedFileError, match="version 9"):  # a .dae, but not one we read
        Image.open(tmp_path / "future.dae")
    (tmp_path / "cut.dae").write_bytes(b"DAE\x01\x00")
    with pytest.raises(TruncatedFileError):
        Image.open(tmp_path / "cut.dae")
