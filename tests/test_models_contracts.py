"""Every kind of model config builds a module that meets its stage's contract
(`neurcodec.contracts`): the members the pipeline, tiling, latent search and training use."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from neurcodec.contracts import EncoderContract, StageAContract, StageBContract, TrainableStageA
from neurcodec.models import configs as C
from neurcodec.train import TrainConfig

CONTRACTS = {"stage_a": StageAContract, "taesd": StageAContract, "effnet": EncoderContract, "stage_b": StageBContract}


def _all_configs() -> list:
    found = [v for v in vars(C).values() if isinstance(v, C._Config)]
    for name in ("tiny2", "tiny", "micro", "micro2"):
        recipe = TrainConfig.load(name)
        found += [recipe.stage_a, recipe.encoder, recipe.stage_b]
    return found


def test_every_config_kind_is_covered():
    kinds = {cls.kind for cls in (C.StageAConfig, C.TaesdConfig, C.EffNetConfig, C.StageBConfig)}
    assert kinds == set(CONTRACTS) == {c.kind for c in _all_configs()}


@pytest.mark.parametrize("config", _all_configs(), ids=lambda c: f"{c.kind}")
def test_each_config_builds_a_module_that_meets_its_contract(config):
    with torch.device("meta"):
        module = config.build()
    assert isinstance(module, CONTRACTS[config.kind])
    # Only a stage A trained here has the codebook and raw latent its own training phase uses.
    assert isinstance(module, TrainableStageA) is (config.kind == "stage_a")


def test_a_contract_names_what_a_module_lacks():
    with torch.device("meta"):
        module = C.EFFNET_OFFICIAL.build()
    assert not isinstance(module, StageBContract)


def test_a_pretrained_stage_a_given_training_steps_is_refused_with_a_reason(tmp_path):
    from neurcodec.errors import UsageError
    from neurcodec.train import Trainer

    recipe = TrainConfig.load("micro2")  # TAESD-style stage A
    wrong = dataclasses.replace(recipe, stage_a_phase=dataclasses.replace(recipe.stage_a_phase, steps=10, lr=1e-3))
    with pytest.raises(UsageError, match="pretrained, not trained here"):
        Trainer(wrong, tmp_path, tmp_path / "run", log=lambda m: None)
