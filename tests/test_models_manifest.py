"""Official-size modules built on the meta device match the checkpoint manifests exactly."""

from __future__ import annotations

import json

import pytest
import torch

from neurcodec.models import configs as C

OFFICIAL = [
    ("manifest_stage_a.json", C.STAGE_A_OFFICIAL, 18_406_894),
    ("manifest_effnet_encoder.json", C.EFFNET_OFFICIAL, 20_197_968),
    ("manifest_stage_b_lite.json", C.STAGE_B_LITE, 699_471_248),
    ("manifest_stage_b.json", C.STAGE_B_FULL, 1_562_941_136),
]


@pytest.mark.parametrize(("manifest", "config", "n_params"), OFFICIAL, ids=[m for m, _, _ in OFFICIAL])
def test_meta_build_matches_manifest(reference_dir, manifest, config, n_params):
    with torch.device("meta"):
        model = config.build()
    assert all(t.is_meta for t in model.state_dict().values())
    assert sum(p.numel() for p in model.parameters()) == n_params

    data = json.loads((reference_dir / manifest).read_text())
    want = {e["key"]: (tuple(e["shape"]), e["dtype"]) for e in data["keys"]}
    got = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()}
    assert sorted(set(want) - set(got)) == []
    assert sorted(set(got) - set(want)) == []
    assert [k for k in want if got[k] != want[k]] == []
    assert data["num_parameters"] == n_params


def test_manifest_config_is_the_named_config(reference_dir):
    """The configs recorded in the manifests are exactly our named official configs."""
    for manifest, config, _ in OFFICIAL[:1] + OFFICIAL[2:]:
        recorded = json.loads((reference_dir / manifest).read_text())["config"]
        assert type(config).from_dict(recorded) == config, manifest


def test_constructors_take_reference_keyword_names():
    with torch.device("meta"):
        model = C.StageBConfig().model(
            c_hidden=[320, 576, 1152, 1152],
            nhead=[-1, 9, 18, 18],
            blocks=[[2, 4, 14, 4], [4, 14, 4, 2]],
            block_repeat=[[1, 1, 1, 1], [2, 2, 2, 2]],
        )
    assert sum(p.numel() for p in model.parameters()) == 699_471_248


def test_configs_round_trip_through_json():
    for name, config in C.NAMED_CONFIGS.items():
        restored = C.config_from_dict(json.loads(json.dumps(config.to_dict())))
        assert restored == config, name
        assert hash(restored) == hash(config)
    with pytest.raises(ValueError, match="unknown kind"):
        C.config_from_dict({"kind": "stage_z"})


def test_small_fixture_config_matches_fixture_metadata(fixtures_dir):
    from safetensors import safe_open

    with safe_open(str(fixtures_dir / "stage_b_small_weights.safetensors"), "pt") as f:
        recorded = json.loads(f.metadata()["config"])
    assert C.StageBConfig.from_dict(recorded) == C.STAGE_B_SMALL_FIXTURE
