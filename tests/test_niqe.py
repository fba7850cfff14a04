"""NIQE: the MATLAB release's value on its reference image, and how it ranks distortions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from neurcodec.bench import niqe as N

# The project's shared folder sits beside the repository; the package never reads it itself.
NIQE_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "niqe"

# Official MATLAB code (R2021a) on BasicSR's test_scripts/data/baboon.png (see NOTES.md there).
MATLAB_BABOON = 5.72957338


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A synthetic "photo": smooth shading, edges at several orientations and fine grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    shading = 60 + 80 * (x / w) + 40 * np.sin(y / 23.0)
    stripes = 35 * np.sign(np.sin((x + 0.6 * y) / 9.0)) + 25 * np.sin((x - 1.7 * y) / 5.0)
    grain = gaussian_filter(rng.normal(0, 40, (h, w)), 0.8)
    luma = shading + stripes + grain
    rgb = np.stack([luma * 1.05, luma, luma * 0.9 + 10], axis=-1)
    return rgb.clip(0, 255).round().astype(np.uint8)


def test_baboon_matches_the_matlab_release() -> None:
    path = NIQE_REFERENCE / "baboon.png"
    if not path.is_file():
        pytest.skip(f"needs the NIQE reference image at {path} (the shared folder beside the repository)")
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert N.niqe(rgb) == pytest.approx(MATLAB_BABOON, abs=1e-3)


def test_blur_scores_less_natural_than_the_sharp_original() -> None:
    sharp = _textured(288, 384)
    blurred = gaussian_filter(sharp.astype(np.float64), sigma=(2.5, 2.5, 0)).round().astype(np.uint8)
    assert math.isfinite(N.niqe(sharp))
    assert N.niqe(blurred) > N.niqe(sharp) + 1.0


@pytest.mark.parametrize("size", [(95, 200), (200, 95), (40, 40)])
def test_images_smaller_than_one_block_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="96×96"):
        N.niqe(_textured(*size))


def test_one_block_is_enough() -> None:
    # One block has no feature spread of its own; the pristine covariance alone is used (as MATLAB).
    assert math.isfinite(N.niqe(_textured(96, 96)))


def test_partial_blocks_at_the_edges_are_ignored() -> None:
    img = _textured(200, 300)
    assert N.niqe(img) == N.niqe(img[:192, :288].copy())


def test_a_flat_image_has_no_score() -> None:
    assert math.isnan(N.niqe(np.full((192, 192, 3), 128, dtype=np.uint8)))


def test_luma_is_matlabs_rgb2ycbcr_rounded() -> None:
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30]]], dtype=np.uint8)
    # MATLAB: rgb2ycbcr(uint8([0 0 0; 255 255 255; 255 0 0; 10 200 30])) → Y = 16, 235, 81, 122
    assert N.matlab_luma(rgb).tolist() == [[16.0, 235.0, 81.0, 122.0]]


def test_half_scale_resize_matches_matlab_on_a_ramp_and_keeps_constants() -> None:
    # A linear ramp stays linear away from the borders (the cubic kernel reproduces lines), and
    # MATLAB's output sample i sits at input position 2i − 0.5 (1-based).
    ramp = np.tile(np.arange(1.0, 33.0)[:, None], (1, 8))
    half = N.imresize_matlab(ramp, 0.5)
    assert half.shape == (16, 4)
    assert half[4:12, 0] == pytest.approx(2 * np.arange(5, 13) - 0.5)
    assert N.imresize_matlab(np.full((13, 7), 3.0), 0.5) == pytest.approx(np.full((7, 4), 3.0))
