"""The one pipeline both codecs decode through: the image path and the video path agree exactly."""

from __future__ import annotations

import copy

import pytest
import torch

from neurcodec.bitstream import DecodeSettings
from neurcodec.codec import Codec
from neurcodec.tiling import TileConfig
from neurcodec.video import generate_frames

SMALL_TILES = TileConfig(stage_b_tile=16, stage_b_overlap=8, stage_a_tile=16, stage_a_overlap=8, align=8).forced()
SETTINGS = DecodeSettings(sampler="ddpm", steps=2, guidance=1.5, cfg_rescale=0.7, seed=11)
OPTIONS = {
    "defaults": {},
    "tiling forced": {"tiling": SMALL_TILES},
    "bf16 autocast": {"autocast": "bfloat16"},
    "channels_last off": {"channels_last": False},
    "all at once": {"tiling": SMALL_TILES, "autocast": "bfloat16", "channels_last": True},
}


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("family", ["random_codec", "random_codec_f8"])
def test_image_and_video_paths_decode_the_same_latents_to_identical_pixels(family, option, request):
    base = request.getfixturevalue(family)
    codec = Codec(copy.deepcopy(base.models), **OPTIONS[option])  # a pipeline owns its modules
    size = (200, 136)  # padded 224×160: several stage B and stage A tiles when tiling is forced
    latent = torch.randn(1, *codec.latent_shape(*size), generator=torch.Generator().manual_seed(3))
    image = codec.generate(latent, size, SETTINGS)
    frames, _ = generate_frames(codec, latent, size, SETTINGS)
    assert image.shape == frames.shape == (1, 3, size[1], size[0])
    assert torch.equal(image, frames)


def test_shared_noise_gives_every_frame_of_a_batch_the_same_noise(random_codec_f8):
    codec = Codec(copy.deepcopy(random_codec_f8.models))
    size = (128, 128)
    latent = torch.randn(1, *codec.latent_shape(*size), generator=torch.Generator().manual_seed(4))
    batch = latent.expand(2, -1, -1, -1).clone()
    shared, _ = codec.pipeline.generate(batch, size, SETTINGS, noise="shared")
    independent, _ = codec.pipeline.generate(batch, size, SETTINGS, noise="independent")
    assert (shared[0] - shared[1]).abs().max() < 1e-4  # same input, same noise: same frame
    assert (independent[0] - independent[1]).abs().max() > 1e-2  # its own noise each
    one, _ = codec.pipeline.generate(latent, size, SETTINGS, noise="independent")
    assert torch.equal(one, codec.pipeline.generate(latent, size, SETTINGS, noise="shared")[0])


def test_unknown_noise_mode_is_a_usage_error(random_codec):
    from neurcodec.errors import UsageError

    with pytest.raises(UsageError, match="noise must be"):
        random_codec.pipeline.generate(torch.zeros(1, 16, 2, 2), (64, 64), SETTINGS, noise="fresh")
