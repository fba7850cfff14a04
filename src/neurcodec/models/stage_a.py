"""Stage A: the f4 VQGAN whose (pre-quantisation) latent Stage B learns to generate.

Layout and key names follow the official `stage_a.safetensors`
(`shared/reference/STABLE_CASCADE_NOTES.md` §3). Defaults are the official config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["StageA", "StageAResBlock", "VectorQuantizer"]


class StageAResBlock(nn.Module):
    """Stage A's residual block: gated LN → replicate-padded depthwise conv, then gated LN → MLP.

    The six `gammas` start at zero, so a fresh block is the identity (ReZero-style); that is
    the reference init and it trains from scratch without warm-up tricks.
    """

    def __init__(self, c: int, c_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(c, elementwise_affine=False, eps=1e-6)
        self.depthwise = nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(c, c, kernel_size=3, groups=c))
        self.norm2 = nn.LayerNorm(c, elementwise_affine=False, eps=1e-6)
        self.channelwise = nn.Sequential(nn.Linear(c, c_hidden), nn.GELU(), nn.Linear(c_hidden, c))
        self.gammas = nn.Parameter(torch.zeros(6))

    @staticmethod
    def _norm(x: Tensor, norm: nn.LayerNorm) -> Tensor:
        return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        g = self.gammas
        t = self._norm(x, self.norm1) * (1 + g[0]) + g[1]
        x = x + self.depthwise(t) * g[2]
        t = self._norm(x, self.norm2) * (1 + g[3]) + g[4]
        x = x + self.channelwise(t.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) * g[5]
        return x


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook lookup with a straight-through gradient.

    The codebook is a plain `nn.Embedding` so its key is `codebook.weight`.
    """

    def __init__(self, dim: int, codebook_size: int) -> None:
        super().__init__()
        self.codebook = nn.Embedding(codebook_size, dim)

    def forward(self, z: Tensor, dim: int = 1) -> tuple[Tensor, Tensor, Tensor]:
        """Quantise `z` along channel axis `dim`.

        Returns `(quantised, indices, vq_loss)`; `quantised` equals `codebook[indices]` exactly
        in value, while gradients reach both `z` and the codebook; `vq_loss` is the codebook
        term plus 0.25 × the commitment term.
        """
        zt = z.movedim(dim, -1)
        flat = zt.reshape(-1, zt.shape[-1])
        book = self.codebook.weight
        with torch.no_grad():
            # |c|² + |z|² − 2 z·c, the reference's distance; argmin over codebook rows.
            dist = torch.addmm(
                (book * book).sum(1)[None, :] + (flat * flat).sum(1, keepdim=True),
                flat,
                book.t(),
                alpha=-2.0,
                beta=1.0,
            )
            indices = dist.argmin(dim=1)
        q = F.embedding(indices, book)
        vq_loss = F.mse_loss(q, flat.detach()) + 0.25 * F.mse_loss(flat, q.detach())
        # q + (z − z): exactly q in value (x − x == 0), but the gradient also flows to z.
        q = q + (flat - flat.detach())
        q = q.view(zt.shape).movedim(-1, dim)
        return q, indices.view(zt.shape[:-1]), vq_loss


class StageA(nn.Module):
    """VQGAN f4 (levels=2): image in [0,1] (B,3,H,W) ⇄ latent (B,c_latent,H/4,W/4)."""

    def __init__(
        self,
        levels: int = 2,
        bottleneck_blocks: int = 12,
        c_hidden: int = 384,
        c_latent: int = 4,
        codebook_size: int = 8192,
        scale_factor: float = 0.43,
    ) -> None:
        super().__init__()
        self.c_latent = c_latent
        self.downscale = 2**levels
        self.scale_factor = scale_factor
        self.codebook_size = codebook_size
        c_levels = [c_hidden // (2**i) for i in reversed(range(levels))]

        self.in_block = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(3 * 4, c_levels[0], kernel_size=1))
        down: list[nn.Module] = []
        for i in range(levels):
            if i > 0:
                down.append(nn.Conv2d(c_levels[i - 1], c_levels[i], kernel_size=4, stride=2, padding=1))
            down.append(StageAResBlock(c_levels[i], c_levels[i] * 4))
        down.append(
            nn.Sequential(
                nn.Conv2d(c_levels[-1], c_latent, kernel_size=1, bias=False),
                nn.BatchNorm2d(c_latent),  # standardises the latent that Stage B models
            )
        )
        self.down_blocks = nn.Sequential(*down)
        self.vquantizer = VectorQuantizer(c_latent, codebook_size)

        up: list[nn.Module] = [nn.Sequential(nn.Conv2d(c_latent, c_levels[-1], kernel_size=1))]
        for i in range(levels):
            c = c_levels[levels - 1 - i]
            for _ in range(bottleneck_blocks if i == 0 else 1):
                up.append(StageAResBlock(c, c * 4))
            if i < levels - 1:
                up.append(nn.ConvTranspose2d(c, c_levels[levels - 2 - i], kernel_size=4, stride=2, padding=1))
        self.up_blocks = nn.Sequential(*up)
        self.out_block = nn.Sequential(nn.Conv2d(c_levels[0], 3 * 4, kernel_size=1), nn.PixelShuffle(2))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Reference init: PyTorch defaults, except xavier-uniform weights and zero biases
        inside the residual blocks, whose gammas start at zero."""
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        for block in self.modules():
            if isinstance(block, StageAResBlock):
                for m in block.modules():
                    if isinstance(m, (nn.Linear, nn.Conv2d)):
                        nn.init.xavier_uniform_(m.weight)
                        nn.init.zeros_(m.bias)
                nn.init.zeros_(block.gammas)

    def encode_raw(self, x: Tensor) -> Tensor:
        """The BatchNorm output before scaling (the space the codebook lives in)."""
        return self.down_blocks(self.in_block(x))

    def encode(
        self, x: Tensor, quantize: bool = False
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
        """Encode an image in [0,1].

        `quantize=False` → `(latent, None, None, None)` with `latent = raw / scale_factor`, the
        Stage B target. `quantize=True` → `(codebook[idx]/scale, raw/scale, idx, vq_loss)`.
        """
        raw = self.encode_raw(x)
        if not quantize:
            return raw / self.scale_factor, None, None, None
        q, indices, vq_loss = self.vquantizer(raw, dim=1)
        return q / self.scale_factor, raw / self.scale_factor, indices, vq_loss

    def decode(self, z: Tensor) -> Tensor:
        """Latent (in the scaled space) → image, unclamped. Never quantises."""
        return self.out_block(self.up_blocks(z * self.scale_factor))

    def forward(self, x: Tensor, quantize: bool = False) -> tuple[Tensor, Tensor | None]:
        """Autoencode: `(reconstruction, vq_loss)`; decodes the quantised latent if asked."""
        z, _, _, vq_loss = self.encode(x, quantize)
        return self.decode(z), vq_loss
