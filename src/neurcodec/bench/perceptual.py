"""Learned perceptual metrics: LPIPS and DISTS per image (torchmetrics), FID and KID over the
256×256 patches of a decoded set (torch-fidelity's Inception-v3, the protocol of HiFiC-style
generative-codec papers).

Their networks come from those packages; the backbone weights are read from the torch hub cache
(`$TORCH_HOME/hub/checkpoints`, where torchvision and torch-fidelity put what they download)
and only when already there: this module checks for the file before anything would fetch it,
so a bench never touches the network. What is missing is named, with where to put it.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurcodec.errors import UsageError, WeightsError

PATCH = 256  # FID/KID patch side: each image is cut into non-overlapping 256×256 patches
FEATURE_DIM = 2048  # Inception-v3 pool features
KID_SUBSETS = 100


@dataclass(frozen=True)
class Backbone:
    file: str  # the name torch.hub caches it under
    url: str
    what: str


ALEXNET = Backbone("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                   "torchvision's ImageNet AlexNet")
VGG16 = Backbone("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                 "torchvision's ImageNet VGG16")
INCEPTION = Backbone("weights-inception-2015-12-05-6726825d.pth",
                     "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
                     "the FID Inception-v3 (torch-fidelity)")

BACKBONES = {"lpips": ALEXNET, "dists": VGG16, "fid": INCEPTION, "kid": INCEPTION}
PACKAGES = {"lpips": "torchmetrics", "dists": "torchmetrics", "fid": "torch_fidelity", "kid": "torch_fidelity"}


def cache_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(metric: str) -> Path:
    return cache_dir() / BACKBONES[metric].file


def unavailable(metric: str) -> str:
    """Why `metric` cannot run here ("" when it can): a missing package or backbone file."""
    package = PACKAGES[metric]
    if importlib.util.find_spec(package) is None:
        return f"needs the package {package.replace('_', '-')} (pip install 'neurcodec[metrics]')"
    if not weights_path(metric).is_file():
        backbone = BACKBONES[metric]
        return (f"needs {backbone.what} weights, not cached and never downloaded here: put {backbone.file} "
                f"(from {backbone.url}) in {cache_dir()} ($TORCH_HOME moves it)")
    return ""


def require(metrics: list[str]) -> None:
    """Refuse, in one line, learned metrics that cannot run here: a missing package is a usage
    problem (exit 2), missing backbone weights a weights problem (exit 7)."""
    for metric in metrics:
        why = unavailable(metric)
        if why.startswith("needs the package"):
            raise UsageError(f"metric {metric} {why}")
        if why:
            raise WeightsError(f"metric {metric} {why}")


# ------------------------------------------------------------------------- per image
_models: dict[str, object] = {}


def _require_cached(metric: str) -> None:
    """The packages fetch what is not cached (torchvision's `weights=DEFAULT`, torch-fidelity's
    URL): checking the file first means they only ever read the cache."""
    if not weights_path(metric).is_file():
        raise WeightsError(f"metric {metric} {unavailable(metric)}")


def _pair_tensors(ref: np.ndarray, dist: np.ndarray):  # noqa: ANN202
    import torch

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0

    return t(dist), t(ref)


def lpips(ref: np.ndarray, dist: np.ndarray) -> float:
    """LPIPS with the AlexNet backbone (the usual choice in compression papers); lower is better."""
    import torch

    if "lpips" not in _models:
        _require_cached("lpips")
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        _models["lpips"] = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).eval()
    model = _models["lpips"]
    with torch.inference_mode():
        return float(model(*_pair_tensors(ref, dist)))  # type: ignore[operator]


def dists(ref: np.ndarray, dist: np.ndarray) -> float:
    """DISTS (VGG16 structure and texture similarity); lower is better."""
    import torch

    if "dists" not in _models:
        _require_cached("dists")
        from torchmetrics.image.dists import DeepImageStructureAndTextureSimilarity

        _models["dists"] = DeepImageStructureAndTextureSimilarity().eval()
    model = _models["dists"]
    with torch.inference_mode():
        return float(model(*_pair_tensors(ref, dist)))  # type: ignore[operator]


# ------------------------------------------------------------------------- per set
def patches(rgb: np.ndarray, side: int = PATCH) -> np.ndarray:
    """Non-overlapping side×side patches (N×side×side×3); edges that do not fill one are dropped."""
    rows, cols = rgb.shape[0] // side, rgb.shape[1] // side
    if rows == 0 or cols == 0:
        return np.zeros((0, side, side, 3), dtype=np.uint8)
    grid = rgb[: rows * side, : cols * side].reshape(rows, side, cols, side, 3)
    return grid.transpose(0, 2, 1, 3, 4).reshape(rows * cols, side, side, 3)


def _inception():  # noqa: ANN202
    if "inception" not in _models:
        _require_cached("fid")
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        _models["inception"] = FeatureExtractorInceptionV3("inception-v3-compat", [str(FEATURE_DIM)],
                                                           feature_extractor_weights_path=str(weights_path("fid")))
    return _models["inception"]


def patch_features(rgb: np.ndarray, batch: int = 16) -> np.ndarray:
    """Inception-v3 pool features (N×2048, float64) of the image's 256×256 patches."""
    import torch

    cut = patches(rgb)
    if len(cut) == 0:
        return np.zeros((0, FEATURE_DIM))
    model = _inception()
    out = []
    with torch.inference_mode():
        for start in range(0, len(cut), batch):
            x = torch.from_numpy(np.ascontiguousarray(cut[start : start + batch])).permute(0, 3, 1, 2)
            out.append(model(x)[0].double().numpy())  # type: ignore[operator]
    return np.concatenate(out)


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet Inception Distance between two feature sets (torch-fidelity's statistics)."""
    import torch
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    if min(len(real), len(fake)) < 2:
        return math.nan
    stats = [fid_features_to_statistics(torch.from_numpy(f)) for f in (real, fake)]
    return float(fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"])


def kid(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """Kernel Inception Distance (mean over subsets of min(1000, N) patches), torch-fidelity's."""
    import torch
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = min(1000, len(real), len(fake))
    if size < 2:
        return math.nan
    out = kid_features_to_metric(torch.from_numpy(real), torch.from_numpy(fake), kid_subsets=KID_SUBSETS,
                                 kid_subset_size=size, rng_seed=seed, verbose=False)
    return float(out["kernel_inception_distance_mean"])


SET_FUNCTIONS = {"fid": fid, "kid": kid}
