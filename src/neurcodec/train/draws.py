"""A step's random numbers as a function of (seed, step, sample position in the global batch).

Every random draw of a training step — quantiser steps and noise, CFG dropout, diffusion times
and noise, the one-step noise, pixel-loss windows — goes through `Draws`: it draws the global
batch's numbers from a generator seeded by the run seed and the step, and hands each process
(and each accumulation micro-batch) the rows of its own samples. So N processes train exactly
the samples and noise one process would with the same global batch, and a resumed run needs no
random state to continue where it stopped.
"""

from __future__ import annotations

import torch
from torch import Tensor


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed for (run seed, step, stream); streams keep the phases' draws apart."""
    return (seed * 1_000_003 + stream * 7_919 + step * 104_729 + 1) % (2**63)


class Draws:
    """Random tensors for the samples at global positions `rows` of a `batch`-sample step.

    Every call draws for all `batch` samples (or the first `first` of them, for draws that
    only some samples need) and keeps this share's rows, so the generator advances the same
    way in every process."""

    def __init__(self, seed: int, step: int, batch: int, rows: list[int], device: torch.device, stream: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(step_seed(seed, step, stream))
        self.batch, self.rows, self.device = batch, rows, device

    def take(self, values: Tensor, first: int | None = None) -> Tensor:
        """This share's rows of `values`, drawn for the whole batch (or its first `first`)."""
        rows = [r for r in self.rows if first is None or r < first]
        return values[rows].to(self.device)

    def rand(self, *shape: int, first: int | None = None) -> Tensor:
        """U[0,1) of shape (samples, *shape)."""
        return self.take(torch.rand(first or self.batch, *shape, generator=self.generator), first)

    def randn(self, *shape: int, first: int | None = None) -> Tensor:
        """N(0,1) of shape (samples, *shape)."""
        return self.take(torch.randn(first or self.batch, *shape, generator=self.generator), first)

    def randint(self, high: int, first: int | None = None) -> list[int]:
        """One integer in [0, high) per sample."""
        return self.take(torch.randint(high, (first or self.batch,), generator=self.generator), first).tolist()

    def count(self, first: int) -> int:
        """How many of the first `first` samples of the global batch are this share's."""
        return sum(r < first for r in self.rows)
