"""The batch functions of dataset jobs: one unit of work in, one finished shard out.

The same worker classes run in-process and as Ray actors: constructed once per process (the
model loads once), then called per unit. A call is idempotent — a unit whose shard is already
complete returns its record, and a unit re-run after a killed worker rewrites the same bytes — so
retries never lose or duplicate an image.

A shard is complete when both its record (`_neurcodec/shards/NAME.json`: counts, checksum,
failures) and its data are in place. Encode writes the record first and the shard file last
(atomically), so a visible shard file is always whole; decode writes its images and then the
record, the record marking the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import socket
import time
from dataclasses import dataclass
from typing import Any

from neurcodec import limits
from neurcodec.dataset import shards, sources, storage
from neurcodec.errors import NeurcodecError, OutputError, WeightsError

STATE = "_neurcodec"
# Errors of the job, not of one image: they stop it (and leave the shard undone, to resume).
JOB_ERRORS = (WeightsError, OutputError, MemoryError)  # pyarrow and Ray Data skip folders starting with "_" when reading DST


@dataclass(frozen=True)
class EncodeSettings:
    """What decides the bytes of an encode job (its identity, checked on resume)."""

    model: str
    quality: int | None = None
    bpp: float | None = None
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None
    seed: int | None = None
    output_format: str = "parquet"
    max_pixels: int | None = None
    model_digest: str | None = None  # the driver's weights digest (hex): a node with other weights refuses

    def codec_options(self) -> dict[str, Any]:
        return dict(quality=self.quality, bpp=self.bpp, steps=self.steps, guidance=self.guidance, sampler=self.sampler, seed=self.seed)


@dataclass(frozen=True)
class DecodeSettings:
    """What decides the pixels of a decode job."""

    image_format: str = "png"
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None
    seed: int | None = None
    model: str | None = None  # None: the model named in each file
    max_pixels: int | None = None
    max_steps: int | None = None

    def codec_options(self) -> dict[str, Any]:
        return dict(steps=self.steps, guidance=self.guidance, sampler=self.sampler, seed=self.seed)


@dataclass(frozen=True)
class Placement:
    """Where a worker's model runs (not part of a job's identity)."""

    device: str = "cpu"
    dtype: str | None = None
    threads: int | None = None


def state_paths(root: str) -> tuple[str, str, str]:
    """(state folder, shard records folder, temporaries folder) of a job writing to `root`."""
    state = posixpath.join(root, STATE)
    return state, posixpath.join(state, "shards"), posixpath.join(state, "tmp")


def record_path(root: str, name: str) -> str:
    return posixpath.join(state_paths(root)[1], f"{name}.json")


def read_record(fs: Any, root: str, name: str) -> dict[str, Any] | None:
    path = record_path(root, name)
    if not storage.exists(fs, path):
        return None
    return json.loads(storage.read_bytes(fs, path))


def _failure(item_key: str, origin: str, exc: BaseException | str) -> dict[str, Any]:
    if isinstance(exc, str):
        return {"key": item_key, "source": origin, "error": exc, "exit_code": 3}
    code = exc.exit_code if isinstance(exc, NeurcodecError) else 1
    message = str(exc) if isinstance(exc, NeurcodecError) else f"{type(exc).__name__}: {exc}"
    return {"key": item_key, "source": origin, "error": message, "exit_code": code}


def _where() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


class _Worker:
    """A job's settings and output folder; loads the codec once (lazily, so a job with nothing
    to do loads nothing)."""

    def __init__(self, root: str, settings: Any, placement: Placement) -> None:
        self.settings = settings
        self.placement = placement
        self.fs, self.path = storage.resolve(root)
        self._codecs: dict[str, Any] = {}
        if placement.threads:
            import torch

            torch.set_num_threads(placement.threads)

    def codec(self, name: str) -> Any:
        if name not in self._codecs:
            from neurcodec.codec import load_on

            self._codecs[name] = load_on(name, self.placement.device, self.placement.dtype)
        return self._codecs[name]


class EncodeWorker(_Worker):
    """Images of one unit → `.dae` rows → one shard file (+ its record)."""

    settings: EncodeSettings

    def codec(self, name: str) -> Any:
        codec = super().codec(name)
        expected = self.settings.model_digest
        if expected and codec.digest.hex() != expected:
            raise WeightsError(
                f"{_where()['host']}: model {name!r} here has weights digest {codec.digest.hex()}, the job's is {expected}; "
                "install the same neurcodec version on every node"
            )
        return codec

    def shard_file(self, unit: sources.Unit) -> str:
        return posixpath.join(self.path, unit.name + shards.OUTPUT_FORMATS[self.settings.output_format])

    def __call__(self, unit: sources.Unit) -> dict[str, Any]:
        from neurcodec import media
        from neurcodec.info import describe

        target = self.shard_file(unit)
        done = read_record(self.fs, self.path, unit.name)
        if done is not None and storage.exists(self.fs, target):
            return done
        limits.configure(max_pixels=self.settings.max_pixels)
        start = time.perf_counter()
        rows: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        source_bytes = pixels = 0
        for item in sources.read_unit(unit):
            if item.data is None:
                failures.append(_failure(item.key, item.origin, item.error or "unreadable"))
                continue
            source_bytes += len(item.data)
            try:
                image = media.open_image(item.data, name=item.origin)
                blob = self.codec(self.settings.model).encode(image, **self.settings.codec_options())
            except JOB_ERRORS:
                raise
            except Exception as exc:  # one bad image fails itself, not the job
                failures.append(_failure(item.key, item.origin, exc))
                continue
            width, height = image.size
            pixels += width * height
            rows.append(
                {
                    "key": item.key, "source": item.origin, "width": width, "height": height,
                    "mode": describe(blob)["mode"], "bpp": 8 * len(blob) / (width * height), "dae": blob,
                    "source_sha256": hashlib.sha256(item.data).hexdigest(),
                }
            )
        data = shards.shard_bytes(rows, self.settings.output_format)
        record = {
            "name": unit.name, "file": posixpath.basename(target), "items": len(rows) + len(failures),
            "done": len(rows), "failed": len(failures), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "dae_bytes": sum(len(r["dae"]) for r in rows), "pixels": pixels, "source_bytes": source_bytes,
            "seconds": round(time.perf_counter() - start, 3), "worker": _where(), "failures": failures,
        }
        _, _, tmp = state_paths(self.path)
        storage.write_atomic(self.fs, record_path(self.path, unit.name), json.dumps(record).encode(), tmp)
        storage.write_atomic(self.fs, target, data, tmp)
        return record


class DecodeWorker(_Worker):
    """Rows of one encoded shard → one image file per row (+ the shard's record, last)."""

    settings: DecodeSettings

    def __call__(self, unit: sources.Unit) -> dict[str, Any]:
        from neurcodec import media
        from neurcodec.info import describe

        done = read_record(self.fs, self.path, unit.name)
        if done is not None:
            return done
        limits.configure(max_pixels=self.settings.max_pixels, max_steps=self.settings.max_steps)
        spec = media.output_format(None, self.settings.image_format)
        _, _, tmp = state_paths(self.path)
        start = time.perf_counter()
        written: list[str] = []
        failures: list[dict[str, Any]] = []
        folders: set[str] = set()  # made already: keys share few folders, and each make is a request remotely
        pixels = dae_bytes = 0
        for row in shards.read_file(unit.uris[0]):
            name = row["key"] + spec.extension
            try:
                model = self.settings.model or describe(row["dae"])["model"]
                image = self.codec(model).decode(row["dae"], **self.settings.codec_options())
                target = posixpath.join(self.path, name)
                if posixpath.dirname(target) not in folders:
                    storage.makedirs(self.fs, posixpath.dirname(target))
                    folders.add(posixpath.dirname(target))
                storage.write_atomic(self.fs, target, media.image_bytes(image, spec), tmp)
            except JOB_ERRORS:
                raise
            except Exception as exc:
                failures.append(_failure(row["key"], row["source"], exc))
                continue
            written.append(name)
            pixels += image.width * image.height
            dae_bytes += len(row["dae"])
        record = {
            "name": unit.name, "items": len(written) + len(failures), "done": len(written), "failed": len(failures),
            "files": written, "pixels": pixels, "dae_bytes": dae_bytes, "source_bytes": dae_bytes,
            "seconds": round(time.perf_counter() - start, 3), "worker": _where(), "failures": failures,
        }
        storage.write_atomic(self.fs, record_path(self.path, unit.name), json.dumps(record).encode(), tmp)
        return record


WORKERS = {"encode": EncodeWorker, "decode": DecodeWorker}
SETTINGS = {"encode": EncodeSettings, "decode": DecodeSettings}


def make_worker(kind: str, root: str, settings: dict[str, Any], placement: dict[str, Any]) -> _Worker:
    """A worker from plain data (what crosses to a Ray actor)."""
    return WORKERS[kind](root, SETTINGS[kind](**settings), Placement(**placement))
