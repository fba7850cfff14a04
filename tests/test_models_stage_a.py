"""Stage A (VQGAN f4): parity with the reference fixtures and its training behaviour."""

from __future__ import annotations

import json

import pytest
import torch
from _recipe import recipe_checksum_mismatches, recipe_state_dict
from safetensors.torch import load_file

from neurcodec.models import StageA
from neurcodec.models import configs as C

ATOL = RTOL = 1e-4



def _check_against_io(model: StageA, io: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        raw = model.encode_raw(io["image"])
        latent, none1, none2, none3 = model.encode(io["image"])
        quantized, unquantized, indices, vq_loss = model.encode(io["image"], quantize=True)
        torch.testing.assert_close(raw, io["encoder_raw"], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(latent, io["latent"], atol=ATOL, rtol=RTOL)
        assert none1 is none2 is none3 is None
        torch.testing.assert_close(unquantized, io["latent"], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(quantized, io["latent_quantized"], atol=ATOL, rtol=RTOL)
        assert indices.dtype == torch.int64
        assert torch.equal(indices, io["indices"])
        assert vq_loss.ndim == 0 and vq_loss > 0
        for z, name in ((io["latent"], "decoded_from_latent"), (io["latent_quantized"], "decoded_from_quantized")):
            torch.testing.assert_close(model.decode(z), io[name], atol=ATOL, rtol=RTOL)


def test_small_stage_a_matches_fixture(fixtures_dir):
    model = C.STAGE_A_SMALL_FIXTURE.build().eval()
    model.load_state_dict(load_file(fixtures_dir / "stage_a_small_weights.safetensors"), strict=True)
    _check_against_io(model, load_file(fixtures_dir / "stage_a_small_io.safetensors"))


def test_official_stage_a_matches_fixture_with_recipe_weights(fixtures_dir):
    with torch.device("meta"):
        model = StageA()  # the defaults are the official config
    weights = recipe_state_dict(model.state_dict())
    recipe = json.loads((fixtures_dir / "stage_a_official_weights_recipe.json").read_text())
    assert recipe_checksum_mismatches(weights, recipe) == []
    model.load_state_dict(weights, strict=True, assign=True)
    _check_against_io(model.eval(), load_file(fixtures_dir / "stage_a_official_io.safetensors"))


def test_quantized_latent_is_a_codebook_row_and_gradients_pass_straight_through():
    torch.manual_seed(0)
    model = StageA(bottleneck_blocks=1, c_hidden=32, codebook_size=16)
    x = torch.rand(2, 3, 16, 16)
    q, raw, idx, vq_loss = model.encode(x, quantize=True)
    assert q.shape == raw.shape == (2, 4, 4, 4) and idx.shape == (2, 4, 4)
    book = model.vquantizer.codebook.weight
    assert torch.equal(q, book[idx].permute(0, 3, 1, 2) / model.scale_factor)
    (model.decode(q).square().mean() + vq_loss).backward()
    assert model.in_block[1].weight.grad.abs().sum() > 0  # straight-through to the encoder
    assert book.grad[idx.unique()].abs().sum() > 0  # and to the used codebook rows


def test_fresh_residual_blocks_are_identity_and_train():
    """Zero gammas (reference init): blocks start as the identity yet every part learns."""
    torch.manual_seed(0)
    model = StageA(bottleneck_blocks=1, c_hidden=16, codebook_size=16)
    block = model.up_blocks[1]
    h = torch.randn(1, 16, 5, 5)
    assert torch.equal(block(h), h)

    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(2, 3, 16, 16)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        recon, _ = model(x)
        loss = (recon - x).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert model.up_blocks[1].gammas.abs().sum() > 0
    assert model.up_blocks[1].channelwise[0].weight.grad.abs().sum() > 0


def test_channels_last_gives_the_same_result(fixtures_dir):
    model = C.STAGE_A_SMALL_FIXTURE.build().eval()
    model.load_state_dict(load_file(fixtures_dir / "stage_a_small_weights.safetensors"))
    io = load_file(fixtures_dir / "stage_a_small_io.safetensors")
    model = model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        latent = model.encode(io["image"].contiguous(memory_format=torch.channels_last))[0]
        image = model.decode(io["latent"].contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(latent, io["latent"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(image, io["decoded_from_latent"], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("quantize", [False, True])
def test_forward_autoencodes_to_image_shape(quantize):
    model = StageA(bottleneck_blocks=1, c_hidden=32, codebook_size=16).eval()
    with torch.no_grad():
        recon, vq_loss = model(torch.rand(1, 3, 24, 40), quantize=quantize)
    assert recon.shape == (1, 3, 24, 40)
    assert (vq_loss is not None) == quantize
