"""The image codec on the tiny2 layout: f8 stage A, encoder over its latent, colour thumbnail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from neurcodec.bitstream import dequantize, decode_latent, step_from_index


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((w, h), Image.BICUBIC)


@pytest.mark.parametrize("size", [(96, 64), (100, 70), (160, 128)])
def test_round_trip_restores_size_and_mode(random_codec_f8, size):
    image = _photo(*size)
    out = random_codec_f8.decode(random_codec_f8.encode(image, quality=80))
    assert out.size == image.size and out.mode == image.mode


def test_the_decode_keeps_the_thumbnail_the_file_carries(random_codec_f8):
    """Whatever stage A renders (here a flat grey), the output's 1/32 block means are the
    thumbnail the file carries, and that is the original's up to the quantizer."""
    codec = random_codec_f8
    image = _photo(160, 128, seed=3)  # whole 32-px blocks, no padding
    data = codec.encode(image, quality=90)
    dae = codec.read(data)
    symbols = decode_latent(dae.latent, dae.header.latent_shape)
    latent = torch.from_numpy(dequantize(symbols, step_from_index(dae.header.step_index)))[None]
    carried = codec.encoder.thumbnail(latent)[0]
    out = codec.pipeline.finish_pixels(latent, torch.full((1, 3, 128, 160), 0.5))
    decoded = F.avg_pool2d(out, 32)[0]
    original = F.avg_pool2d(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None], 32)[0]
    # The carried thumbnail is the original's up to the quantizer step (gain 16 at -q 90:
    # a few thousandths); matching leaves ~1/500 of the grey's error after its passes.
    assert (decoded - carried).abs().max() < 0.02
    assert (carried - original).abs().max() < 0.02
