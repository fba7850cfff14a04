"""Dataset-scale encode and decode: many images in, sharded `.dae` rows out, on one machine or a
Ray cluster.

sources.py    what a job reads (folder tree, list file, WebDataset tars, Parquet) cut into units
storage.py    local and remote files through pyarrow's filesystems; atomic writes
shards.py     the output shards: Parquet rows or WebDataset tars
work.py       the batch functions: one unit in, one finished shard out (in-process or an actor)
engine.py     running units in this process or through a Ray Data actor pool
jobs.py       the driver: plan, resume, manifest, failures (`encode_dataset`, `decode_dataset`)
torch_data.py `DaeDataset`, a PyTorch IterableDataset over the shards (latents or images)
"""

from neurcodec.dataset.engine import Engine
from neurcodec.dataset.jobs import JobReport, decode_dataset, encode_dataset, read_manifest, shard_files, verify
from neurcodec.dataset.work import DecodeSettings, EncodeSettings, Placement


def __getattr__(name: str):
    if name == "DaeDataset":  # imports torch
        from neurcodec.dataset.torch_data import DaeDataset

        return DaeDataset
    raise AttributeError(f"module 'neurcodec.dataset' has no attribute {name!r}")


__all__ = [
    "DaeDataset", "DecodeSettings", "EncodeSettings", "Engine", "JobReport", "Placement",
    "decode_dataset", "encode_dataset", "read_manifest", "shard_files", "verify",
]
