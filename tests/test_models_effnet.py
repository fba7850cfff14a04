"""EfficientNet encoder: official-size parity, the tiny variant and the preprocessing helpers."""

from __future__ import annotations

import json

import pytest
import torch
from _recipe import recipe_checksum_mismatches, recipe_state_dict
from safetensors.torch import load_file

from neurcodec.models import EfficientNetEncoder, EffNetStage, effnet_input_size, effnet_preprocess, effnet_resize
from neurcodec.models import configs as C

ATOL = RTOL = 1e-4



def test_official_encoder_matches_fixture_with_recipe_weights(fixtures_dir):
    with torch.device("meta"):
        model = EfficientNetEncoder()  # defaults: EfficientNetV2-S, 16 channels
    weights = recipe_state_dict(model.state_dict())
    recipe = json.loads((fixtures_dir / "effnet_weights_recipe.json").read_text())
    assert recipe_checksum_mismatches(weights, recipe) == []
    stored_mapper = load_file(fixtures_dir / "effnet_mapper_weights.safetensors")
    for key, value in stored_mapper.items():
        assert torch.equal(weights[f"mapper.{key}"], value), key
    model.load_state_dict(weights, strict=True, assign=True)
    model.eval()

    io = load_file(fixtures_dir / "effnet_io.safetensors")
    torch.testing.assert_close(effnet_preprocess(io["image"]), io["normalized_input"], atol=1e-6, rtol=1e-6)
    with torch.no_grad():
        features = model.backbone(io["normalized_input"])
        torch.testing.assert_close(features, io["backbone_features"], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(model.mapper(features), io["output"], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(model(io["normalized_input"]), io["output"], atol=ATOL, rtol=RTOL)


def test_tiny_variant_keeps_stride_32_and_16_channels():
    model = C.EffNetConfig(width_mult=0.5, depth_mult=0.25, last_channel=320, stochastic_depth_prob=0.0).build().eval()
    n_tiny = sum(p.numel() for p in model.parameters())
    assert n_tiny < 2_000_000  # vs 20.2 M for V2-S
    with torch.no_grad():
        out = model(torch.randn(2, 3, 96, 64))
    assert out.shape == (2, 16, 3, 2)


def test_explicit_stage_list_builds_the_requested_blocks():
    stages = [
        EffNetStage(True, 1, 3, 1, 16, 16, 1),
        EffNetStage(True, 4, 3, 2, 16, 24, 1),
        EffNetStage(True, 4, 3, 2, 24, 32, 1),
        EffNetStage(False, 4, 3, 2, 32, 48, 2),
        EffNetStage(False, 4, 3, 2, 48, 64, 1),
    ]
    model = EfficientNetEncoder(c_latent=16, stages=stages, last_channel=128)
    assert len(model.backbone) == len(stages) + 2  # stem + stages + head
    assert len(model.backbone[4]) == 2
    assert model.mapper[0].weight.shape == (16, 128, 1, 1)
    assert model.mapper[1].weight is None  # the output BatchNorm has no affine
    assert model(torch.randn(1, 3, 64, 32)).shape == (1, 16, 2, 1)


def test_wrong_output_stride_is_refused():
    with pytest.raises(ValueError, match="output stride 16"):
        EfficientNetEncoder(stages=[EffNetStage(True, 1, 3, 2, 16, 16, 1)] * 3)


def test_input_size_is_scaled_and_floored_to_multiples_of_32():
    assert effnet_input_size(1024, 1024) == (768, 768)  # the reference's 3/4
    assert effnet_input_size(768, 512, 0.75) == (576, 384)
    assert effnet_input_size(500, 333, 0.75) == (352, 224)
    assert effnet_input_size(512, 512, 1.0) == (512, 512)
    assert effnet_input_size(40, 20, 0.5) == (32, 32)  # never an empty map


def test_resize_is_nearest_neighbour_to_the_input_size():
    x = torch.rand(1, 3, 100, 70)
    y = effnet_resize(x, 0.75)
    assert y.shape == (1, 3, 64, 32)
    # Nearest neighbour only copies pixels: every output value exists in the input.
    assert torch.isin(y.flatten(), x.flatten()).all()
