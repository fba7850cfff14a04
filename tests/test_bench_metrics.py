"""Metrics on 8-bit RGB: exact values where they are known, the small-image fallback, inf handling."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from neurcodec.bench import metrics as M


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return (base + rng.normal(0, 25, (h, w, 3))).clip(0, 255).astype(np.uint8)


def test_psnr_of_identical_images_is_inf_and_known_mse_is_exact() -> None:
    a = _image(20, 30)
    assert M.psnr(a, a) == math.inf
    b = a.astype(np.int16)
    b = np.where(b < 255, b + 1, b - 1).astype(np.uint8)  # every sample off by exactly 1
    assert M.psnr(a, b) == pytest.approx(20 * math.log10(255.0))


def test_psnr_rejects_different_sizes() -> None:
    with pytest.raises(ValueError, match="size"):
        M.psnr(_image(10, 10), _image(10, 12))


def test_msssim_window_fallback_by_size() -> None:
    assert M.msssim_window(512, 768) == 11  # Kodak: the standard window
    assert M.msssim_window(161, 400) == 11
    assert M.msssim_window(160, 400) == 9
    assert M.msssim_window(100, 100) == 7
    assert M.msssim_window(33, 33) == 3
    assert M.msssim_window(32, 64) == 0  # single-scale SSIM


@pytest.mark.parametrize("size", [(24, 20), (64, 48), (100, 120)])
def test_ms_ssim_works_on_small_images(size: tuple[int, int]) -> None:
    a = _image(*size)
    noisy = (a.astype(np.float64) + np.random.default_rng(1).normal(0, 30, a.shape)).clip(0, 255).astype(np.uint8)
    assert M.ms_ssim(a, a) == pytest.approx(1.0)
    v = M.ms_ssim(a, noisy)
    assert 0.0 < v < 0.99


def test_ms_ssim_matches_pytorch_msssim_on_large_images() -> None:
    import torch
    from pytorch_msssim import ms_ssim

    a, b = _image(176, 192, 0), _image(176, 192, 1)
    ref = ms_ssim(
        torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None],
        torch.from_numpy(b.astype(np.float32)).permute(2, 0, 1)[None],
        data_range=255,
    )
    assert M.ms_ssim(a, b) == pytest.approx(float(ref), abs=1e-5)


def test_ms_ssim_db_form() -> None:
    assert M.ms_ssim_db(1.0) == math.inf
    assert M.ms_ssim_db(0.9) == pytest.approx(10.0)
    assert M.ms_ssim_db(0.99) == pytest.approx(20.0)


def test_compute_adds_the_db_form_next_to_ms_ssim() -> None:
    a, b = _image(40, 40, 0), _image(40, 40, 1)
    out = M.compute(a, b, ["psnr-rgb", "ms-ssim-rgb"])
    assert list(out) == ["psnr-rgb", "ms-ssim-rgb", "ms-ssim-rgb-db"]
    assert out["ms-ssim-rgb-db"] == pytest.approx(M.ms_ssim_db(out["ms-ssim-rgb"]))


@pytest.mark.skipif(importlib.util.find_spec("ssimulacra2") is None, reason="ssimulacra2 not installed")
def test_ssimulacra2_is_100_for_identical_and_lower_for_distorted() -> None:
    a = _image(64, 64)
    noisy = (a.astype(np.float64) + np.random.default_rng(2).normal(0, 20, a.shape)).clip(0, 255).astype(np.uint8)
    assert M.ssimulacra2(a, a) == pytest.approx(100.0)
    assert M.ssimulacra2(a, noisy) < 90.0


def test_thumb_psnr_is_inf_for_identical_images_and_forgives_pixel_noise() -> None:
    a = _image(96, 128)
    noisy = (a.astype(np.float64) + np.random.default_rng(4).normal(0, 20, a.shape)).clip(0, 255).astype(np.uint8)
    assert M.thumb_psnr(a, a) == math.inf
    value = M.thumb_psnr(a, noisy)
    # Zero-mean noise averages out over 32×32 = 1024 pixels: the thumbnails barely differ.
    assert math.isfinite(value)
    assert value > M.psnr(a, noisy) + 20


def test_thumb_psnr_does_not_forgive_a_colour_cast() -> None:
    a = (_image(64, 64).astype(np.int16) * 3 // 4).astype(np.uint8)  # ≤ 191: room for the cast
    tinted = a.copy()
    tinted[..., 2] += 8  # blue up by 8 levels everywhere
    # A uniform cast survives the box filter whole: the same error as pixel PSNR sees.
    expected = 10 * math.log10(255.0**2 / (8**2 / 3))
    assert M.thumb_psnr(a, tinted) == pytest.approx(expected)
    assert M.psnr(a, tinted) == pytest.approx(expected)


def test_thumb_psnr_uses_whole_32_blocks_only() -> None:
    a = _image(70, 100)
    b = a.copy()
    b[64:, :] = 0  # outside the 2×3 whole blocks
    b[:, 96:] = 255
    assert M.thumb_psnr(a, b) == math.inf
    assert M.thumbnail(a).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="32"):
        M.thumb_psnr(_image(31, 100), _image(31, 100))


def test_niqe_is_no_reference_and_lower_is_better() -> None:
    a, b = _image(100, 120, 0), _image(100, 120, 1)
    out = M.compute(a, b, ["niqe"])
    assert out["niqe"] == M.compute(b, b, ["niqe"])["niqe"]  # the reference plays no part
    assert math.isfinite(out["niqe"])
    assert M.higher_is_better("niqe") is False and M.higher_is_better("thumb-psnr") is True
    assert M.needs_reference("niqe") is False and M.needs_reference("thumb-psnr") is True
    assert M.label("niqe") == "NIQE (lower = more natural)"
    assert M.label("thumb-psnr") == "PSNR of 1/32 thumbnails"


def test_compute_gives_nan_where_an_image_is_too_small_for_a_metric() -> None:
    a, b = _image(64, 48, 0), _image(64, 48, 1)  # below NIQE's 96×96 block, above 32×32
    out = M.compute(a, b, ["psnr-rgb", "thumb-psnr", "niqe"])
    assert math.isfinite(out["psnr-rgb"]) and math.isfinite(out["thumb-psnr"])
    assert math.isnan(out["niqe"])
    assert math.isnan(M.compute(a[:20], b[:20], ["thumb-psnr"])["thumb-psnr"])


def test_default_metrics_lists_only_what_can_run_here() -> None:
    available = M.default_metrics()
    assert available[:4] == ["psnr-rgb", "ms-ssim-rgb", "thumb-psnr", "niqe"]
    for name, why in M.optional_metrics().items():
        assert (name in available) == (why == "")
