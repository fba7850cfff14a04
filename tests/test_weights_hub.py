"""Loading through the real registry path from a local Hub-style cache, offline.

Checkpoints are written in the official layout from the fixture weight recipe into
`$HF_HOME/hub/models--stabilityai--stable-cascade/snapshots/<commit>/` with `refs/main`, the
layout huggingface_hub itself uses, and the Stable Cascade registry entries are loaded from it.
Stage B uses the small fixture config (the official one would be gigabytes); stage A and the
EfficientNet encoder are written at official size, in fp32 and in bf16.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from _recipe import manifest_entries, recipe_state_dict
from neurcodec import zoo
from neurcodec.errors import WeightsError
from neurcodec.models.configs import STAGE_A_SMALL_FIXTURE, STAGE_B_SMALL_FIXTURE, EffNetConfig

SMALL_EFFNET = EffNetConfig(width_mult=0.5, depth_mult=0.25, last_channel=320, stochastic_depth_prob=0.0)

REPO = "stabilityai/stable-cascade"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CLIP_DIM = STAGE_B_SMALL_FIXTURE.c_clip


# ---------------------------------------------------------------------------- fake Hub cache


@pytest.fixture
def hf_home(tmp_path, monkeypatch) -> Path:
    """An empty, private HF_HOME for one test (the registry reads it at call time)."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def snapshot_dir(home: Path) -> Path:
    repo_dir = home / "hub" / ("models--" + REPO.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snap = repo_dir / "snapshots" / COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def with_components(spec: zoo.FamilySpec, clip_dim: int | None = None, **configs) -> zoo.FamilySpec:
    """A registry entry with some module configs swapped for small ones (same files, same repo)."""
    comps = {
        name: dataclasses.replace(c, config=configs[name].to_dict()) if name in configs else c
        for name, c in spec.components.items()
    }
    clip = dataclasses.replace(spec.clip, dim=clip_dim) if clip_dim else spec.clip
    return dataclasses.replace(spec, components=comps, clip=clip)


def small_spec() -> zoo.FamilySpec:
    """stable-cascade-lite's files and repo, with small module configs: fast to write and load."""
    return with_components(
        zoo.get_family("stable-cascade-lite"),
        clip_dim=CLIP_DIM,
        stage_a=STAGE_A_SMALL_FIXTURE,
        encoder=SMALL_EFFNET,
        stage_b=STAGE_B_SMALL_FIXTURE,
    )


def recipe_for(spec: zoo.FamilySpec, component: str) -> dict[str, torch.Tensor]:
    module = zoo.build_component(spec.components[component], "meta")
    return recipe_state_dict(module.state_dict())


def write_checkpoints(home: Path, spec: zoo.FamilySpec, states: dict[str, dict[str, torch.Tensor]]) -> Path:
    """Write each component's state dict to its registry filename in the fake snapshot."""
    snap = snapshot_dir(home)
    for name, state in states.items():
        file = spec.files[spec.components[name].file]
        save_file({k: v.contiguous() for k, v in state.items()}, str(snap / file.filename))
    return snap


def write_small_family(home: Path, dtype: torch.dtype = torch.float32) -> tuple[zoo.FamilySpec, dict]:
    spec = small_spec()
    states = {name: recipe_for(spec, name) for name in zoo.COMPONENTS}
    write_checkpoints(home, spec, {n: _cast(s, dtype) for n, s in states.items()})
    return spec, states


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def write_clip_vector(home: Path, spec: zoo.FamilySpec, vector: torch.Tensor) -> None:
    """What `pull` leaves behind, for tests that are not about computing it."""
    path = zoo.clip_cache_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"clip_uncond": vector}, str(path), metadata={"repo": spec.clip.repo, "revision": spec.clip.revision})


# ---------------------------------------------------------------------------- official layout


@pytest.fixture(scope="module")
def official_states(reference_dir) -> dict[str, dict[str, torch.Tensor]]:
    """Recipe tensors for the official stage A and EfficientNet key sets (from the manifests)."""
    return {
        "stage_a": recipe_state_dict(manifest_entries(reference_dir / "manifest_stage_a.json")),
        "encoder": recipe_state_dict(manifest_entries(reference_dir / "manifest_effnet_encoder.json")),
    }


@pytest.mark.parametrize("file_dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_official_layout_loads_from_the_hub_cache_offline(hf_home, official_states, file_dtype):
    spec = with_components(zoo.get_family("stable-cascade-lite"), clip_dim=CLIP_DIM, stage_b=STAGE_B_SMALL_FIXTURE)
    states = {**official_states, "stage_b": recipe_for(spec, "stage_b")}
    assert zoo.where(spec) == "remote"
    write_checkpoints(hf_home, spec, {n: _cast(s, file_dtype) for n, s in states.items()})
    assert zoo.where(spec) == "cached"
    clip = torch.randn(CLIP_DIM)
    write_clip_vector(hf_home, spec, clip)

    loaded = zoo.load_models(spec)

    for name in zoo.COMPONENTS:
        module = getattr(loaded, name)
        assert not module.training
        got = module.state_dict()
        assert set(got) == set(states[name])
        for key, want in states[name].items():
            if want.is_floating_point():
                assert got[key].dtype == torch.float32, key  # bf16 files load into float32
                want = want.to(file_dtype).float()
            assert torch.equal(got[key], want), key
    assert loaded.clip_uncond.shape == (1, 1, CLIP_DIM)
    torch.testing.assert_close(loaded.clip_uncond.flatten(), clip)
    assert loaded.digest == zoo.weights_digest(spec)


def test_requested_dtype_is_applied(hf_home):
    spec, states = write_small_family(hf_home, torch.float32)
    write_clip_vector(hf_home, spec, torch.ones(CLIP_DIM))
    loaded = zoo.load_models(spec, dtype=torch.bfloat16)
    params = list(loaded.stage_b.parameters())
    assert all(p.dtype == torch.bfloat16 for p in params)
    assert loaded.clip_uncond.dtype == torch.bfloat16
    key = "embedding.1.weight"
    torch.testing.assert_close(loaded.stage_b.state_dict()[key], states["stage_b"][key].bfloat16())


def test_missing_num_batches_tracked_is_tolerated(hf_home):
    spec, states = write_small_family(hf_home)
    dropped = {k: v for k, v in states["stage_a"].items() if not k.endswith("num_batches_tracked")}
    assert len(dropped) < len(states["stage_a"])
    write_checkpoints(hf_home, spec, {"stage_a": dropped})
    write_clip_vector(hf_home, spec, torch.ones(CLIP_DIM))
    loaded = zoo.load_models(spec)
    counters = [v for k, v in loaded.stage_a.state_dict().items() if k.endswith("num_batches_tracked")]
    assert counters and all(int(c) == 0 for c in counters)


# ---------------------------------------------------------------------------- refusals


def _load_error(spec) -> str:
    with pytest.raises(WeightsError) as info:
        zoo.load_models(spec, allow_zero_clip=True)
    return str(info.value)


def test_truncated_file_names_file_and_key(hf_home):
    spec, states = write_small_family(hf_home)
    path = snapshot_dir(hf_home) / "stage_a.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    message = _load_error(spec)
    assert "stage_a.safetensors" in message and "truncated" in message
    named = [k for k in states["stage_a"] if f"'{k}'" in message]
    assert len(named) == 1, message


def test_wrong_shape_names_file_key_and_shapes(hf_home):
    spec, states = write_small_family(hf_home)
    bad = dict(states["stage_b"])
    key = "clip_mapper.weight"
    bad[key] = torch.zeros(bad[key].shape[0], bad[key].shape[1] + 1)
    write_checkpoints(hf_home, spec, {"stage_b": bad})
    message = _load_error(spec)
    assert "stage_b_lite_bf16.safetensors" in message and f"'{key}'" in message
    assert str(list(bad[key].shape)) in message and str(list(states["stage_b"][key].shape)) in message


@pytest.mark.parametrize("change", ["missing", "unexpected"])
def test_missing_or_unexpected_key_is_refused(hf_home, change):
    spec, states = write_small_family(hf_home)
    state = dict(states["encoder"])
    if change == "missing":
        key = "mapper.0.weight"
        del state[key]
    else:
        key = "mapper.2.weight"
        state[key] = torch.zeros(3)
    write_checkpoints(hf_home, spec, {"encoder": state})
    message = _load_error(spec)
    assert "effnet_encoder.safetensors" in message and f"{change} key '{key}'" in message


def test_garbage_file_is_refused_with_its_name(hf_home):
    spec, _ = write_small_family(hf_home)
    (snapshot_dir(hf_home) / "effnet_encoder.safetensors").write_bytes(struct.pack("<Q", 40) + b"{not json")
    message = _load_error(spec)
    assert "effnet_encoder.safetensors" in message and "corrupt" in message


def test_recorded_size_and_hash_are_checked(hf_home):
    spec, _ = write_small_family(hf_home)
    path = snapshot_dir(hf_home) / "stage_a.safetensors"
    wrong_size = dataclasses.replace(
        spec, files={**spec.files, "stage_a": dataclasses.replace(spec.files["stage_a"], size=path.stat().st_size + 1)}
    )
    assert "registry records" in _load_error(wrong_size)
    wrong_hash = dataclasses.replace(
        spec, files={**spec.files, "stage_a": dataclasses.replace(spec.files["stage_a"], sha256="0" * 64)}
    )
    with pytest.raises(WeightsError, match="stage_a.safetensors does not match its recorded sha256"):
        zoo.pull(wrong_hash, progress=False)


def test_offline_and_not_cached_is_one_clear_line(hf_home):
    spec = small_spec()
    with pytest.raises(WeightsError) as info:
        zoo.load_models(spec, allow_zero_clip=True)
    message = str(info.value)
    assert "\n" not in message
    assert "stable-cascade-lite" in message and "offline" in message and "neurcodec pull" in message


# ---------------------------------------------------------------------------- bundled file


def test_bundled_single_file_with_prefixes_and_clip_vector(tmp_path):
    tiny = zoo.get_family("tiny")
    spec = with_components(
        tiny, clip_dim=CLIP_DIM, stage_a=STAGE_A_SMALL_FIXTURE, encoder=SMALL_EFFNET, stage_b=STAGE_B_SMALL_FIXTURE
    )
    path = tmp_path / "tiny.safetensors"
    spec = dataclasses.replace(spec, files={"bundle": dataclasses.replace(spec.files["bundle"], path=str(path), size=None, sha256=None)})
    states = {name: recipe_for(spec, name) for name in zoo.COMPONENTS}
    clip = torch.randn(CLIP_DIM)
    flat = {f"{spec.components[n].prefix}{k}": v for n, s in states.items() for k, v in s.items()}
    save_file({**flat, "clip_uncond": clip}, str(path))
    assert zoo.where(spec) == "bundled"

    loaded = zoo.load_models(spec)

    key = "down_blocks.0.gammas"
    torch.testing.assert_close(loaded.stage_a.state_dict()[key], states["stage_a"][key])
    torch.testing.assert_close(loaded.clip_uncond.flatten(), clip)

    save_file({**flat, "stray.weight": torch.zeros(1)}, str(path))
    assert "'stray.weight'" in _load_error(spec)


# ---------------------------------------------------------------------------- empty-caption CLIP


@pytest.fixture
def tiny_text_encoder(hf_home):
    """A small random CLIPTextModelWithProjection + tokenizer in the repo's diffusers layout."""
    tf = pytest.importorskip("transformers")
    snap = snapshot_dir(hf_home)
    chars = [chr(i) for i in range(33, 127)]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok_dir = snap / "tokenizer"
    tok_dir.mkdir()
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    config = tf.CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=16,
        projection_dim=CLIP_DIM,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(0)
    model = tf.CLIPTextModelWithProjection(config).eval()
    # The repo ships the bf16 variant first; save that one only so it must be the one used.
    model.to(torch.bfloat16).save_pretrained(str(snap / "text_encoder"), variant="bf16")
    return snap


def _embed_empty_caption(snap: Path) -> torch.Tensor:
    tf = pytest.importorskip("transformers")
    tokenizer = tf.CLIPTokenizer.from_pretrained(str(snap / "tokenizer"))
    model = tf.CLIPTextModelWithProjection.from_pretrained(str(snap / "text_encoder"), variant="bf16").float()
    tokens = tokenizer([""], padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        return model(**tokens).text_embeds.flatten()


def test_pull_computes_and_caches_the_empty_caption_vector(hf_home, tiny_text_encoder):
    spec, _ = write_small_family(hf_home)
    with pytest.raises(WeightsError, match=r"no cached empty-caption CLIP vector.*neurcodec pull stable-cascade-lite"):
        zoo.load_models(spec)
    zero = zoo.load_models(spec, allow_zero_clip=True)
    assert torch.count_nonzero(zero.clip_uncond) == 0

    result = zoo.pull(spec, progress=False)

    assert result.clip_computed and result.clip_path == zoo.clip_cache_path(spec)
    assert result.clip_path.is_relative_to(hf_home / "neurcodec")
    assert set(result.files) == set(spec.files)
    loaded = zoo.load_models(spec)
    want = _embed_empty_caption(tiny_text_encoder)
    assert torch.count_nonzero(want) > 0
    torch.testing.assert_close(loaded.clip_uncond.flatten(), want)

    from safetensors import safe_open

    with safe_open(str(result.clip_path), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["repo"] == REPO and meta["revision"] == "main" and meta["commit"] == COMMIT
    assert meta["text_encoder_file"] == "text_encoder/model.bf16.safetensors"

    again = zoo.pull(spec, progress=False)  # cached: nothing recomputed
    assert not again.clip_computed


def test_pull_without_a_text_encoder_in_the_cache_fails_clearly(hf_home):
    spec, _ = write_small_family(hf_home)
    with pytest.raises(WeightsError, match=r"text_encoder/config.json is not in the cache.*offline"):
        zoo.pull(spec, progress=False)
    assert not zoo.clip_cache_path(spec).exists()


def _export_like_train(path: Path, spec: zoo.FamilySpec, stage_a_config: dict) -> dict:
    """A file in the layout `neurcodec train --export` writes: fp16 tensors under stage prefixes,
    `clip_uncond`, and a JSON description in the `neurcodec` metadata entry."""
    states = {name: recipe_for(spec, name) for name in zoo.COMPONENTS}
    flat = {f"{spec.components[n].prefix}{k}": v for n, s in states.items() for k, v in s.items()}
    flat = _cast(flat, torch.float16)
    flat["clip_uncond"] = torch.zeros(1, 1, spec.clip.dim, dtype=torch.float16)
    meta = {
        "stage_a": stage_a_config,
        "encoder": spec.components["encoder"].config,
        "stage_b": spec.components["stage_b"].config,
        "effnet_factor": 1.0,
        "diffusion": {"target": "x0", "loss_weight": "min_snr"},
        "training": {"config": "tiny", "phase": "done", "stage_a_steps": 10, "joint_steps": 20,
                     "train_seconds": 3, "command": "neurcodec train data --config tiny", "data": "data"},
    }
    save_file(flat, str(path), metadata={"neurcodec": json.dumps(meta)})
    return states


def test_bundle_trained_with_other_configs_is_refused_then_recorded(tmp_path):
    tiny = zoo.get_family("tiny")
    path = tmp_path / "tiny.safetensors"
    spec = dataclasses.replace(tiny, files={"bundle": dataclasses.replace(tiny.files["bundle"], path=str(path), size=None, sha256=None)})
    learned = {**spec.components["stage_a"].config, "scale_factor": 0.61}  # set by training
    states = _export_like_train(path, spec, learned)

    message = _load_error(spec)
    assert "tiny.safetensors" in message and "scale_factor=0.61" in message

    registry = tmp_path / "weights.json"
    registry.write_text(zoo.registry_path().read_text())
    entry = zoo.record_bundle(path, registry=registry)
    assert entry["components"]["stage_a"]["config"]["scale_factor"] == 0.61
    assert entry["files"]["bundle"]["size"] == path.stat().st_size
    assert entry["files"]["bundle"]["dtype"] == "float16"
    assert "training" not in entry  # the story goes to the sidecar, not to what the loader reads
    history = json.loads(zoo.training_history_path(registry).read_text())
    assert history["tiny"]["steps"] == {"stage_a": 10, "joint": 20}
    assert history["tiny"]["wall_time_s"] == 3

    recorded = zoo.load_registry(registry)["tiny"]
    recorded = dataclasses.replace(
        recorded, files={"bundle": dataclasses.replace(recorded.files["bundle"], path=str(path))}
    )
    loaded = zoo.load_models(recorded)
    assert loaded.stage_a.scale_factor == pytest.approx(0.61)
    key = "out_block.0.weight"
    assert loaded.stage_a.state_dict()[key].dtype == torch.float32
    assert torch.equal(loaded.stage_a.state_dict()[key], states["stage_a"][key].half().float())
    assert loaded.clip_uncond.shape == (1, 1, spec.clip.dim)
    assert loaded.digest != zoo.weights_digest(tiny)  # the recorded hash changes the id


def test_pull_without_transformers_says_which_extra_to_install(hf_home, monkeypatch):
    spec, _ = write_small_family(hf_home)
    monkeypatch.setitem(sys.modules, "transformers", None)  # import now raises ImportError
    with pytest.raises(WeightsError, match=r"needs transformers.*neurcodec\[hub\]"):
        zoo.pull(spec, progress=False)


def test_clip_vector_from_another_revision_is_not_used(hf_home):
    spec, _ = write_small_family(hf_home)
    stale = dataclasses.replace(spec, clip=dataclasses.replace(spec.clip, revision="v0"))
    write_clip_vector(hf_home, stale, torch.ones(CLIP_DIM))
    with pytest.raises(WeightsError, match=r"stabilityai/stable-cascade@v0.*neurcodec pull stable-cascade-lite --force"):
        zoo.load_models(spec, allow_zero_clip=True)
