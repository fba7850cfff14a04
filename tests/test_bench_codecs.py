"""Every anchor round-trips a small image with honest bpp; rescaled and neural wrappers behave."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from neurcodec.bench import metrics as M
from neurcodec.bench.codecs import ANCHORS, NeuralCodec, Rescaled, load_neural, make_codec, unavailable
from neurcodec.errors import UsageError


def _photo(w: int = 72, h: int = 56) -> Image.Image:
    """Smooth gradients plus mild noise: compressible like a photo, not like flat colour."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h) + 60], axis=-1)
    return Image.fromarray((rgb + rng.normal(0, 6, rgb.shape)).clip(0, 255).astype(np.uint8))


RUNNABLE = [name for name in ANCHORS if not unavailable(name)]


@pytest.mark.parametrize("name", RUNNABLE)
def test_anchor_round_trip_with_real_bpp(name: str) -> None:
    codec = make_codec(name)
    img = _photo()
    lo, hi = codec.qualities[0], codec.qualities[-1]
    coded_lo, coded_hi = codec.run(img, lo), codec.run(img, hi)
    for coded in (coded_lo, coded_hi):
        assert coded.decoded.size == img.size and coded.decoded.mode == "RGB"
        assert coded.bpp(*img.size) == 8 * len(coded.data) / (img.width * img.height)
        assert coded.encode_seconds >= 0 and coded.decode_seconds >= 0
    ref = M.to_rgb_array(img)
    p_lo = M.psnr(ref, M.to_rgb_array(coded_lo.decoded))
    p_hi = M.psnr(ref, M.to_rgb_array(coded_hi.decoded))
    # The lowest setting is smaller and worse than the highest one.
    assert len(coded_lo.data) < len(coded_hi.data)
    assert 10.0 < p_lo < p_hi


@pytest.mark.parametrize("name", RUNNABLE)
def test_anchor_bytes_are_a_standard_file(name: str) -> None:
    codec = make_codec(name)
    data = codec.encode(_photo(), codec.qualities[1])
    with Image.open(io.BytesIO(data)) as im:  # what an image viewer would open
        assert im.format == codec.format


def test_jpeg_is_420_from_quality_1() -> None:
    codec = make_codec("jpeg")
    assert codec.qualities[0] == 1
    with Image.open(io.BytesIO(codec.encode(_photo(), 1))) as im:
        from PIL import JpegImagePlugin

        assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0


def test_webp_and_avif_sweep_down_to_zero() -> None:
    for name in ("webp", "avif"):
        if not unavailable(name):
            assert make_codec(name).qualities[0] == 0


def test_rescaled_restores_odd_sizes_and_spends_fewer_bytes() -> None:
    img = _photo(73, 51)
    inner, small = make_codec("jpeg"), make_codec("jpeg-x4")
    assert isinstance(small, Rescaled) and small.name == "jpeg-x4"
    assert small.small_size(img.size) == (19, 13)
    coded = small.run(img, 60)
    assert coded.decoded.size == img.size
    assert len(coded.data) < len(inner.run(img, 60).data)


@pytest.mark.parametrize("bad", ["bmp", "jpeg-x1", "jpeg-x", "avif-4", ""])
def test_unknown_anchor_names_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        make_codec(bad)


class FakeNeural:
    """Same two methods as neurcodec.codec.Codec: keeps a quality-dependent grey level per image."""

    def __init__(self) -> None:
        self.decode_calls: list[dict] = []

    def encode(self, image: Image.Image, quality: int | None = None, bpp: float | None = None) -> bytes:
        assert bpp is None
        levels = max(2, quality or 2)
        arr = np.asarray(image.convert("L"), dtype=np.float64)
        q = np.round(arr / 255 * (levels - 1)).astype(np.uint8)
        return bytes([levels]) + image.width.to_bytes(2, "big") + image.height.to_bytes(2, "big") + q.tobytes()

    def decode(self, data: bytes, steps=None, guidance=None, sampler=None, seed=None) -> Image.Image:
        self.decode_calls.append({"steps": steps, "guidance": guidance, "sampler": sampler, "seed": seed})
        levels, w, h = data[0], int.from_bytes(data[1:3], "big"), int.from_bytes(data[3:5], "big")
        q = np.frombuffer(data[5:], dtype=np.uint8).reshape(h, w).astype(np.float64)
        return Image.fromarray((q * 255 / (levels - 1)).round().astype(np.uint8)).convert("RGB")


def test_neural_wrapper_passes_quality_in_and_decode_settings_through() -> None:
    fake = FakeNeural()
    codec = NeuralCodec(fake, "tiny", steps=12, guidance=1.5, seed=7, qualities=(4, 64))
    assert codec.name == "neurcodec-tiny-s12" and not codec.parallel_safe
    img = _photo()
    coarse, fine = codec.run(img, 4), codec.run(img, 64)
    ref = M.to_rgb_array(img)
    assert M.psnr(ref, M.to_rgb_array(coarse.decoded)) < M.psnr(ref, M.to_rgb_array(fine.decoded))
    assert fake.decode_calls[-1] == {"steps": 12, "guidance": 1.5, "sampler": None, "seed": 7}


def test_load_neural_builds_one_curve_per_step_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import neurcodec

    loaded: list[tuple] = []

    def fake_load(name: str, device: str | None = None) -> FakeNeural:
        loaded.append((name, device))
        return FakeNeural()

    monkeypatch.setattr(neurcodec, "load", fake_load, raising=False)
    codecs = load_neural("tiny", steps=[10, 30], qualities=[5, 20], device="cpu")
    assert loaded == [("tiny", "cpu")]  # the model is loaded once
    assert [c.name for c in codecs] == ["neurcodec-tiny-s10", "neurcodec-tiny-s30"]
    assert all(c.qualities == (5, 20) for c in codecs)
