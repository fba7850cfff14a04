"""The image codec end to end (Python API) on a small random-weight model."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from neurcodec.info import describe
from neurcodec.errors import UsageError, WrongModelError


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    return Image.fromarray(base).resize((width, height), Image.BILINEAR)


@pytest.mark.parametrize(
    "size, mode",
    [((1, 1), "RGB"), ((7, 3), "RGB"), ((33, 17), "L"), ((40, 24), "I;16"), ((65, 70), "RGBA"), ((20, 12), "LA")],
)
def test_round_trip_restores_size_and_mode(random_codec, size, mode):
    image = _photo(*size).convert("RGBA" if "A" in mode else "RGB")
    if mode == "I;16":
        image = Image.fromarray((np.asarray(image.convert("L"), dtype=np.uint16) * 257))
    elif mode != image.mode:
        image = image.convert(mode)
    data = random_codec.encode(image, quality=40)
    out = random_codec.decode(data, steps=2)
    assert out.size == size
    assert out.mode == image.mode


def test_alpha_is_carried_losslessly(random_codec):
    image = _photo(50, 30).convert("RGBA")
    alpha = Image.fromarray(np.tile(np.arange(50, dtype=np.uint8) * 5, (30, 1)))
    image.putalpha(alpha)
    out = random_codec.decode(random_codec.encode(image), steps=1)
    assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(alpha))


def test_same_seed_same_pixels_and_seed_changes_them(random_codec):
    data = random_codec.encode(_photo(96, 64), quality=60)
    first = np.asarray(random_codec.decode(data, steps=3, guidance=2.0))
    second = np.asarray(random_codec.decode(data, steps=3, guidance=2.0))
    other = np.asarray(random_codec.decode(data, steps=3, guidance=2.0, seed=123))
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_encode_is_deterministic_and_records_settings(random_codec):
    image = _photo(128, 96)
    data = random_codec.encode(image, quality=30, seed=9, steps=7, guidance=2.5, sampler="ddim")
    assert data == random_codec.encode(image, quality=30, seed=9, steps=7, guidance=2.5, sampler="ddim")
    info = describe(data)
    assert info["seed"] == 9
    assert info["decode_defaults"] == {"sampler": "ddim", "steps": 7, "guidance": 2.5, "cfg_rescale": info["decode_defaults"]["cfg_rescale"]}
    assert (info["width"], info["height"], info["mode"]) == (128, 96, "RGB")
    assert sum(info["breakdown"].values()) == info["bytes"] == len(data)


def test_higher_quality_spends_more_bits(random_codec):
    image = _photo(256, 192, seed=3)
    sizes = [len(random_codec.encode(image, quality=q)) for q in (0, 25, 50, 75, 100)]
    # The static/adaptive choice can cost a byte or two either way at near-empty latents.
    assert all(later >= earlier - 2 for earlier, later in zip(sizes, sizes[1:]))
    assert sizes[-1] > 1.5 * sizes[0]


def test_bpp_target_is_met_with_the_highest_quality_that_fits(random_codec):
    image = _photo(256, 192, seed=4)
    target = 0.5
    data = random_codec.encode(image, bpp=target)
    assert 8 * len(data) / (256 * 192) <= target
    q_used = next(q for q in range(101) if random_codec.encode(image, quality=q) == data)
    if q_used < 100:
        assert 8 * len(random_codec.encode(image, quality=q_used + 1)) / (256 * 192) > target


def test_files_of_other_models_are_refused_by_name(random_codec):
    data = bytearray(random_codec.encode(_photo(64, 64)))
    from neurcodec.bitstream import read_image, write_image
    from dataclasses import replace

    dae = read_image(bytes(data))
    foreign = write_image(replace(dae.header, model="stable-cascade-lite"), dae.latent)
    with pytest.raises(WrongModelError, match="stable-cascade-lite"):
        random_codec.decode(foreign)


def test_bad_arguments_are_usage_errors(random_codec):
    image = _photo(32, 32)
    with pytest.raises(UsageError):
        random_codec.encode(image, quality=101)
    with pytest.raises(UsageError):
        random_codec.encode(image, quality=10, bpp=0.1)
    with pytest.raises(UsageError):
        random_codec.decode(random_codec.encode(image), sampler="euler")


def test_a_model_with_a_direct_head_samples_the_residual_around_its_estimate(random_codec):
    """With stage B predicting a zero residual, the decode is exactly the head's estimate."""
    import copy

    import torch

    from neurcodec.bitstream import DecodeSettings

    codec = copy.deepcopy(random_codec)
    with torch.no_grad():
        codec.stage_b.clf[1].weight.zero_()
        codec.stage_b.clf[1].bias.zero_()
    latent = codec.encode_latent(torch.rand(1, 3, 64, 96))
    settings = DecodeSettings(steps=1, guidance=1.0, sampler="ddpm", cfg_rescale=0.0, seed=0)
    pixels = codec.generate(latent, (96, 64), settings)
    with torch.inference_mode():
        estimate = codec.stage_b.direct_estimate(latent, (16, 24))
        expected = codec.stage_a.decode(estimate).clamp(0, 1)
    assert estimate.abs().max() > 0  # the micro config has a head, with non-zero weights here
    torch.testing.assert_close(pixels, expected, atol=1e-5, rtol=0)
