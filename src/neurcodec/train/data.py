"""Training data: photos in memory, a map-style dataset of random crops, and which samples of
each global batch a process (and each of its accumulation micro-batches) trains on."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler, default_collate

from neurcodec import media

def find_images(data_dir: Path) -> list[Path]:
    """The training photos: every image file under `data_dir`, sorted."""
    return media.find_images(data_dir, recursive=True)


def load_images(paths: list[Path], min_side: int) -> list[Tensor]:
    """All training images as uint8 (3,H,W) tensors in memory (the set is small)."""
    images = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if min(im.size) < min_side:  # upscale tiny images so every crop is valid
                scale = min_side / min(im.size)
                im = im.resize((math.ceil(im.width * scale), math.ceil(im.height * scale)), Image.BICUBIC)
            images.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    return images


class CropDataset(Dataset):
    """Item i: a random `crop`² crop (aligned to `align` px, so cached stage A latents crop
    consistently) and random h-flip of image i mod N, as [0,1] floats; with `latents`, the
    matching crop of the image's stage A latent; with `own_crop`, a second crop of that side
    from the same image for the one-step samples. The crop is drawn from (seed, epoch, i): the
    same in every process, whichever process takes the item. The set repeats `repeats` times
    per epoch, so a global batch larger than the photo set still fills."""

    def __init__(self, images: list[Tensor], crop: int, align: int, seed: int, *, latents: list[Tensor] | None = None, own_crop: int = 0, repeats: int = 1) -> None:
        self.images, self.crop, self.align, self.seed = images, crop, align, seed
        self.latents, self.own_crop, self.repeats = latents, own_crop, repeats
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = random.Random(f"{self.seed}/{self.epoch}/{index}")
        i = index % len(self.images)
        item = self._crop(i, self.crop, rng, "")
        if self.own_crop:
            item.update(self._crop(i, self.own_crop, rng, "own_"))
        return item

    def _crop(self, i: int, side: int, rng: random.Random, prefix: str) -> dict[str, Tensor]:
        image = self.images[i]
        _, h, w = image.shape
        y = rng.randrange((h - side) // self.align + 1) * self.align
        x = rng.randrange((w - side) // self.align + 1) * self.align
        flip = rng.random() < 0.5
        pixels = image[:, y : y + side, x : x + side]
        item = {prefix + "pixels": (pixels.flip(-1) if flip else pixels).float() / 255.0}
        if self.latents is not None:
            d, q = self.align, side // self.align
            z = self.latents[i][:, y // d : y // d + q, x // d : x // d + q]
            item[prefix + "latents"] = z.flip(-1) if flip else z
        return item


class GlobalBatches:
    """Step k's global batch: the k-th run of `batch` items of the epoch's permutation
    (`DistributedSampler`, seeded: every process agrees on it). This process holds the items at
    global positions rank, rank + world, … of the batch (the sampler's interleaving), and
    accumulation micro-batch m of them every `accumulation`-th from m: N processes × A micro-
    batches see exactly the samples of one process with the whole batch."""

    def __init__(self, dataset: CropDataset, batch: int, *, world: int = 1, rank: int = 0, accumulation: int = 1, seed: int = 0) -> None:
        self.dataset, self.batch, self.world, self.rank, self.accumulation = dataset, batch, world, rank, accumulation
        self.sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.local = batch // world
        self.steps_per_epoch = len(self.sampler) // self.local
        self._epoch: int | None = None
        self._order: list[int] = []

    def micro_batches(self, step: int) -> list[tuple[dict[str, Tensor], list[int]]]:
        """This process's micro-batches of step `step`: (collated items, their global positions)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order, self._epoch = list(self.sampler), epoch
        self.dataset.set_epoch(epoch)
        mine = self._order[k * self.local : (k + 1) * self.local]
        rows = [self.rank + self.world * j for j in range(self.local)]
        out = []
        for m in range(self.accumulation):
            items, positions = mine[m :: self.accumulation], rows[m :: self.accumulation]
            out.append((default_collate([self.dataset[i] for i in items]), positions))
        return out


def repeats_for(images: int, batch: int) -> int:
    """How often the photo set repeats per epoch so that one epoch holds a global batch."""
    return max(1, math.ceil(batch / images))
