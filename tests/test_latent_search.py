"""Latent search (`encode --search-steps N`): a slower encode, the same format and decoder."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

import neurcodec
from neurcodec.bitstream import quality_to_step_index, read_image, step_from_index
from neurcodec.errors import UsageError
from neurcodec.latent_search import MAX_SEARCH_PIXELS, MSE_WEIGHT, check_searchable, search_latent
from neurcodec.losses import ms_ssim_mse
from test_cli_codec import entry
from test_codec_f8 import _photo
from test_video import _frames, _write_clip


def _decode_loss(codec, latent: torch.Tensor, pixels: torch.Tensor, step: float) -> float:
    """What the search minimises, for the latent as the file will hold it (quantized)."""
    quantized = torch.round(latent / step) * step
    with torch.no_grad():
        return float(ms_ssim_mse(codec.pipeline.direct_decode(quantized, (pixels.shape[-1], pixels.shape[-2])), pixels, MSE_WEIGHT))


def test_searched_latents_decode_closer_to_the_image(random_codec_f8):
    codec = random_codec_f8
    pixels = codec._to_tensor(_photo(160, 128))
    latent = codec.encode_latent(pixels)
    step = step_from_index(quality_to_step_index(45))
    flags = [p.requires_grad for p in codec.pipeline.stage_b.parameters()]
    found = search_latent(codec.pipeline, pixels, latent, step, iterations=10)
    assert found.shape == latent.shape and found.dtype == torch.float32
    assert _decode_loss(codec, found, pixels, step) < 0.95 * _decode_loss(codec, latent, pixels, step)
    assert [p.requires_grad for p in codec.pipeline.stage_b.parameters()] == flags  # the model is left as it was


def test_a_searched_file_is_an_ordinary_file_at_the_asked_quality(random_codec_f8):
    codec, image = random_codec_f8, _photo(160, 128, seed=1)
    calls = []
    plain = codec.encode(image, quality=45)
    searched = codec.encode(image, quality=45, search_steps=4, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    a, b = read_image(plain).header, read_image(searched).header
    assert b.step_index == a.step_index and b.latent_shape == a.latent_shape
    assert searched != plain
    assert codec.decode(searched).size == image.size


def test_a_searched_file_still_fits_its_bpp_target(random_codec_f8):
    codec, image = random_codec_f8, _photo(160, 128, seed=2)
    blob = codec.encode(image, bpp=0.5, search_steps=3)
    assert 8 * len(blob) / (160 * 128) <= 0.5


def test_latent_search_is_refused_where_it_cannot_run(random_codec_f8):
    codec = random_codec_f8
    with pytest.raises(UsageError, match="up to 2.1 Mpx"):
        codec.encode(Image.new("RGB", (1500, 1500)), search_steps=1)  # 2.25 Mpx: refused before the encoder runs
    assert 1500 * 1500 > MAX_SEARCH_PIXELS
    with pytest.raises(UsageError, match="search_steps must be >= 0"):
        codec.encode(_photo(96, 64), search_steps=-1)
    without_head = SimpleNamespace(stage_b=SimpleNamespace(direct_head=None), family=SimpleNamespace(name="stable-cascade"))
    with pytest.raises(UsageError, match="model 'stable-cascade' has no direct decode path"):
        check_searchable(without_head, 96, 64)


def test_cli_search_steps_on_an_image_and_refused_for_video(capsys, tmp_path, monkeypatch, random_codec_f8):
    monkeypatch.setattr(neurcodec, "load", lambda name=None, **kwargs: random_codec_f8)
    _photo(96, 64).save(tmp_path / "a.png")
    code, _, err = entry(capsys, "encode", str(tmp_path / "a.png"), "--search-steps", "2", "-m", "tiny2", "--quiet")
    assert code == 0, err
    assert read_image((tmp_path / "a.dae").read_bytes()).header.width == 96
    clip = _write_clip(tmp_path / "clip.mp4", _frames(2, 96, 64), fps=Fraction(25))
    code, _, err = entry(capsys, "encode", str(clip), "--search-steps", "2", "-m", "tiny2")
    assert code == 2 and err.strip().splitlines() == [f"neurcodec: {clip}: --search-steps works on images, not video"]
    assert not (tmp_path / "clip.dae").exists()
