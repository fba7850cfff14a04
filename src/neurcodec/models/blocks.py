"""Building blocks shared by Stage B (and usable by other diffusion U-Nets).

Parameter names mirror the Stable Cascade checkpoints, so `state_dict()` keys match the official
files; see `shared/reference/STABLE_CASCADE_NOTES.md` §5 for the block definitions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AttnBlock",
    "GlobalResponseNorm",
    "LayerNorm2d",
    "MultiheadAttentionParams",
    "ResBlock",
    "TimestepBlock",
    "timestep_embedding",
]


def timestep_embedding(r: Tensor, c_r: int = 64, max_positions: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of a noise condition `r` of shape (B,) into (B, c_r), in float32.

    The frequencies are `exp(-k·ln(max_positions)/(half-1))` applied to `r·max_positions`,
    sin half first; an odd `c_r` is zero-padded by one column.
    """
    r = r.float() * max_positions
    half = c_r // 2
    step = math.log(max_positions) / (half - 1)
    freqs = torch.arange(half, device=r.device).float().mul(-step).exp()
    args = r[:, None] * freqs[None, :]
    emb = torch.cat([args.sin(), args.cos()], dim=1)
    if c_r % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel axis of an NCHW tensor.

    Permuting to NHWC makes a channels_last tensor contiguous, so the norm runs on its natural
    memory layout without a copy.
    """

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2 GRN on channels-last input (B, H, W, C). Zero-initialised gamma/beta make
    it start as the identity."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        g = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        n = g / (g.mean(dim=-1, keepdim=True) + 1e-6)
        # γ·(x·n) + β + x as one pass over the (wide) activation: x·(1 + γ·n) + β.
        return torch.addcmul(self.beta, x, torch.addcmul(torch.ones_like(n), self.gamma, n))


class ResBlock(nn.Module):
    """Stage B residual block: depthwise conv → LN → (concat skip) → per-pixel MLP with GRN."""

    def __init__(self, c: int, c_skip: int = 0, kernel_size: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c, c, kernel_size, padding=kernel_size // 2, groups=c)
        self.norm = LayerNorm2d(c, elementwise_affine=False, eps=1e-6)
        self.channelwise = nn.Sequential(
            nn.Linear(c + c_skip, c * 4),
            nn.GELU(),
            GlobalResponseNorm(c * 4),
            nn.Dropout(dropout),
            nn.Linear(c * 4, c),
        )

    def forward(self, x: Tensor, x_skip: Tensor | None = None) -> Tensor:
        h = self.norm(self.depthwise(x))
        if x_skip is not None:
            h = torch.cat([h, x_skip], dim=1)
        h = self.channelwise(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + h


class TimestepBlock(nn.Module):
    """FiLM-style modulation `x·(1+a) + b` from the noise-condition embedding.

    `t` holds one `c_r`-wide chunk per condition: chunk 0 feeds `mapper`, chunk i+1 feeds
    `mapper_<conds[i]>`; the (a, b) halves of all mappers are summed.
    """

    def __init__(self, c: int, c_r: int, conds: Sequence[str] = ("sca",)) -> None:
        super().__init__()
        self.c_r = c_r
        self.conds = tuple(conds)
        self.mapper = nn.Linear(c_r, c * 2)
        for name in self.conds:
            setattr(self, f"mapper_{name}", nn.Linear(c_r, c * 2))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        a, b = self.mapper(t[:, : self.c_r])[:, :, None, None].chunk(2, dim=1)
        for i, name in enumerate(self.conds):
            chunk = t[:, (i + 1) * self.c_r : (i + 2) * self.c_r]
            ap, bp = getattr(self, f"mapper_{name}")(chunk)[:, :, None, None].chunk(2, dim=1)
            a, b = a + ap, b + bp
        return torch.addcmul(b, x, 1 + a)  # x·(1 + a) + b in one pass


class MultiheadAttentionParams(nn.Module):
    """The parameters of `nn.MultiheadAttention(c, nhead, bias=True)` under its exact names
    (`in_proj_weight`, `in_proj_bias`, `out_proj.*`), computed with fused SDPA instead of the
    module's own forward."""

    def __init__(self, c: int, nhead: int, dropout: float = 0.0) -> None:
        super().__init__()
        if c % nhead:
            raise ValueError(f"attention width {c} is not divisible by {nhead} heads")
        self.c = c
        self.nhead = nhead
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * c, c))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * c))
        self.out_proj = nn.Linear(c, c)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.MultiheadAttention's own init: xavier over the stacked q/k/v matrix, zero biases.
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def project_kv(self, tokens: Tensor) -> Tensor:
        """Keys and values of `tokens` (B, S, c) → (B, S, 2c); cacheable for fixed tokens."""
        c = self.c
        return F.linear(tokens, self.in_proj_weight[c:], self.in_proj_bias[c:])

    def forward(self, tokens: Tensor, extra_kv: Tensor | None, self_attn: bool = True) -> Tensor:
        """Attend from `tokens` (B, L, c) to [tokens (if self_attn); extra keys/values].

        `extra_kv` is the output of `project_kv` for the conditioning tokens (B, S, 2c).
        """
        c, nh = self.c, self.nhead
        bsz, length, _ = tokens.shape
        if self_attn:
            qkv = F.linear(tokens, self.in_proj_weight, self.in_proj_bias)
            q, kv = qkv.split([c, 2 * c], dim=-1)
            if extra_kv is not None:
                kv = torch.cat([kv, extra_kv], dim=1)
        else:
            if extra_kv is None:
                raise ValueError("cross-attention needs conditioning tokens")
            q = F.linear(tokens, self.in_proj_weight[:c], self.in_proj_bias[:c])
            kv = extra_kv
        k, v = kv.split([c, c], dim=-1)
        q = q.view(bsz, length, nh, c // nh).transpose(1, 2)
        k = k.reshape(bsz, -1, nh, c // nh).transpose(1, 2)
        v = v.reshape(bsz, -1, nh, c // nh).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(bsz, length, c)
        return self.out_proj(out)


class _Attention2D(nn.Module):
    """Container that only exists so parameter names read `attention.attn.*`."""

    def __init__(self, c: int, nhead: int, dropout: float) -> None:
        super().__init__()
        self.attn = MultiheadAttentionParams(c, nhead, dropout)


class AttnBlock(nn.Module):
    """Self-attention over image tokens plus cross-attention to the mapped CLIP tokens.

    Keys/values are [image tokens; SiLU→Linear(clip tokens)] when `self_attn`, image tokens
    first. `clip_kv` lets a sampler pass the conditioning keys/values precomputed once.
    """

    def __init__(self, c: int, c_cond: int, nhead: int, self_attn: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.norm = LayerNorm2d(c, elementwise_affine=False, eps=1e-6)
        self.attention = _Attention2D(c, nhead, dropout)
        self.kv_mapper = nn.Sequential(nn.SiLU(), nn.Linear(c_cond, c))

    def clip_kv(self, clip: Tensor) -> Tensor:
        """Projected keys/values (B, S, 2c) of the clip tokens (B, S, c_cond)."""
        return self.attention.attn.project_kv(self.kv_mapper(clip))

    def forward(self, x: Tensor, clip: Tensor | None = None, clip_kv: Tensor | None = None) -> Tensor:
        if clip_kv is None:
            if clip is None:
                raise ValueError("AttnBlock needs clip tokens or their precomputed keys/values")
            clip_kv = self.clip_kv(clip)
        bsz, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        out = self.attention.attn(tokens, clip_kv, self_attn=self.self_attn)
        return x + out.transpose(1, 2).reshape(bsz, c, h, w)
