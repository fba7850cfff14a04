"""The fast inference paths compute what the plain ones do (speed itself: benchmarks/speed.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from neurcodec.bitstream import DecodeSettings
from neurcodec.codec import Codec
from neurcodec.pipeline import resolve_autocast
from neurcodec.zoo import get_family
from neurcodec.errors import UsageError
from neurcodec.models.blocks import GlobalResponseNorm, TimestepBlock

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
SETTINGS = DecodeSettings(steps=2, guidance=1.5, sampler="ddpm", cfg_rescale=0.7, seed=3)


def test_autocast_policy():
    assert resolve_autocast(None, get_family("tiny").autocast, CPU, torch.float32) is None  # measured: not worth it
    assert resolve_autocast(False, get_family("stable-cascade-lite").autocast, CPU, torch.float32) is None
    assert resolve_autocast("bfloat16", get_family("tiny").autocast, CPU, torch.float32) is torch.bfloat16
    assert resolve_autocast(True, get_family("tiny").autocast, CPU, torch.float32) is torch.bfloat16
    assert resolve_autocast("bf16", get_family("tiny").autocast, CPU, torch.bfloat16) is None  # already low precision
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert resolve_autocast("auto", get_family("stable-cascade-lite").autocast, CPU, torch.float32) is (torch.bfloat16 if native else None)
    with pytest.raises(UsageError):
        resolve_autocast("float16", get_family("tiny").autocast, CPU, torch.float32)
    with pytest.raises(UsageError):
        resolve_autocast("int8", get_family("tiny").autocast, CPU, torch.float32)


def test_one_pass_grn_and_film_match_their_formulas():
    g = torch.Generator().manual_seed(0)
    grn = GlobalResponseNorm(8)
    with torch.no_grad():
        grn.gamma.normal_(generator=g), grn.beta.normal_(generator=g)
    x = torch.randn(2, 5, 6, 8, generator=g)
    norm = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
    n = norm / (norm.mean(dim=-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(grn(x), grn.gamma * (x * n) + grn.beta + x)

    block = TimestepBlock(4, 6, conds=("sca",))
    h = torch.randn(2, 4, 3, 3, generator=g)
    t = torch.randn(2, 12, generator=g)
    a, b = block.mapper(t[:, :6])[:, :, None, None].chunk(2, dim=1)
    a2, b2 = block.mapper_sca(t[:, 6:])[:, :, None, None].chunk(2, dim=1)
    torch.testing.assert_close(block(h, t), h * (1 + a + a2) + b + b2)


def test_channels_last_decodes_the_same_pixels(random_codec):
    latent = torch.randn(1, 16, 3, 2, generator=torch.Generator().manual_seed(1))
    plain = Codec(random_codec.models, channels_last=False).generate(latent, (64, 96), SETTINGS)
    fast = Codec(random_codec.models, channels_last=True).generate(latent, (64, 96), SETTINGS)
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=0)


def test_bf16_autocast_stays_close_to_fp32(random_codec):
    latent = torch.randn(1, 16, 3, 2, generator=torch.Generator().manual_seed(1))
    fp32 = Codec(random_codec.models, autocast=False).generate(latent, (64, 96), SETTINGS)
    codec = Codec(random_codec.models, autocast="bfloat16")
    assert codec.autocast is torch.bfloat16
    bf16 = codec.generate(latent, (64, 96), SETTINGS)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert (bf16 - fp32).abs().mean() < 0.05


def test_benchmark_key_mapping_makes_diffusers_compute_our_stage_b():
    pytest.importorskip("diffusers")
    from diffusers.models.unets.unet_stable_cascade import StableCascadeUNet

    from _recipe import recipe_state_dict
    from neurcodec.models.configs import STAGE_B_SMALL_FIXTURE as cfg

    spec = importlib.util.spec_from_file_location("speed_bench", REPO / "benchmarks" / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    with torch.device("meta"):
        ours, theirs = cfg.build(), StableCascadeUNet(**speed.diffusers_config(cfg))
    weights = recipe_state_dict(ours.state_dict())
    ours.load_state_dict(weights, assign=True)
    theirs.load_state_dict(speed.to_diffusers_state_dict(weights), strict=True, assign=True)
    ours.eval(), theirs.eval()
    g = torch.Generator().manual_seed(0)
    x, r = torch.randn(2, 4, 32, 32, generator=g), torch.full((2,), 0.4)
    effnet, clip = torch.randn(2, 16, 4, 4, generator=g), torch.randn(2, 1, cfg.c_clip, generator=g)
    with torch.no_grad():
        expected = theirs(x, r, clip_text_pooled=clip, effnet=effnet).sample
        torch.testing.assert_close(ours(x, r, effnet, clip), expected, atol=1e-4, rtol=1e-4)
