"""Latent search: a slower encode that finds a latent whose decode is closer to the photo.

The encoder maps pixels to the conditioning latent in one pass. The search then takes gradient
steps on that latent through the model's deterministic decode path (stage B's direct head, the
stage A decoder, the thumbnail match), with the quantizer in the loop (straight-through
rounding), towards higher MS-SSIM and lower squared error against the photo. The file format and
the decoder do not change, so such a file decodes anywhere a plain one does; only the encode
does more work (the trade `cjxl -e` and `avifenc --speed` offer). Measured on Kodak
(`benchmarks/latent_search.py`): at the same bytes the decode gains MS-SSIM and PSNR; at the same
quality the latent costs more bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from neurcodec.errors import UsageError
from neurcodec.losses import ms_ssim_mse

# The backward pass through stage A's decoder keeps every activation of the whole picture (it
# is not tiled). Measured peak RSS (tiny2, fp32): 2.4 GB at 768×512, 6.4 GB at 1536×1024, so
# ~3.4 GB per megapixel: up to 1080p (~8 GB).
MAX_SEARCH_PIXELS = 2_100_000
LEARNING_RATE = 0.1  # Adam's step, in quantizer steps: a fraction of one bin per iteration
MSE_WEIGHT = 10.0  # keeps colour and PSNR in the loss beside MS-SSIM (1 − MS-SSIM ≈ 0.2, MSE ≈ 0.006)


def check_searchable(pipeline, width: int, height: int) -> None:
    """Refuse what latent search cannot do: a model without a direct decode path, a picture too big."""
    if pipeline.stage_b.direct_head is None:
        raise UsageError(f"model {pipeline.family.name!r} has no direct decode path to search through; --search-steps needs tiny2")
    if width * height > MAX_SEARCH_PIXELS:
        raise UsageError(
            f"--search-steps works on pictures up to {MAX_SEARCH_PIXELS / 1e6:.1f} Mpx (its backward pass is not tiled: ~3.4 GB a megapixel); "
            f"this one is {width}×{height}"
        )


def search_latent(
    pipeline,
    pixels: torch.Tensor,
    latent: torch.Tensor,
    step: float,
    iterations: int,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """[0,1] pixels (1,3,H,W) and their encoder latent (1,16,h,w) → the latent found (same
    shape, float32 on the CPU) for quantizer step `step`, after `iterations` Adam steps."""
    _, _, height, width = pixels.shape
    check_searchable(pipeline, width, height)
    target = pixels.to(pipeline.device, torch.float32)
    y = latent.to(pipeline.device, torch.float32).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([y], lr=LEARNING_RATE * step)
    if progress:
        progress(0, iterations)
    for i in range(iterations):
        quantized = y + (torch.round(y / step) * step - y).detach()  # straight-through rounding
        loss = ms_ssim_mse(pipeline.direct_decode(quantized, (width, height)), target, MSE_WEIGHT)
        optimizer.zero_grad()
        loss.backward(inputs=[y])  # the latent's gradient only: the model's weights get none
        optimizer.step()
        if progress:
            progress(i + 1, iterations)
    return y.detach().float().cpu()
