"""The pretrained tiny autoencoder as stage A, and the colour thumbnail a latent can carry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from neurcodec.models.configs import EffNetConfig, TaesdConfig, config_from_dict
from neurcodec.models.taesd import TinyAutoencoder
from neurcodec.models.thumbnail import match_thumbnail, rgb_to_thumbnail, thumbnail_to_rgb


def _smooth_image(h: int = 128, w: int = 160, seed: int = 0) -> torch.Tensor:
    coarse = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_taef2_checkpoints_load_strictly_and_reconstruct_a_photo(shared_dir):
    folder = shared_dir / "pretrained" / "taef2"
    if not folder.is_dir():
        pytest.skip(f"needs the TAEF2 weights at {folder}")
    model = TinyAutoencoder()
    for part in ("encoder", "decoder"):
        state = torch.load(folder / f"taef2_{part}.pth", weights_only=True)
        getattr(model, part).load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    image = np.asarray(Image.open(shared_dir / "data" / "kodak" / "kodim23.png").convert("RGB"), dtype=np.float32)
    x = torch.from_numpy(image[:256, 256:512] / 255.0).permute(2, 0, 1)[None]
    with torch.inference_mode():
        z = model.encode(x)[0]
        y = model.decode(z).clamp(0, 1)
    assert z.shape == (1, 32, 32, 32)  # f8 × 32 channels
    assert -10 * math.log10(F.mse_loss(y, x).item()) > 30  # 33 dB on the whole image (NOTES.md)


def test_taesd_config_round_trips_and_builds_an_f8_stage_a():
    cfg = TaesdConfig(c_hidden=8, c_latent=4)
    assert config_from_dict(cfg.to_dict()) == cfg
    model = cfg.build()
    x = _smooth_image(64, 96)
    z = model.encode(x)[0]
    assert z.shape == (1, 4, 8, 12) and model.downscale == 8
    assert model.decode(z).shape == x.shape


def test_thumbnail_channels_invert_to_the_block_means():
    x = _smooth_image()
    channels = rgb_to_thumbnail(x, 32, gain=16.0)
    assert channels.shape == (1, 3, 4, 5)
    assert torch.allclose(thumbnail_to_rgb(channels, 16.0), F.avg_pool2d(x, 32), atol=1e-6)


def test_matching_brings_a_wrong_decode_to_the_target_thumbnail_without_block_edges():
    x = _smooth_image()
    target = F.avg_pool2d(x, 32)
    grey = torch.full_like(x, 0.5)
    before = F.mse_loss(F.avg_pool2d(grey, 32), target)
    matched = match_thumbnail(grey, target)
    after = F.mse_loss(F.avg_pool2d(matched, 32), target)
    assert after < before / 100
    # A smooth correction: far smaller jumps between neighbours than painting the blocks flat.
    blocky = F.interpolate(target, scale_factor=32, mode="nearest")
    def jump(x: torch.Tensor) -> float:
        return (x[..., 1:] - x[..., :-1]).abs().max().item()
    assert jump(matched) < 0.5 * jump(blocky)


def test_an_encoder_with_a_thumbnail_carries_it_in_its_first_channels():
    cfg = EffNetConfig(
        c_latent=16, in_channels=4, input_stride=8, thumbnail_gain=16.0,
        stages=((True, 1, 3, 1, 16, 16, 1), (False, 4, 3, 2, 16, 24, 1)), last_channel=32, stochastic_depth_prob=0.0,
    )
    encoder = cfg.build().eval()
    x = _smooth_image()
    features = torch.randn(1, 4, 16, 20)
    latent = encoder(features, x)
    assert latent.shape == (1, 16, 4, 5)
    assert torch.allclose(encoder.thumbnail(latent), F.avg_pool2d(x, 32), atol=1e-5)
    with pytest.raises(ValueError, match="pixels"):
        encoder(features)
