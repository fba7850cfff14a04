"""Stage B: parity with the small reference fixture, the cached-conditioning path, training."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from neurcodec.models import StageB, StageBConditions
from neurcodec.models import configs as C

ATOL = RTOL = 1e-4



@pytest.fixture(scope="module")
def small(fixtures_dir) -> StageB:
    model = C.STAGE_B_SMALL_FIXTURE.build()
    model.load_state_dict(load_file(fixtures_dir / "stage_b_small_weights.safetensors"), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def io(fixtures_dir) -> dict[str, torch.Tensor]:
    return load_file(fixtures_dir / "stage_b_small_io.safetensors")


def _case(io, n):
    if n == 1:
        return (io["case1_x"], io["case1_r"], io["case1_effnet"], io["case1_clip"]), {"pixels": io["case1_pixels"]}
    if n == 2:
        return (io["case2_x"], io["case2_r"], io["case2_effnet"], io["case2_clip"]), {}
    return (io["case1_x"], io["case1_r"], io["case1_effnet"], io["case3_clip2d"]), {
        "pixels": io["case1_pixels"],
        "sca": io["case3_sca"],
    }


@pytest.mark.parametrize("n", [1, 2, 3])
def test_forward_matches_fixture(small, io, n):
    args, kwargs = _case(io, n)
    with torch.no_grad():
        out = small(*args, **kwargs)
    torch.testing.assert_close(out, io[f"case{n}_out"], atol=ATOL, rtol=RTOL)


def test_embeddings_match_fixture(small, io):
    with torch.no_grad():
        torch.testing.assert_close(small.r_embedding(io["case1_r"]), io["case1_r_embed"], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(small.clip_tokens(io["case1_clip"]), io["case1_clip_embed"], atol=ATOL, rtol=RTOL)
        # A 2-D pooled embedding is the same as a one-token sequence.
        torch.testing.assert_close(small.clip_tokens(io["case3_clip2d"]), io["case1_clip_embed"], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_cached_conditions_equal_the_plain_forward(small, io, n):
    (x, r, effnet, clip), kwargs = _case(io, n)
    pixels = kwargs.pop("pixels", None)
    with torch.no_grad():
        cond = small.encode_conditions(effnet, clip, pixels, latent_hw=x.shape[-2:])
        assert isinstance(cond, StageBConditions) and cond.batch_size == x.shape[0]
        assert len(cond.clip_kv) == sum(type(m).__name__ == "AttnBlock" for m in small.modules())
        # The same cache serves every step: different x and r, each equal to a plain call.
        for scale, r_step in ((1.0, r), (0.5, torch.full_like(r, 0.1))):
            plain = small(x * scale, r_step, effnet, clip, pixels, **kwargs)
            cached = small(x * scale, r_step, cond=cond, **kwargs)
            assert torch.equal(cached, plain)
    torch.testing.assert_close(small(x, r, cond=cond, **kwargs), io[f"case{n}_out"], atol=ATOL, rtol=RTOL)


def test_misuse_is_reported(small, io):
    (x, r, effnet, clip), _ = _case(io, 1)
    cond = small.encode_conditions(effnet, clip, latent_hw=x.shape[-2:])
    with pytest.raises(TypeError, match="either cond"):
        small(x, r, effnet, clip, cond=cond)
    with pytest.raises(TypeError, match="needs effnet and clip"):
        small(x, r)
    with pytest.raises(ValueError, match="encoded for latents"):
        small(x[..., :16, :16], r, cond=cond)
    with pytest.raises(TypeError, match="unknown noise conditions"):
        small(x, r, effnet, clip, sac=r)


def test_channels_last_and_bfloat16(small, io):
    args, kwargs = _case(io, 1)
    x = args[0].contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = small(x, *args[1:], **kwargs)
        torch.testing.assert_close(out, io["case1_out"], atol=ATOL, rtol=RTOL)
        bf16 = C.STAGE_B_SMALL_FIXTURE.build().eval()
        bf16.load_state_dict(small.state_dict())
        bf16 = bf16.to(torch.bfloat16)
        out16 = bf16(*args, **kwargs)  # float32 inputs are cast to the model's dtype
    assert out16.dtype == torch.bfloat16
    err = (out16.float() - io["case1_out"]).abs().mean() / io["case1_out"].abs().mean()
    assert err < 0.1


def test_fresh_model_predicts_zero_then_learns():
    """Reference init (zero output conv, zero FiLM and GRN): ε̂ = 0 at first, and a few
    optimiser steps on a fixed batch lower the ε loss, so the init trains from scratch."""
    torch.manual_seed(0)
    model = StageB(
        c_cond=16, c_hidden=[16, 32, 32, 32], nhead=[-1, -1, 2, 2],
        blocks=[[1, 1, 1, 1], [1, 1, 1, 1]], block_repeat=[[1, 1, 1, 1], [2, 2, 1, 1]],
        c_clip=8, dropout=[0, 0, 0, 0],
    )
    x0 = torch.randn(4, 4, 16, 16)
    eps = torch.randn_like(x0)
    r = torch.rand(4)
    a = torch.cos(r * torch.pi / 2)[:, None, None, None]
    x = a * x0 + (1 - a**2).sqrt() * eps
    effnet, clip = torch.randn(4, 16, 2, 2), torch.zeros(4, 8)
    assert torch.equal(model(x, r, effnet, clip), torch.zeros_like(x))

    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = (model(x, r, effnet, clip) - eps).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    timestep_linear = model.down_blocks[0][1].mapper.weight
    assert timestep_linear.abs().sum() > 0  # zero-initialised FiLM weights moved


def test_meta_build_runs_no_data_init():
    with torch.device("meta"):
        model = StageB(**C.STAGE_B_FULL.kwargs())
    assert all(p.is_meta for p in model.parameters())
    # Materialise a small one the way a loader would: empty tensors, then real weights.
    with torch.device("meta"):
        small = C.STAGE_B_SMALL_FIXTURE.build()
    small = small.to_empty(device="cpu")
    assert {p.device.type for p in small.parameters()} == {"cpu"}
