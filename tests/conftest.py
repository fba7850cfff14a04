"""Shared test setup: never touch the network; find ../shared when it is there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before anything imports huggingface_hub: tests must never go to the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("NEURCODEC_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests run small models, which are fastest (and most repeatable) on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared folder (reference fixtures, data); skip when this machine lacks it."""
    if not (SHARED_DIR / "reference").is_dir():
        pytest.skip(f"needs the shared reference folder at {SHARED_DIR} (set NEURCODEC_SHARED)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"


@pytest.fixture(scope="session")
def fixtures_dir(reference_dir: Path) -> Path:
    return reference_dir / "fixtures"


@pytest.fixture(scope="session")
def kodak_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "kodak"
    if not path.is_dir():
        pytest.skip(f"needs the Kodak images at {path}")
    return path


@pytest.fixture(scope="session")
def random_codec():
    """A `Codec` of the micro training config with recipe-random weights (no file needed).

    Its pictures are noise, but every code path of the real codec runs: padding, quantization,
    entropy coding, the container, CFG sampling and stage A decoding. Registered as model
    "tiny" with its own weights digest, like any other build of the family.
    """
    return _random_codec("micro", "tiny")


@pytest.fixture(scope="session")
def random_codec_f8():
    """Like `random_codec`, for the tiny2 layout: an f8 TAESD-style stage A, an encoder that
    reads its latent and carries the colour thumbnail (config micro2, registered as "tiny2")."""
    return _random_codec("micro2", "tiny2")


def _random_codec(config_name: str, family: str):
    import dataclasses

    import torch

    from _recipe import recipe_state_dict
    from neurcodec.codec import Codec
    from neurcodec.train import TrainConfig
    from neurcodec.zoo import get_family, load_models

    config = TrainConfig.load(config_name)
    spec = get_family(family)
    components = {
        name: dataclasses.replace(comp, config=getattr(config, name).to_dict())
        for name, comp in spec.components.items()
    }
    spec = dataclasses.replace(spec, components=components, clip=dataclasses.replace(spec.clip, dim=config.stage_b.c_clip))
    models = load_models(spec, pretrained=False)
    for module in (models.stage_a, models.encoder, models.stage_b):
        module.load_state_dict(recipe_state_dict(module.state_dict()))
    models.clip_uncond = torch.randn(1, 1, config.stage_b.c_clip, generator=torch.Generator().manual_seed(5))
    return Codec(models)


@pytest.fixture(scope="session")
def photo_collection(tmp_path_factory) -> Path:
    """40 small good images in a folder tree, 3 bad ones and a text file (`_dataset_data`)."""
    from _dataset_data import make_collection

    root = tmp_path_factory.mktemp("collection")
    make_collection(root)
    return root


@pytest.fixture(scope="session")
def encoded_collection(photo_collection, tmp_path_factory) -> Path:
    """`photo_collection` through `neurcodec dataset encode` in-process (the reference run)."""
    from _dataset_data import cli

    out = tmp_path_factory.mktemp("encoded") / "out"
    result = cli("dataset", "encode", str(photo_collection), "-o", str(out), "--shard-size", "6", "--quiet")
    assert result.returncode == 10, result.stderr  # 10: finished, with failed images
    return out
