"""The default model shipped inside the package: it loads offline and reconstructs real images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import neurcodec
from neurcodec.bench.metrics import psnr
from neurcodec.zoo import where


@pytest.fixture(scope="module")
def tiny():
    if where("tiny") != "bundled":
        pytest.skip("this build does not bundle the tiny weights")
    return neurcodec.load("tiny")


def test_bundled_model_round_trips_an_image(tiny):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8))
    data = tiny.encode(image)
    out = tiny.decode(data, steps=2)
    assert (out.size, out.mode) == (image.size, image.mode)
    assert neurcodec.describe(data)["model"] == "tiny"


def test_bundled_model_reconstructs_a_photo_far_better_than_its_mean_colour(tiny, kodak_dir):
    image = Image.open(kodak_dir / "kodim23.png").convert("RGB").crop((128, 64, 384, 256))
    ref = np.asarray(image)
    flat = np.broadcast_to(ref.reshape(-1, 3).mean(0).round().astype(np.uint8), ref.shape)
    out = np.asarray(tiny.decode(tiny.encode(image, quality=50), steps=1))
    assert psnr(ref, out) > psnr(ref, flat) + 3
