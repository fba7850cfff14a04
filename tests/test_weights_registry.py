"""The registry as data: weights.json, family specs, building modules without weights."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch

from neurcodec import zoo
from neurcodec.bitstream import DecodeSettings
from neurcodec.errors import WeightsError
from neurcodec.models.configs import STAGE_A_SMALL_FIXTURE

REPO_ROOT = Path(__file__).resolve().parents[1]

OFFICIAL_PARAMS = {
    "stage_a": 18_406_894,
    "encoder": 20_197_968,
    "stage_b_lite": 699_471_248,
    "stage_b_full": 1_562_941_136,
}


def test_a_checkout_reads_the_one_registry_file_at_the_top_level():
    assert zoo.registry_path() == REPO_ROOT / "weights.json"
    registries = [p for p in REPO_ROOT.joinpath("src").rglob("*.json") if "families" in p.read_text()]
    assert registries == [], "weights.json is the only registry; the wheel gets its copy at build time"


def test_the_registry_names_the_official_architectures_instead_of_repeating_them():
    data = json.loads((REPO_ROOT / "weights.json").read_text())
    for name in ("stable-cascade-lite", "stable-cascade"):
        assert all(isinstance(c["config"], str) for c in data["families"][name]["components"].values())
    assert all("training" not in fam for fam in data["families"].values())


def test_families_and_their_files():
    families = {f.name: f for f in zoo.list_families()}
    assert list(families) == ["tiny2", "tiny", "stable-cascade-lite", "stable-cascade"]
    assert zoo.default_family() == "tiny2"
    assert families["tiny2"].bundled and families["tiny"].bundled  # tiny stays: its files still decode
    assert families["tiny2"].components["stage_a"].config["kind"] == "taesd"
    assert "TAEF2" in families["tiny2"].licence_note

    lite, full = families["stable-cascade-lite"], families["stable-cascade"]
    for spec, stage_b_file in ((lite, "stage_b_lite_bf16.safetensors"), (full, "stage_b_bf16.safetensors")):
        assert not spec.bundled
        names = {f.filename for f in spec.files.values()}
        assert names == {"stage_a.safetensors", "effnet_encoder.safetensors", stage_b_file}
        assert {f.repo for f in spec.files.values()} == {"stabilityai/stable-cascade"}
        assert all(f.revision for f in spec.files.values())
        assert "Non-Commercial" in spec.licence
        assert spec.clip.dim == 1280 and spec.clip.repo == "stabilityai/stable-cascade"
        assert spec.decode == DecodeSettings("ddpm", 10, 1.1, 0.7) and spec.effnet_factor == 0.75
    # Training facts of the bundled models are recorded by training (in the registry's sidecar).
    history = json.loads((REPO_ROOT / "docs" / "training.json").read_text())
    for name in ("tiny2", "tiny"):
        assert set(history[name]) >= {"command", "data", "steps", "wall_time_s"}


def test_unknown_family_is_a_weights_error():
    with pytest.raises(WeightsError, match="unknown model 'nope'.*stable-cascade-lite"):
        zoo.get_family("nope")


def test_malformed_registry_entry_is_refused(tmp_path):
    data = json.loads((REPO_ROOT / "weights.json").read_text())
    data["families"]["tiny"]["components"]["stage_b"]["config"]["kind"] = "stage_a"
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="stage_b config must have kind 'stage_b'"):
        zoo.load_registry(path)
    data = json.loads((REPO_ROOT / "weights.json").read_text())
    data["families"]["stable-cascade"]["components"]["stage_b"]["config"] = "stage_b_huge"
    path.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="unknown architecture 'stage_b_huge'"):
        zoo.load_registry(path)


def _module_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_official_families_build_on_meta_instantly_with_official_sizes():
    start = time.perf_counter()
    lite = zoo.load_models("stable-cascade-lite", device="meta", pretrained=False)
    full = zoo.load_models("stable-cascade", device="meta", pretrained=False)
    elapsed = time.perf_counter() - start
    assert _module_params(lite.stage_a) == OFFICIAL_PARAMS["stage_a"]
    assert _module_params(lite.encoder) == OFFICIAL_PARAMS["encoder"]
    assert _module_params(lite.stage_b) == OFFICIAL_PARAMS["stage_b_lite"]
    assert _module_params(full.stage_b) == OFFICIAL_PARAMS["stage_b_full"]
    assert all(p.is_meta for p in full.stage_b.parameters())
    assert not full.stage_b.training and not full.encoder.training
    assert full.clip_uncond.shape == (1, 1, 1280)
    # Generous bound: on meta nothing is allocated; a real 1.5 B init takes minutes on CPU.
    assert elapsed < 30


def test_family_state_dicts_match_the_manifests(reference_dir):
    spec = zoo.get_family("stable-cascade-lite")
    built = zoo.load_models(spec, device="meta", pretrained=False)
    for module, manifest in (
        (built.stage_a, "manifest_stage_a.json"),
        (built.encoder, "manifest_effnet_encoder.json"),
        (built.stage_b, "manifest_stage_b_lite.json"),
    ):
        entries = json.loads((reference_dir / manifest).read_text())["keys"]
        want = {e["key"]: (e["shape"], e["dtype"]) for e in entries}
        got = {k: (list(t.shape), str(t.dtype).removeprefix("torch.")) for k, t in module.state_dict().items()}
        assert got == want, manifest


def test_parameter_count_and_size_estimate():
    spec = zoo.get_family("stable-cascade-lite")
    assert zoo.parameter_count(spec) == (
        OFFICIAL_PARAMS["stage_a"] + OFFICIAL_PARAMS["encoder"] + OFFICIAL_PARAMS["stage_b_lite"]
    )
    size, exact = zoo.file_sizes(spec)
    # Nothing cached and no sizes recorded: an estimate from parameters and file dtypes
    # (fp32 stage A and effnet, bf16 stage B), buffers included.
    assert not exact
    assert 2 * OFFICIAL_PARAMS["stage_b_lite"] < size < 2 * OFFICIAL_PARAMS["stage_b_lite"] + 4 * 40_000_000


def test_digest_is_short_stable_and_tracks_configs():
    tiny = zoo.get_family("tiny")
    assert len(zoo.weights_digest(tiny)) == 4
    assert zoo.weights_digest(tiny) == zoo.weights_digest("tiny")
    assert zoo.weights_digest("stable-cascade") != zoo.weights_digest("stable-cascade-lite")
    changed = dataclasses.replace(
        tiny,
        components={
            **tiny.components,
            "stage_a": dataclasses.replace(tiny.components["stage_a"], config=STAGE_A_SMALL_FIXTURE.to_dict()),
        },
    )
    assert zoo.weights_digest(changed) != zoo.weights_digest(tiny)


def test_missing_bundled_model_says_how_to_get_one(tmp_path):
    tiny = zoo.get_family("tiny")
    absent = dataclasses.replace(
        tiny, files={"bundle": dataclasses.replace(tiny.files["bundle"], path=str(tmp_path / "none.safetensors"))}
    )
    assert zoo.where(absent) == "missing"
    with pytest.raises(WeightsError, match=r"not in this build.*neurcodec train.*neurcodec pull"):
        zoo.load_models(absent)
    with pytest.raises(WeightsError, match="not in this build"):
        zoo.pull(absent, progress=False)


def test_the_default_model_loads_or_says_it_is_not_in_this_build():
    default = zoo.default_family()
    if zoo.where(default) == "bundled":
        loaded = zoo.load_models()
        assert loaded.family.name == default and not loaded.stage_b.training
        assert loaded.clip_uncond.shape == (1, 1, loaded.family.clip.dim)
    else:
        with pytest.raises(WeightsError, match="not in this build"):
            zoo.load_models()


def test_a_wheel_carries_the_registry_as_package_data(tmp_path):
    """A non-editable install has no checkout to read weights.json from: the wheel holds a copy."""
    import subprocess
    import sys
    import zipfile

    if not (REPO_ROOT / "setup.py").is_file():
        pytest.skip("needs the source tree")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("neurcodec-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("neurcodec/zoo/weights.json") == (REPO_ROOT / "weights.json").read_bytes()
        assert "neurcodec/weights/tiny2.safetensors" in zf.namelist()
