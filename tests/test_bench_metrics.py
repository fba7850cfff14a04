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


def test_default_metrics_lists_only_what_can_run_here() -> None:
    available = M.default_metrics()
    assert available[:2] == ["psnr-rgb", "ms-ssim-rgb"]
    for name, why in M.optional_metrics().items():
        assert (name in available) == (why == "")
