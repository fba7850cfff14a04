"""NIQE, the "completely blind" naturalness score (Mittal, Soundararajan, Bovik, IEEE SPL 2013).

No reference image: NIQE fits natural-scene statistics (MSCN coefficients and their neighbour
products, modelled as asymmetric generalized Gaussians) on 96×96 blocks of the image's luma at
two scales, and measures the distance of their mean and covariance to a model fitted on pristine
photographs. Lower is more natural; blur, blocking and smeared texture raise it.

This follows the official MATLAB release step by step (luma of MATLAB's `rgb2ycbcr`, rounded;
blocks without overlap or border crop; MATLAB's bicubic `imresize` with antialiasing for the
half scale) so that its numbers can be quoted next to published ones. The pristine model is the
release's own (`niqe_pris_params.npz`, see NIQE_PARAMS.md).
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources

import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma

BLOCK = 96  # block side at full scale, as in the release
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical and both diagonal neighbours
FEATURES_PER_SCALE = 2 + 4 * len(_SHIFTS)


@cache
def pristine_model() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu 36, cov 36×36, 7×7 Gaussian window) of the official pristine model, read once."""
    with resources.files("neurcodec.bench").joinpath("niqe_pris_params.npz").open("rb") as f:
        with np.load(f) as params:
            mu = params["mu_pris_param"].reshape(-1).astype(np.float64)
            cov = params["cov_pris_param"].astype(np.float64)
            window = params["gaussian_window"].astype(np.float64)
    return mu, cov, window


def matlab_luma(rgb: np.ndarray) -> np.ndarray:
    """Y of MATLAB's `rgb2ycbcr` for 8-bit RGB (16..235), rounded as MATLAB's uint8 output is."""
    rgb = rgb.astype(np.float64)
    y = 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
    # MATLAB rounds halves away from zero (np.round would go to even); Y is positive.
    return np.floor(y + 0.5)


# --- MATLAB imresize (bicubic, antialiased) ---------------------------------------------------
def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = −0.5, the one MATLAB's "bicubic" uses."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def _resize_weights(in_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's `contributions` for one dimension: 0-based source indices and weights, out_len×P.

    Downscaling stretches the kernel by 1/scale (antialiasing), so each output sample averages
    over the input it covers instead of aliasing it.
    """
    out_len = math.ceil(in_len * scale)
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # 1-based, as in MATLAB
    dist = u[:, None] - indices
    weights = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    # Out-of-range taps reflect symmetrically (the edge sample repeats), MATLAB's padding.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    zero_based = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    used = np.any(weights != 0, axis=0)  # MATLAB drops taps no output sample uses
    return zero_based[:, used], weights[:, used]


def _resize_dim0(img: np.ndarray, scale: float) -> np.ndarray:
    indices, weights = _resize_weights(img.shape[0], scale)
    out = np.zeros((indices.shape[0], *img.shape[1:]), dtype=np.float64)
    # One pass per tap keeps memory at one output image (a gathered out×P×W array would not).
    for k in range(indices.shape[1]):
        out += weights[:, k, None] * img[indices[:, k]]
    return out


def imresize_matlab(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize(img, scale)` (bicubic, antialiasing on) of a 2-D float image, unclipped.

    Rows first, then columns: MATLAB resizes the dimension with the smaller scale first, and the
    scales are equal here.
    """
    return _resize_dim0(_resize_dim0(img, scale).T, scale).T


# --- natural-scene statistics -----------------------------------------------------------------
@cache
def _aggd_table() -> tuple[np.ndarray, np.ndarray]:
    """Candidate shapes 0.2..10 (step 0.001) and their ratio E|x|²/E[x²], searched by every fit."""
    shapes = np.arange(0.2, 10.001, 0.001)
    ratio = gamma(2.0 / shapes) ** 2 / (gamma(1.0 / shapes) * gamma(3.0 / shapes))
    return shapes, ratio


def _root_mean_square(x: np.ndarray) -> float:
    return math.sqrt(float(np.mean(x**2))) if x.size else math.nan


def fit_aggd(x: np.ndarray) -> tuple[float, float, float]:
    """Moment-matching fit of an asymmetric generalized Gaussian: (shape, left scale, right scale).

    NaN everywhere when a side has no samples (a flat block): such blocks are left out later.
    """
    x = x.reshape(-1)
    left_std = _root_mean_square(x[x < 0])
    right_std = _root_mean_square(x[x > 0])
    mean_sq = float(np.mean(x**2))
    if not (left_std > 0 and right_std > 0 and mean_sq > 0):
        return math.nan, math.nan, math.nan
    gammahat = left_std / right_std
    rhat = float(np.mean(np.abs(x))) ** 2 / mean_sq
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    shapes, ratio = _aggd_table()
    alpha = float(shapes[np.argmin((ratio - rhatnorm) ** 2)])
    spread = math.sqrt(gamma(1.0 / alpha) / gamma(3.0 / alpha))
    return alpha, left_std * spread, right_std * spread


def block_features(block: np.ndarray) -> list[float]:
    """The 18 features of one block of MSCN coefficients: its own AGGD and its 4 neighbour products'."""
    alpha, bl, br = fit_aggd(block)
    feats = [alpha, (bl + br) / 2.0]
    for shift in _SHIFTS:
        alpha, bl, br = fit_aggd(block * np.roll(block, shift, axis=(0, 1)))
        mean = (br - bl) * gamma(2.0 / alpha) / gamma(1.0 / alpha)  # NaN for a flat block, like the rest
        feats += [alpha, mean, bl, br]
    return feats


def _mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted, contrast-normalised coefficients (local Gaussian statistics)."""
    mu = convolve(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(img * img, window, mode="nearest") - mu * mu))
    return (img - mu) / (sigma + 1.0)


def _scale_features(img: np.ndarray, window: np.ndarray, side: int) -> np.ndarray:
    """blocks × 18 features, blocks in the release's order (column of blocks outer, row inner)."""
    mscn = _mscn(img, window)
    rows, cols = img.shape[0] // side, img.shape[1] // side
    return np.array(
        [
            block_features(mscn[h * side : (h + 1) * side, w * side : (w + 1) * side])
            for w in range(cols)
            for h in range(rows)
        ],
        dtype=np.float64,
    )


def niqe_features(luma: np.ndarray) -> np.ndarray:
    """blocks × 36: each 96×96 block's features at full and half scale (partial blocks dropped)."""
    rows, cols = luma.shape[0] // BLOCK, luma.shape[1] // BLOCK
    if rows == 0 or cols == 0:
        raise ValueError(f"NIQE needs at least one {BLOCK}×{BLOCK} block; image is {luma.shape[1]}×{luma.shape[0]}")
    _, _, window = pristine_model()
    img = luma[: rows * BLOCK, : cols * BLOCK].astype(np.float64)
    full = _scale_features(img, window, BLOCK)
    half = imresize_matlab(img / 255.0, 0.5) * 255.0
    return np.concatenate([full, _scale_features(half, window, BLOCK // 2)], axis=1)


def niqe_distance(features: np.ndarray) -> float:
    """Mahalanobis-like distance between the image's feature model and the pristine one.

    Blocks with an undefined feature (flat areas) are left out; NaN when none is left.
    """
    mu_pris, cov_pris, _ = pristine_model()
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) == 0:
        return math.nan
    mu = np.nanmean(features, axis=0)
    # One block: no spread to estimate; MATLAB's cov gives zeros there, numpy's would give NaN.
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_pris)
    d = mu_pris - mu
    return float(math.sqrt(max(float(d @ np.linalg.pinv((cov_pris + cov) / 2.0) @ d), 0.0)))


def niqe(rgb: np.ndarray) -> float:
    """NIQE of an H×W×3 8-bit RGB image (lower = more natural); both sides must be ≥ 96 px."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"NIQE expects an H×W×3 RGB array, got shape {rgb.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return niqe_distance(niqe_features(matlab_luma(rgb)))
