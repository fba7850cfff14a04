"""Tiled decoding: tile layout, seam blending, and tiled == untiled on a small random model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from neurcodec.bitstream import DecodeSettings
from neurcodec.codec import Codec
from neurcodec.errors import UsageError
from neurcodec.tiling import TileConfig, span_weights, spans, tiled_map, tiled_stage_a_decode, tiled_stage_a_encode, tiled_stage_b


@pytest.mark.parametrize("length, tile, overlap, align", [(10, 16, 4, 1), (64, 32, 8, 8), (100, 32, 8, 1), (200, 64, 16, 8), (481, 256, 32, 8)])
def test_spans_cover_everything_with_the_asked_overlap(length, tile, overlap, align):
    axis = spans(length, tile, overlap, align)
    assert axis[0][0] == 0 and axis[-1][1] == length
    for (s0, e0), (s1, _) in zip(axis, axis[1:]):
        assert s0 < s1 and e0 - s1 >= overlap - align // 2  # consecutive tiles overlap
    for start, stop in axis:
        assert stop - start == min(tile, length)
    assert all(start % align == 0 for start, _ in axis[:-1])


def test_weights_are_positive_and_cross_fade_linearly():
    axis = spans(100, 40, 10)
    weights = span_weights(axis)
    assert all(bool((w >= 0).all()) and bool((w <= 1).all()) for w in weights)
    # Where exactly two tiles overlap, the two ramps sum to one and fade monotonically.
    (_, e0), (s1, _) = axis[0], axis[1]
    overlap = e0 - s1
    left, right = weights[0][-overlap:], weights[1][:overlap]
    torch.testing.assert_close(left + right, torch.ones(overlap))
    assert bool((left[1:] <= left[:-1]).all()) and bool((right[1:] >= right[:-1]).all())
    assert left[0] == 1 and left[-1] == 0  # the tile's own edge does not count


def test_pointwise_functions_are_reproduced_exactly():
    x = torch.randn(2, 3, 70, 45)
    out = tiled_map(lambda t, r, c: t * 2 + 1, x, tile=24, overlap=8)
    torch.testing.assert_close(out, x * 2 + 1)


def test_local_functions_match_when_the_overlap_covers_their_reach():
    x = torch.randn(1, 2, 64, 80)
    kernel = torch.randn(2, 2, 5, 5)

    def conv(t: torch.Tensor, *_: slice) -> torch.Tensor:
        return F.conv2d(F.pad(t, (2, 2, 2, 2), mode="replicate"), kernel)

    full = conv(x)
    # The conv reaches 2 pixels; the outer quarter (4 px) of each overlap is not blended in.
    tiled = tiled_map(conv, x, tile=32, overlap=16)
    torch.testing.assert_close(tiled, full, atol=1e-5, rtol=1e-5)


def test_upscaling_function_gives_the_exact_output_size():
    x = torch.randn(1, 4, 37, 53)
    out = tiled_map(lambda t, r, c: t.repeat_interleave(4, -1).repeat_interleave(4, -2)[:, :3], x, tile=16, overlap=4, scale=4)
    assert out.shape == (1, 3, 148, 212)
    torch.testing.assert_close(out, x.repeat_interleave(4, -1).repeat_interleave(4, -2)[:, :3])


def test_seams_are_blended_not_stepped():
    # Each tile returns a constant (its index): a hard seam would jump by 1 between two pixels.
    x = torch.zeros(1, 1, 8, 120)
    counter = iter(range(100))
    out = tiled_map(lambda t, r, c: torch.full_like(t, float(next(counter))), x, tile=40, overlap=16)
    row = out[0, 0, 0]
    assert row[0] == 0 and row[-1] == len(spans(120, 40, 16)) - 1
    assert (row[1:] - row[:-1]).abs().max() <= 2 / 16 + 1e-6  # a ramp over half the overlap


def test_bad_tile_configs_are_refused():
    with pytest.raises(UsageError):
        TileConfig(stage_b_tile=32, stage_b_overlap=32)
    with pytest.raises(UsageError):
        TileConfig(stage_b_tile=36, align=8)


def test_threshold_keeps_ordinary_images_untiled():
    config = TileConfig()
    assert not config.wants_tiles((256, 256))  # a 1024×1024 image
    assert config.wants_tiles((1080, 1920))  # 8K
    assert config.forced().wants_tiles((16, 16))


# ---------------------------------------------------------------- on the random model
SMALL_TILES = TileConfig(stage_b_tile=32, stage_b_overlap=16, stage_a_tile=24, stage_a_overlap=8, align=8)


def _latent_for(codec: Codec, width: int, height: int) -> torch.Tensor:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)).resize((width, height), Image.BILINEAR)
    return codec.encode_latent(codec._to_tensor(image))


def test_tiled_stage_a_matches_untiled(random_codec):
    z = torch.randn(1, random_codec.stage_a.c_latent, 40, 56, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = random_codec.stage_a.decode(z)
        tiled = tiled_stage_a_decode(random_codec.stage_a, z, SMALL_TILES)
    assert tiled.shape == full.shape == (1, 3, 160, 224)
    scale = full.abs().max()
    assert (tiled - full).abs().max() < 1e-3 * scale


def test_tiled_stage_b_matches_untiled(random_codec):
    stage_b = random_codec.stage_b
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 48, 64, generator=g)
    r = torch.full((2,), 0.6)
    effnet = torch.randn(2, stage_b.effnet_mapper[0].in_channels, 3, 4, generator=g)
    clip = torch.randn(2, 1, stage_b.clip_mapper.in_features, generator=g)
    with torch.inference_mode():
        conditions = stage_b.encode_conditions(effnet, clip, latent_hw=(48, 64))
        full = stage_b(x, r, cond=conditions)
        tiled = tiled_stage_b(stage_b, conditions, SMALL_TILES)(x, r)
    assert tiled.shape == full.shape
    # Attention sees one tile, not the whole image, so this is close, not equal.
    rel = (tiled - full).norm() / full.norm()
    assert rel < 0.25, float(rel)
    assert F.cosine_similarity(tiled.flatten(), full.flatten(), dim=0) > 0.97


def test_tiled_decode_matches_untiled_and_keeps_the_exact_size(random_codec):
    width, height = 200, 136  # padded to 224×160 → latent 40×56, forced into 2×2 stage B tiles
    latent = _latent_for(random_codec, width, height)
    settings = DecodeSettings(steps=3, guidance=1.5, sampler="ddim", cfg_rescale=0.7, seed=4)
    untiled = Codec(random_codec.models).generate(latent, (width, height), settings)
    tiled_codec = Codec(random_codec.models, tiling=SMALL_TILES.forced())
    tiled = tiled_codec.generate(latent, (width, height), settings)
    assert tiled.shape == untiled.shape == (1, 3, height, width)
    diff = (tiled - untiled).abs()
    assert diff.mean() < 0.05 * max(untiled.std(), 1e-3)  # pixels in [0, 1]
    assert tiled_codec.generate(latent, (width, height), settings).equal(tiled)  # still deterministic


def test_tiled_stage_a_encode_is_close_to_untiled(random_codec_f8):
    """The f8 TAESD-style encoder on tiles: local convs agree exactly inside the tiles; its
    GroupNorm sees tile statistics, so the blend is close rather than equal."""
    stage_a = random_codec_f8.stage_a
    pixels = torch.rand(1, 3, 320, 448, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        full = stage_a.encode(pixels)[0]
        # SMALL_TILES counts f4 latent pixels: doubled, the f8 tiles are 24 latent pixels again.
        tiled = tiled_stage_a_encode(stage_a, pixels, replace(SMALL_TILES, stage_a_tile=48, stage_a_overlap=16))
    assert tiled.shape == full.shape == (1, stage_a.c_latent, 40, 56)
    rel = (tiled - full).norm() / full.norm()
    assert rel < 0.1, float(rel)


def test_an_f8_stage_a_gets_tiles_covering_the_same_pixels_as_an_f4_one():
    from neurcodec.tiling import stage_a_tiles

    config = TileConfig()
    assert stage_a_tiles(config, 4) == (256, 16)  # 1024-pixel tiles, 64-pixel overlaps
    assert stage_a_tiles(config, 8) == (128, 8)  # the same in an f8 latent
