"""Learned perceptual metrics in `neurcodec bench` (LPIPS, DISTS, FID, KID): their backbones are
read only from the torch hub cache. The weights here are stand-ins of the real shapes (every
tensor one constant), so these tests prove loading, shapes and plumbing, not metric values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neurcodec.bench import metrics as M
from neurcodec.bench import perceptual
from test_bench_cli import _run  # the same CLI runner as the other bench tests

pytest.importorskip("torchmetrics", reason="the metrics extra is not installed")
pytest.importorskip("torch_fidelity", reason="the metrics extra is not installed")


def _stand_in(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor of the real shape as one constant broadcast (a few bytes on disk), scaled so
    activations neither vanish nor overflow through the depth of the network."""
    out = {}
    for key, value in state.items():
        if value.dim() >= 2:  # conv / linear weights: average their inputs
            fill = 1.0 / value[0].numel()
        elif key.endswith(("running_var", "weight")):  # batch-norm scale
            fill = 1.0
        else:
            fill = 0.0 if value.dtype == torch.long or key.endswith("running_mean") else 0.01
        out[key] = torch.full((1,) * value.dim(), fill, dtype=value.dtype).expand(value.shape)
    return out


def _inception_shapes(tmp_path: Path) -> dict[str, torch.Tensor]:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # the shapes are all we want here
            return None

    empty = tmp_path / "empty.pth"
    torch.save({}, empty)
    with torch.device("meta"):
        return Unloaded("shapes", ["2048"], feature_extractor_weights_path=str(empty)).state_dict()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(perceptual, "_models", {})
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def stand_in_cache(empty_cache, tmp_path) -> Path:
    import torchvision

    empty_cache.mkdir(parents=True)
    with torch.device("meta"):
        alexnet, vgg16 = torchvision.models.alexnet().state_dict(), torchvision.models.vgg16().state_dict()
    torch.save(_stand_in(alexnet), empty_cache / perceptual.ALEXNET.file)
    torch.save(_stand_in(vgg16), empty_cache / perceptual.VGG16.file)
    torch.save(_stand_in(_inception_shapes(tmp_path)), empty_cache / perceptual.INCEPTION.file)
    return empty_cache


@pytest.fixture
def images(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        arr = np.linspace(0, 255, 512)[None, :, None] * np.ones((256, 1, 3)) + rng.normal(0, 20, (256, 512, 3))
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(d / f"im{i}.png")
    return d


def test_lpips_and_dists_load_their_backbones_from_the_cache(stand_in_cache) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    scores = M.compute(a, b, ["lpips", "dists"])
    assert set(scores) == {"lpips", "dists"} and all(math.isfinite(v) for v in scores.values())
    assert M.compute(a, a, ["lpips"])["lpips"] == pytest.approx(0.0, abs=1e-6)


def test_patches_are_the_whole_256_squares_of_an_image() -> None:
    rgb = np.arange(300 * 600 * 3, dtype=np.uint32).reshape(300, 600, 3).astype(np.uint8)
    cut = perceptual.patches(rgb)
    assert cut.shape == (2, 256, 256, 3)  # 300×600 holds 1×2 whole patches
    assert np.array_equal(cut[1], rgb[:256, 256:512])
    assert perceptual.patches(rgb[:200]).shape == (0, 256, 256, 3)


def test_bench_reports_fid_and_kid_per_setting_and_lpips_per_image(stand_in_cache, images, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    code = _run(["bench", str(images), "--no-neural", "--vs", "jpeg", "--anchor-quality", "jpeg=20,80",
                 "--metrics", "psnr-rgb,lpips,fid,kid", "--out", str(out)], monkeypatch)
    assert code == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["set_metrics"] == ["fid", "kid"]
    jpeg = next(c for c in doc["codecs"] if c["name"] == "jpeg")
    assert len(jpeg["results"]["fid"]) == len(jpeg["results"]["kid"]) == 2  # one per setting
    assert all(isinstance(v, float) for v in jpeg["results"]["fid"] + jpeg["results"]["kid"])
    assert all("lpips" in row and "fid" not in row for row in doc["per_image"])
    assert any("4 patches" in note for note in doc["notes"])  # 2 images × 2 patches: said to be few
    assert (out / "rd-fid.png").exists() or not _has_matplotlib()


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


@pytest.mark.parametrize("metric, file", [("lpips", perceptual.ALEXNET.file), ("dists", perceptual.VGG16.file),
                                          ("fid", perceptual.INCEPTION.file), ("kid", perceptual.INCEPTION.file)])
def test_missing_weights_are_one_line_naming_the_file_and_where_to_put_it(empty_cache, images, tmp_path, monkeypatch,
                                                                          capsys, metric, file) -> None:
    code = _run(["bench", str(images), "--no-neural", "--vs", "jpeg", "--metrics", f"psnr-rgb,{metric}",
                 "--out", str(tmp_path / "out")], monkeypatch)
    assert code == 7
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert file in err and str(empty_cache) in err
    assert not (tmp_path / "out" / "results.json").exists()  # refused before any work
