"""Reading an encoded dataset back in PyTorch: an `IterableDataset` over its shards.

    from neurcodec.dataset import DaeDataset
    loader = DataLoader(DaeDataset("out/", output="latent"), batch_size=None, num_workers=4)

Shards are split across DataLoader workers (and across distributed ranks with `rank` /
`world_size`), so every row is read exactly once per epoch. `output="latent"` yields the
dequantized conditioning latents — parsing and entropy decoding only, no model and no diffusion:
the cheap path for training in latent space (as Würstchen's stage C does). `output="image"`
runs the diffusion decode (the model loads once per worker) and yields what `neurcodec decode`
writes, as a tensor (or through `transform`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from neurcodec.dataset import jobs, shards

OUTPUTS = ("latent", "image", "dae")


class DaeDataset(IterableDataset):
    """Rows of a `neurcodec dataset encode` output: dicts with `key`, `source`, `width`,
    `height`, `mode`, and `latent` (float32 16×h×w), `image` (decoded) or `dae` (the bytes)."""

    def __init__(
        self,
        root: str,
        *,
        output: str = "latent",
        model: str | None = None,
        device: str = "cpu",
        steps: int | None = None,
        guidance: float | None = None,
        sampler: str | None = None,
        seed: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.files = jobs.shard_files(root)
        self.output = output
        self.model = model
        self.device = device
        self.decode_options = dict(steps=steps, guidance=guidance, sampler=sampler, seed=seed)
        self.transform = transform
        self.rank, self.world_size = rank, world_size
        self._codecs: dict[str, Any] = {}

    def my_files(self) -> list[str]:
        """The shard files this process (rank × DataLoader worker) reads."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return self.files[self.rank * workers + worker :: self.world_size * workers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for uri in self.my_files():
            for row in shards.read_file(uri):
                yield self._item(row)

    def _item(self, row: dict[str, Any]) -> dict[str, Any]:
        item = {k: row[k] for k in ("key", "source", "width", "height", "mode")}
        if self.output == "dae":
            item["dae"] = row["dae"]
        elif self.output == "latent":
            from neurcodec.bitstream import read_image
            from neurcodec.info import dequantized_latent

            item["latent"] = torch.from_numpy(dequantized_latent(read_image(row["dae"])))
        else:
            image = self._codec(row["dae"]).decode(row["dae"], **self.decode_options)
            item["image"] = self.transform(image) if self.transform else _to_tensor(image)
        return item

    def _codec(self, data: bytes) -> Any:
        from neurcodec.codec import load_on
        from neurcodec.info import describe

        name = self.model or describe(data)["model"]
        if name not in self._codecs:
            self._codecs[name] = load_on(name, self.device)
        return self._codecs[name]


def _to_tensor(image: Any) -> torch.Tensor:
    """A PIL image as a C×H×W tensor of its own values (uint8, or int32 for 16-bit modes)."""
    import numpy as np

    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype == np.uint16:
        array = array.astype(np.int32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
