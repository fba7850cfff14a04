"""Image quality metrics on 8-bit RGB, the way published codec tables compute them.

PSNR and MS-SSIM follow CompressAI's bench (data range 255, RGB). Thumbnail PSNR scores
what survives a 1/32 box downscale (colour and low frequencies, which generative decoders may
shift while inventing plausible detail); NIQE scores the decoded image alone (naturalness, no
reference). Optional metrics run only when their package (and, for learned metrics, their
weights) is already on this machine: nothing is ever downloaded from here.
"""

from __future__ import annotations

import io
import importlib.util
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from neurcodec.bench import perceptual
from neurcodec.bench.niqe import BLOCK as NIQE_BLOCK
from neurcodec.bench.niqe import niqe

# pytorch-msssim asserts min side > (win - 1) * 16 for its 5 scales.
_MSSSIM_SCALES = 4  # downsamplings


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """H×W×3 uint8 (alpha and palettes dropped the way Pillow's convert does)."""
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")


def psnr(ref: np.ndarray, dist: np.ndarray) -> float:
    """PSNR in dB over all RGB samples; `inf` for identical images."""
    _check_pair(ref, dist)
    mse = float(np.mean((ref.astype(np.float64) - dist.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


THUMB_BLOCK = 32  # thumbnail = mean of each 32×32 block


def thumbnail(rgb: np.ndarray, block: int = THUMB_BLOCK) -> np.ndarray:
    """Box-filtered 1/`block` thumbnail (float64): the mean of each whole block, per channel.

    Partial blocks at the right and bottom edges are dropped rather than padded, so every
    thumbnail sample averages the same number of pixels.
    """
    h, w = rgb.shape[0] // block, rgb.shape[1] // block
    if h == 0 or w == 0:
        raise ValueError(f"thumbnail needs a side of at least {block} px; image is {rgb.shape[1]}×{rgb.shape[0]}")
    blocks = rgb[: h * block, : w * block].astype(np.float64).reshape(h, block, w, block, -1)
    return blocks.mean(axis=(1, 3))


def thumb_psnr(ref: np.ndarray, dist: np.ndarray) -> float:
    """PSNR (peak 255) of the 1/32 thumbnails: colour and low-frequency fidelity; `inf` if equal.

    Pixel noise and invented texture largely average out inside a 32×32 block; a colour cast,
    a brightness shift or a misplaced edge does not.
    """
    _check_pair(ref, dist)
    mse = float(np.mean((thumbnail(ref) - thumbnail(dist)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def niqe_of_decoded(ref: np.ndarray, dist: np.ndarray) -> float:
    """NIQE of the decoded image; `ref` is ignored (NIQE needs no reference)."""
    return niqe(dist)


def msssim_window(height: int, width: int) -> int:
    """Gaussian window used for MS-SSIM at this size: 11 (standard) where the image allows.

    Fallback for small images: the largest odd window w ≤ 11 with min side > (w−1)·16,
    so all five scales still exist. 0 means even w=3 does not fit (side ≤ 32): then
    single-scale SSIM is used instead (see `ms_ssim`).
    """
    side = min(height, width)
    for win in (11, 9, 7, 5, 3):
        if side > (win - 1) * 2**_MSSSIM_SCALES:
            return win
    return 0


def ms_ssim(ref: np.ndarray, dist: np.ndarray) -> float:
    """MS-SSIM (pytorch-msssim, data range 255, RGB).

    Images with a side ≤ 160 px get a smaller window (`msssim_window`); images with a side
    ≤ 32 px get single-scale SSIM with a 3-px window. Standard Kodak-sized images are unaffected.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim
    from pytorch_msssim import ssim as _ssim

    _check_pair(ref, dist)
    x = torch.from_numpy(np.array(ref, dtype=np.float32)).permute(2, 0, 1)[None]
    y = torch.from_numpy(np.array(dist, dtype=np.float32)).permute(2, 0, 1)[None]
    win = msssim_window(ref.shape[0], ref.shape[1])
    with warnings.catch_warnings():
        # pytorch-msssim warns when a side is shorter than the window; that is the fallback's point.
        warnings.simplefilter("ignore")
        if win:
            value = _ms_ssim(x, y, data_range=255, win_size=win)
        else:
            value = _ssim(x, y, data_range=255, win_size=3)
    return float(value)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, −10·log10(1 − x) (CompressAI's plot convention); `inf` at 1."""
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


def _png(arr: np.ndarray) -> io.BytesIO:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=0)
    buf.seek(0)
    return buf


def ssimulacra2(ref: np.ndarray, dist: np.ndarray) -> float:
    """SSIMULACRA2 score (100 = identical) from the `ssimulacra2` package."""
    from ssimulacra2 import compute_ssimulacra2

    _check_pair(ref, dist)
    # The package's API takes files; in-memory PNGs avoid touching the disk.
    return float(compute_ssimulacra2(_png(ref), _png(dist)))


@dataclass(frozen=True)
class Metric:
    """A metric's name in results (CompressAI spelling), function and direction."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float] | None  # None: a set metric
    higher_is_better: bool = True
    label: str = ""
    short: str = ""  # table column heading
    min_side: int = 1  # smaller images have no value (NaN in `compute`)
    reference: bool = True  # False: a no-reference score of the decoded image alone


# Always computed. "ms-ssim-rgb-db" is derived from "ms-ssim-rgb" in `compute`.
CORE = ("psnr-rgb", "ms-ssim-rgb", "thumb-psnr", "niqe")


# Learned metrics run only when asked for (`--metrics`): their backbones must be in the torch
# hub cache (never downloaded here) and they cost more than the rest of a bench row.
LEARNED = ("lpips", "dists", "fid", "kid")


def optional_metrics() -> dict[str, str]:
    """Optional metrics computed by default where they can run: name → "" (available) or why not."""
    return {"ssimulacra2": "" if importlib.util.find_spec("ssimulacra2") else "package ssimulacra2 not installed (pip install ssimulacra2)"}


def unavailable(name: str) -> str:
    """Why the metric `name` cannot run here, "" when it can."""
    if name in LEARNED:
        return perceptual.unavailable(name)
    return optional_metrics().get(name, "")


METRICS: dict[str, Metric] = {
    "psnr-rgb": Metric("psnr-rgb", psnr, True, "PSNR-RGB [dB]", "PSNR"),
    "ms-ssim-rgb": Metric("ms-ssim-rgb", ms_ssim, True, "MS-SSIM", "MS-SSIM"),
    "thumb-psnr": Metric("thumb-psnr", thumb_psnr, True, "PSNR of 1/32 thumbnails", "thumb PSNR",
                         min_side=THUMB_BLOCK),
    "niqe": Metric("niqe", niqe_of_decoded, False, "NIQE (lower = more natural)", "NIQE",
                   min_side=NIQE_BLOCK, reference=False),
    "ssimulacra2": Metric("ssimulacra2", ssimulacra2, True, "SSIMULACRA2", "SSIMU2"),
    "lpips": Metric("lpips", perceptual.lpips, False, "LPIPS (AlexNet)", "LPIPS"),
    "dists": Metric("dists", perceptual.dists, False, "DISTS", "DISTS"),
    "fid": Metric("fid", None, False, f"FID ({perceptual.PATCH}² patches)", "FID"),
    "kid": Metric("kid", None, False, f"KID ({perceptual.PATCH}² patches)", "KID"),
}

DERIVED_LABELS = {"ms-ssim-rgb-db": "MS-SSIM [dB]"}
DERIVED_SHORT = {"ms-ssim-rgb-db": "MS-SSIM dB"}


def default_metrics() -> list[str]:
    """Core metrics plus every optional one that can run here."""
    return list(CORE) + [name for name, why in optional_metrics().items() if not why]


def compute(ref: np.ndarray, dist: np.ndarray, names: list[str]) -> dict[str, float]:
    """The named per-image metrics for one image pair (set metrics are skipped); adds
    "ms-ssim-rgb-db" whenever MS-SSIM is asked.

    A metric undefined at this size (NIQE below one 96×96 block, thumbnail PSNR below one
    32×32 block) is NaN, so one small image in a folder does not stop a whole bench run.
    """
    out: dict[str, float] = {}
    for name in names:
        metric = METRICS[name]
        if metric.fn is None:
            continue
        too_small = min(dist.shape[:2]) < metric.min_side
        out[name] = math.nan if too_small else metric.fn(ref, dist)
        if name == "ms-ssim-rgb":
            out["ms-ssim-rgb-db"] = ms_ssim_db(out[name])
    return out


def per_set(name: str) -> bool:
    """FID, KID: one value per decoded set (from `perceptual.patch_features` of every decode)."""
    return name in METRICS and METRICS[name].fn is None


def higher_is_better(name: str) -> bool:
    return METRICS[name].higher_is_better if name in METRICS else True


def needs_reference(name: str) -> bool:
    """False for no-reference scores (NIQE): they rate the decode alone, not its fidelity."""
    return METRICS[name].reference if name in METRICS else True


def short_label(name: str) -> str:
    if name in METRICS:
        return METRICS[name].short or name
    return DERIVED_SHORT.get(name, name)


def label(name: str) -> str:
    if name in METRICS:
        return METRICS[name].label or name
    return DERIVED_LABELS.get(name, name)
