"""Tiled decoding for large images: stage B and stage A run on overlapping tiles.

Memory, not arithmetic, is what tiling saves: activations scale with the tile, not the image.

- The sampler itself always runs on the full-size latent: the initial noise, every step's
  noise, the CFG combine (whose std rescale is a whole-image statistic) and the update are
  exactly those of an untiled decode. Only the network evaluation is split: each tile of the
  noisy latent is denoised with its slice of the full-size conditioning map, and the tile
  predictions are blended into one full-size prediction before the sampler sees it.
- Stage A decodes latent tiles into pixel tiles, blended the same way at 4× the scale.

Blending: across each overlap two neighbours cross-fade linearly over the middle half of the
overlap; the outer quarter at a tile's edge, computed without context beyond the tile, gets
weight 0 (so a function that reaches less than a quarter overlap is reproduced exactly). At the
image border a tile keeps weight 1. Weights are separable (row ramp × column ramp) and the
sum is normalised by the separable weight total: a convex combination everywhere, no step at
a seam.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from neurcodec.errors import UsageError

__all__ = [
    "TileConfig",
    "Span",
    "spans",
    "span_weights",
    "tiled_map",
    "tiled_stage_b",
    "tiled_stage_a_decode",
    "tiled_stage_a_encode",
]

Span = tuple[int, int]  # [start, stop) along one axis
TileFn = Callable[[Tensor, slice, slice], Tensor]


@dataclass(frozen=True)
class TileConfig:
    """Tile sizes and overlaps in f4 latent pixels (one latent pixel = 4×4 image pixels; an f8
    stage A's tiles are scaled to cover the same image pixels, see `stage_a_tiles`).

    Tiles are used only when the latent area exceeds `min_latent_area` (default: larger than
    a 1024×1024 image), so ordinary images decode exactly as without tiling. Stage B tiles
    are `align`-aligned (a multiple of stage B's patch size, so each tile takes an exact slice
    of the conditioning grid; 8 keeps every U-Net level's grid the parity it has untiled).
    """

    stage_b_tile: int = 256
    stage_b_overlap: int = 32
    stage_a_tile: int = 256
    stage_a_overlap: int = 16
    align: int = 8
    min_latent_area: int = 256 * 256

    def __post_init__(self) -> None:
        for name in ("stage_b", "stage_a"):
            tile, overlap = getattr(self, f"{name}_tile"), getattr(self, f"{name}_overlap")
            if tile < 1 or not 0 <= overlap < tile:
                raise UsageError(f"{name} tiles need 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
        if self.align < 1 or self.stage_b_tile % self.align:
            raise UsageError(f"stage_b_tile ({self.stage_b_tile}) must be a multiple of align ({self.align})")

    def wants_tiles(self, latent_hw: Sequence[int]) -> bool:
        """Whether a latent of this size is decoded in tiles."""
        return latent_hw[0] * latent_hw[1] > self.min_latent_area

    def forced(self) -> TileConfig:
        """The same tiles, used at every size (for tests and benchmarks)."""
        return replace(self, min_latent_area=0)


def spans(length: int, tile: int, overlap: int, align: int = 1) -> list[Span]:
    """Cover [0, length) with tiles of `tile` (the last one ends at `length`), consecutive
    tiles overlapping by at least `overlap`, starts multiples of `align` where possible."""
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    stride = (length - tile) / (count - 1)
    starts = [min(length - tile, round(i * stride / align) * align) for i in range(count - 1)]
    starts.append(length - tile)
    return [(s, s + tile) for s in starts]


def _ramp(distance: Tensor, overlap: float) -> Tensor:
    # 0 over the outer quarter of the overlap (a tile's edge lacks context), linear over the
    # middle half, 1 beyond: two neighbours' ramps over one overlap sum to exactly 1.
    return ((distance - overlap / 4) / (overlap / 2)).clamp(0, 1)


def span_weights(axis: Sequence[Span], scale: int = 1) -> list[Tensor]:
    """Blend weight of every span (at `scale`× resolution): a ramp across the middle half of
    the actual overlap with each neighbour, 1 elsewhere and at the image border. Every point
    has a positive total weight: where one tile's ramp is 0 its neighbour's is 1."""
    weights = []
    for i, (start, stop) in enumerate(axis):
        n = (stop - start) * scale
        w = torch.ones(n)
        pos = torch.arange(n, dtype=torch.float32) + 0.5
        if i > 0 and axis[i - 1][1] > start:
            w = torch.minimum(w, _ramp(pos, (axis[i - 1][1] - start) * scale))
        if i + 1 < len(axis) and stop > axis[i + 1][0]:
            w = torch.minimum(w, _ramp(n - pos, (stop - axis[i + 1][0]) * scale))
        weights.append(w)
    return weights


def _axis_total(axis: Sequence[Span], weights: Sequence[Tensor], length: int, scale: int) -> Tensor:
    total = torch.zeros(length * scale)
    for (start, stop), w in zip(axis, weights):
        total[start * scale : stop * scale] += w
    return total


def tiled_map(
    fn: TileFn,
    x: Tensor,
    *,
    tile: int,
    overlap: int,
    align: int = 1,
    scale: int = 1,
) -> Tensor:
    """Apply `fn(x_tile, rows, cols)` to overlapping tiles of `x` (B, C, H, W) and blend.

    `rows`/`cols` are the tile's slices of `x`; `fn` returns (B, C', h·scale, w·scale) for a
    tile of h×w. Returns the blended (B, C', H·scale, W·scale) in float32.
    """
    height, width = x.shape[-2:]
    rows = spans(height, tile, overlap, align)
    cols = spans(width, tile, overlap, align)
    row_w = span_weights(rows, scale)
    col_w = span_weights(cols, scale)
    # Separable weights ⇒ the total weight at (y, x) is row_total(y) · col_total(x).
    norm_r = _axis_total(rows, row_w, height, scale)
    norm_c = _axis_total(cols, col_w, width, scale)
    out: Tensor | None = None
    for (r0, r1), wr in zip(rows, row_w):
        for (c0, c1), wc in zip(cols, col_w):
            pred = fn(x[..., r0:r1, c0:c1], slice(r0, r1), slice(c0, c1)).float()
            if out is None:
                out = torch.zeros(*pred.shape[:-2], height * scale, width * scale, device=pred.device)
            weight = (wr[:, None] * wc[None, :]).to(pred.device)
            out[..., r0 * scale : r1 * scale, c0 * scale : c1 * scale].add_(pred * weight)
    assert out is not None
    return out.div_((norm_r[:, None] * norm_c[None, :]).clamp_min(1e-12).to(out.device))


def tiled_stage_b(
    stage_b: torch.nn.Module,
    conditions,
    config: TileConfig,
    forward: Callable[..., Tensor] | None = None,
) -> Callable[[Tensor, Tensor], Tensor]:
    """`model(x, r)` that evaluates `stage_b` tile by tile with slices of full-size `conditions`.

    `conditions` comes from `stage_b.encode_conditions(..., latent_hw=<full latent size>)`;
    the clip keys/values are shared, the spatial map is sliced per tile (exactly the map the
    untiled model adds there). `forward(x, r, cond=...)` replaces `stage_b(...)` (e.g. a
    compiled or layout-converting wrapper).
    """
    forward = forward or stage_b
    from neurcodec.models.stage_b import StageBConditions

    patch = stage_b.patch_size
    if config.align % patch:
        raise UsageError(f"tile alignment {config.align} is not a multiple of stage B's patch size {patch}")

    def model(x: Tensor, r: Tensor) -> Tensor:
        def one(tile: Tensor, rows: slice, cols: slice) -> Tensor:
            spatial = conditions.spatial[..., rows.start // patch : rows.stop // patch, cols.start // patch : cols.stop // patch]
            cond = StageBConditions(spatial=spatial, clip=conditions.clip, clip_kv=conditions.clip_kv, latent_hw=tuple(tile.shape[-2:]))
            return forward(tile, r, cond=cond)

        return tiled_map(one, x, tile=config.stage_b_tile, overlap=config.stage_b_overlap, align=config.align).to(x.dtype)

    return model


def tiled_stage_a_decode(stage_a: torch.nn.Module, z: Tensor, config: TileConfig) -> Tensor:
    """`stage_a.decode(z)` computed on latent tiles and blended at pixel resolution (a latent
    pixel decodes to downscale × downscale image pixels)."""

    def one(tile: Tensor, rows: slice, cols: slice) -> Tensor:
        return stage_a.decode(tile)

    tile, overlap = stage_a_tiles(config, stage_a.downscale)
    return tiled_map(one, z, tile=tile, overlap=overlap, scale=stage_a.downscale)


def stage_a_tiles(config: TileConfig, downscale: int) -> tuple[int, int]:
    """Stage A tile and overlap in this stage A's latent pixels. The config counts f4 latent
    pixels; an f8 stage A (TAEF2) gets half as many per side, so a tile covers the same image
    pixels and its full-resolution activations the same memory (256 f8 latent pixels would be
    2048² pixels × 64 channels: over 1 GiB per activation, 4.5 GiB peak at 4096²)."""
    tile = max(1, config.stage_a_tile * 4 // downscale)
    overlap = min(tile - 1, -(-config.stage_a_overlap * 4 // downscale))
    return tile, overlap


def tiled_stage_a_encode(stage_a: torch.nn.Module, pixels: Tensor, config: TileConfig) -> Tensor:
    """`stage_a.encode(pixels)[0]` computed on overlapping pixel tiles and blended at latent
    resolution (an encoder that reads stage A's latent needs it for the whole image: at 8K
    the full-resolution activations of the TAESD encoder alone would take tens of GB)."""
    d = stage_a.downscale
    grid = pixels.new_zeros(1, 1, pixels.shape[-2] // d, pixels.shape[-1] // d)

    def one(tile: Tensor, rows: slice, cols: slice) -> Tensor:
        return stage_a.encode(pixels[..., rows.start * d : rows.stop * d, cols.start * d : cols.stop * d])[0]

    tile, overlap = stage_a_tiles(config, d)
    return tiled_map(one, grid, tile=tile, overlap=overlap)
