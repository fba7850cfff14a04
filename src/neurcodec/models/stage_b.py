"""Stage B: the diffusion U-Net that generates Stage A latents from the EfficientNet latent.

Structure, key names and forward semantics follow the official Stable Cascade Stage B
(`shared/reference/STABLE_CASCADE_NOTES.md` §6); defaults are the full "3B" config.

For sampling, the conditioning (effnet/pixels maps and the CLIP keys/values of every attention
block) does not change between steps: `encode_conditions` computes it once and
`forward(x, r, cond=...)` reuses it. The plain `forward(x, r, effnet, clip, pixels)` runs the
same two halves, so both paths agree bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurcodec.models.blocks import AttnBlock, LayerNorm2d, ResBlock, TimestepBlock, timestep_embedding
from neurcodec.models.direct_head import DirectHead

__all__ = ["StageB", "StageBConditions"]


@dataclass(frozen=True)
class StageBConditions:
    """Step-invariant conditioning for one batch, from `StageB.encode_conditions`.

    `spatial` is the effnet + pixels map added to the embedded latent (B, c_hidden[0], h, w)
    at the embedding grid of latent size `latent_hw`; `clip` holds the mapped clip tokens;
    `clip_kv[i]` the keys/values of those tokens for attention block i.
    """

    spatial: Tensor
    clip: Tensor
    clip_kv: tuple[Tensor, ...]
    latent_hw: tuple[int, int]

    @property
    def batch_size(self) -> int:
        return self.spatial.shape[0]


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    # The reference resizes in float32 (align_corners=True); keep the caller's dtype after.
    return F.interpolate(x.float(), size=tuple(size), mode="bilinear", align_corners=True).to(x.dtype)


class StageB(nn.Module):
    """The denoising U-Net over the stage A latent (B, c_in, H, W), H and W even; what its
    output means (ε for the official models, x0 for the ones trained here) is the family's GDF
    target (`diffusion` in weights.json).

    Level types: 'C' ResBlock, 'T' TimestepBlock, 'A' AttnBlock. `blocks[0]`/`block_repeat[0]`
    are per down level (shallow first); `blocks[1]`/`block_repeat[1]` per up level, deepest
    first.
    """

    def __init__(
        self,
        c_in: int = 4,
        c_out: int = 4,
        c_r: int = 64,
        patch_size: int = 2,
        c_cond: int = 1280,
        c_hidden: Sequence[int] = (320, 640, 1280, 1280),
        nhead: Sequence[int] = (-1, -1, 20, 20),
        blocks: Sequence[Sequence[int]] = ((2, 6, 28, 6), (6, 28, 6, 2)),
        block_repeat: Sequence[Sequence[int]] = ((1, 1, 1, 1), (3, 3, 2, 2)),
        level_config: Sequence[str] = ("CT", "CT", "CTA", "CTA"),
        c_clip: int = 1280,
        c_clip_seq: int = 4,
        c_effnet: int = 16,
        c_pixels: int = 3,
        kernel_size: int = 3,
        dropout: Sequence[float] = (0, 0, 0.1, 0.1),
        self_attn: bool = True,
        t_conds: Sequence[str] = ("sca",),
        c_direct: Sequence[int] = (),
        direct_refine: int = 0,
    ) -> None:
        super().__init__()
        c_hidden = list(c_hidden)
        levels = len(c_hidden)
        for name, seq in (("nhead", nhead), ("level_config", level_config), ("dropout", dropout)):
            if len(seq) != levels:
                raise ValueError(f"{name} has {len(seq)} entries, c_hidden has {levels}")
        self.c_r = c_r
        self.c_clip_seq = c_clip_seq
        self.t_conds = tuple(t_conds)
        self.blocks = [list(b) for b in blocks]
        self.block_repeat = [list(b) for b in block_repeat]
        self.level_config = list(level_config)
        self._attn_blocks: list[AttnBlock] = []

        self.effnet_mapper = nn.Sequential(
            nn.Conv2d(c_effnet, c_hidden[0] * 4, kernel_size=1),
            nn.GELU(),
            nn.Conv2d(c_hidden[0] * 4, c_hidden[0], kernel_size=1),
            LayerNorm2d(c_hidden[0], elementwise_affine=False, eps=1e-6),
        )
        self.pixels_mapper = nn.Sequential(
            nn.Conv2d(c_pixels, c_hidden[0] * 4, kernel_size=1),
            nn.GELU(),
            nn.Conv2d(c_hidden[0] * 4, c_hidden[0], kernel_size=1),
            LayerNorm2d(c_hidden[0], elementwise_affine=False, eps=1e-6),
        )
        self.clip_mapper = nn.Linear(c_clip, c_cond * c_clip_seq)
        self.clip_norm = nn.LayerNorm(c_cond, elementwise_affine=False, eps=1e-6)
        self.embedding = nn.Sequential(
            nn.PixelUnshuffle(patch_size),
            nn.Conv2d(c_in * patch_size**2, c_hidden[0], kernel_size=1),
            LayerNorm2d(c_hidden[0], elementwise_affine=False, eps=1e-6),
        )

        def make_block(kind: str, c: int, level: int, c_skip: int = 0) -> nn.Module:
            if kind == "C":
                return ResBlock(c, c_skip, kernel_size=kernel_size, dropout=dropout[level])
            if kind == "A":
                block = AttnBlock(c, c_cond, nhead[level], self_attn=self_attn, dropout=dropout[level])
                block.attn_index = len(self._attn_blocks)
                self._attn_blocks.append(block)
                return block
            if kind == "T":
                return TimestepBlock(c, c_r, conds=self.t_conds)
            raise ValueError(f"unknown block type {kind!r} in level_config")

        self.down_blocks = nn.ModuleList()
        self.down_downscalers = nn.ModuleList()
        self.down_repeat_mappers = nn.ModuleList()
        for i in range(levels):
            if i > 0:
                self.down_downscalers.append(
                    nn.Sequential(
                        LayerNorm2d(c_hidden[i - 1], elementwise_affine=False, eps=1e-6),
                        nn.Conv2d(c_hidden[i - 1], c_hidden[i], kernel_size=2, stride=2),
                    )
                )
            else:
                self.down_downscalers.append(nn.Identity())
            kinds = level_config[i]
            self.down_blocks.append(
                nn.ModuleList(
                    make_block(kinds[n % len(kinds)], c_hidden[i], i) for n in range(blocks[0][i] * len(kinds))
                )
            )
            self.down_repeat_mappers.append(
                nn.ModuleList(nn.Conv2d(c_hidden[i], c_hidden[i], kernel_size=1) for _ in range(block_repeat[0][i] - 1))
            )

        self.up_blocks = nn.ModuleList()
        self.up_upscalers = nn.ModuleList()
        self.up_repeat_mappers = nn.ModuleList()
        for i in reversed(range(levels)):
            u = levels - 1 - i
            if i > 0:
                self.up_upscalers.append(
                    nn.Sequential(
                        LayerNorm2d(c_hidden[i], elementwise_affine=False, eps=1e-6),
                        nn.ConvTranspose2d(c_hidden[i], c_hidden[i - 1], kernel_size=2, stride=2),
                    )
                )
            else:
                self.up_upscalers.append(nn.Identity())
            kinds = level_config[i]
            level_blocks = nn.ModuleList()
            for n in range(blocks[1][u] * len(kinds)):
                # Only the first ResBlock of every up level but the deepest takes the skip.
                c_skip = c_hidden[i] if n == 0 and i < levels - 1 else 0
                level_blocks.append(make_block(kinds[n % len(kinds)], c_hidden[i], i, c_skip))
            self.up_blocks.append(level_blocks)
            self.up_repeat_mappers.append(
                nn.ModuleList(nn.Conv2d(c_hidden[i], c_hidden[i], kernel_size=1) for _ in range(block_repeat[1][u] - 1))
            )

        self.clf = nn.Sequential(
            LayerNorm2d(c_hidden[0], elementwise_affine=False, eps=1e-6),
            nn.Conv2d(c_hidden[0], c_out * patch_size**2, kernel_size=1),
            nn.PixelShuffle(patch_size),
        )
        self.reset_parameters()
        # Optional (not in the official models): see `direct_estimate`.
        self.direct_head = DirectHead(c_effnet, c_out, c_direct, direct_refine) if c_direct else None

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The reference init, kept for from-scratch training of any size.

        xavier-uniform weights and zero biases everywhere; small normal init for the
        conditioning mappers; the output conv, every TimestepBlock linear and every GRN start
        at zero and ResBlock output projections are scaled by sqrt(1/Σ down blocks). So a fresh
        model predicts ε̂ = 0 and each block starts near the identity (the adaLN-zero / ReZero
        recipe): the first optimiser step moves `clf`, after which gradients reach every
        block. That is a stable start for a small model trained from scratch too.
        """
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif hasattr(m, "reset_parameters") and m is not self:
                m.reset_parameters()  # attention in_proj (xavier, zero bias)
        for m in self.modules():
            if m.__class__.__name__ == "GlobalResponseNorm":
                nn.init.zeros_(m.gamma)
                nn.init.zeros_(m.beta)
        nn.init.normal_(self.clip_mapper.weight, std=0.02)
        for mapper in (self.effnet_mapper, self.pixels_mapper):
            nn.init.normal_(mapper[0].weight, std=0.02)
            nn.init.normal_(mapper[2].weight, std=0.02)
        nn.init.xavier_uniform_(self.embedding[1].weight, gain=0.02)
        nn.init.zeros_(self.clf[1].weight)
        scale = math.sqrt(1 / sum(self.blocks[0]))
        for level in list(self.down_blocks) + list(self.up_blocks):
            for block in level:
                if isinstance(block, ResBlock):
                    block.channelwise[-1].weight.mul_(scale)
                elif isinstance(block, TimestepBlock):
                    for layer in block.modules():
                        if isinstance(layer, nn.Linear):
                            nn.init.zeros_(layer.weight)

    # ------------------------------------------------------------ conditions
    def r_embedding(self, r: Tensor, **t_conds: Tensor | float | None) -> Tensor:
        """`concat(emb(r), emb(cond) for each t_cond)`; a missing t_cond counts as 0."""
        unknown = set(t_conds) - set(self.t_conds)
        if unknown:
            raise TypeError(f"unknown noise conditions {sorted(unknown)}; this model takes {list(self.t_conds)}")
        parts = [timestep_embedding(r, self.c_r)]
        for name in self.t_conds:
            value = t_conds.get(name)
            if value is None:
                value = torch.zeros_like(r)
            elif not isinstance(value, Tensor):
                value = torch.full_like(r, float(value))
            parts.append(timestep_embedding(value.to(r.device), self.c_r))
        return torch.cat(parts, dim=1)

    @property
    def patch_size(self) -> int:
        """Latent cells per token side (the embedding's pixel-unshuffle)."""
        return self.embedding[0].downscale_factor

    @property
    def levels(self) -> int:
        """Resolution levels of the U-Net: the latent grid divides by patch_size · 2^(levels − 1)."""
        return len(self.down_blocks)

    def clip_tokens(self, clip: Tensor) -> Tensor:
        """Pooled CLIP (B, c_clip) or (B, S, c_clip) → normalised tokens (B, S·c_clip_seq, c_cond)."""
        if clip.dim() == 2:
            clip = clip.unsqueeze(1)
        tokens = self.clip_mapper(clip).view(clip.size(0), clip.size(1) * self.c_clip_seq, -1)
        return self.clip_norm(tokens)

    def encode_conditions(
        self,
        effnet: Tensor,
        clip: Tensor,
        pixels: Tensor | None = None,
        *,
        latent_hw: Sequence[int],
    ) -> StageBConditions:
        """Everything that depends only on the conditioning, for latents of size `latent_hw`.

        `pixels` defaults to zeros (B, c_pixels, 8, 8) as in the reference (the mapper's
        biases still make that a non-zero map). Reuse the result for every sampling step.
        """
        patch = self.patch_size
        hw = (int(latent_hw[0]) // patch, int(latent_hw[1]) // patch)
        dtype = self.embedding[1].weight.dtype
        if pixels is None:
            pixels = torch.zeros(effnet.size(0), self.pixels_mapper[0].in_channels, 8, 8, device=effnet.device)
        # Resize the effnet map before its mapper, but the pixels map after its mapper.
        spatial = self.effnet_mapper(_resize(effnet.to(dtype), hw))
        spatial = spatial + _resize(self.pixels_mapper(pixels.to(dtype)), hw)
        tokens = self.clip_tokens(clip.to(dtype))
        kv = tuple(block.clip_kv(tokens) for block in self._attn_blocks)
        latent_hw = (int(latent_hw[0]), int(latent_hw[1]))
        return StageBConditions(spatial=spatial, clip=tokens, clip_kv=kv, latent_hw=latent_hw)

    def direct_estimate(self, effnet: Tensor, latent_hw: Sequence[int]) -> Tensor | None:
        """The direct head's estimate of the latent (B, c_out, *latent_hw), or None without one.

        With a head, the model is trained to generate the *residual* latent − estimate, so a
        sampler's result is added to this (the codec and the video path do).
        """
        if self.direct_head is None:
            return None
        dtype = self.embedding[1].weight.dtype
        estimate = self.direct_head(effnet.to(dtype))
        if tuple(estimate.shape[-2:]) != tuple(latent_hw):
            estimate = _resize(estimate, latent_hw)
        return estimate

    # --------------------------------------------------------------- forward
    def forward(
        self,
        x: Tensor,
        r: Tensor,
        effnet: Tensor | None = None,
        clip: Tensor | None = None,
        pixels: Tensor | None = None,
        *,
        cond: StageBConditions | None = None,
        **t_conds: Tensor | float | None,
    ) -> Tensor:
        """Predict ε for latent `x` (B, c_in, H, W) at noise condition `r` (B,).

        Give either `effnet` (B, c_effnet, h, w) + `clip` (+ optional `pixels`), or `cond`
        from `encode_conditions`. Extra keywords are the `t_conds` (e.g. `sca`).
        """
        if cond is None:
            if effnet is None or clip is None:
                raise TypeError("StageB.forward needs effnet and clip, or cond=encode_conditions(...)")
            cond = self.encode_conditions(effnet, clip, pixels, latent_hw=x.shape[-2:])
        elif effnet is not None or clip is not None or pixels is not None:
            raise TypeError("pass either cond= or effnet/clip/pixels, not both")
        elif tuple(x.shape[-2:]) != cond.latent_hw:
            raise ValueError(f"conditions were encoded for latents {cond.latent_hw}, got {tuple(x.shape[-2:])}")
        r_embed = self.r_embedding(r, **t_conds).to(cond.spatial.dtype)
        h = self.embedding(x.to(cond.spatial.dtype)) + cond.spatial
        levels = self._down_encode(h, r_embed, cond)
        h = self._up_decode(levels, r_embed, cond)
        return self.clf(h)

    def _run_block(self, block: nn.Module, h: Tensor, r_embed: Tensor, cond: StageBConditions,
                   skip: Tensor | None = None) -> Tensor:
        if isinstance(block, ResBlock):
            return block(h, skip)
        if isinstance(block, TimestepBlock):
            return block(h, r_embed)
        return block(h, clip_kv=cond.clip_kv[block.attn_index])

    def _down_encode(self, h: Tensor, r_embed: Tensor, cond: StageBConditions) -> list[Tensor]:
        outputs: list[Tensor] = []
        for level, downscaler, repmap in zip(self.down_blocks, self.down_downscalers, self.down_repeat_mappers):
            h = downscaler(h)
            for j in range(len(repmap) + 1):
                for block in level:
                    h = self._run_block(block, h, r_embed, cond)
                if j < len(repmap):
                    h = repmap[j](h)
            outputs.insert(0, h)  # deepest first, the up path's order
        return outputs

    def _up_decode(self, outputs: list[Tensor], r_embed: Tensor, cond: StageBConditions) -> Tensor:
        h = outputs[0]
        for u, (level, upscaler, repmap) in enumerate(zip(self.up_blocks, self.up_upscalers, self.up_repeat_mappers)):
            for j in range(len(repmap) + 1):
                for k, block in enumerate(level):
                    skip = outputs[u] if k == 0 and u > 0 and isinstance(block, ResBlock) else None
                    if skip is not None and h.shape[-2:] != skip.shape[-2:]:
                        # Odd grids: the transposed conv overshoots/undershoots the skip size.
                        h = _resize(h, skip.shape[-2:])
                    h = self._run_block(block, h, r_embed, cond, skip)
                if j < len(repmap):
                    h = repmap[j](h)
            h = upscaler(h)
        return h
