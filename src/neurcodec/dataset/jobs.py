"""Dataset jobs from the driver's side: plan, resume, run, and the manifest at the end.

DST of `encode_dataset`:
    shard-00000.parquet (or .tar) …   one per unit, written atomically by the workers
    manifest.json                      settings, model digest, per-shard counts and checksums
    failures.jsonl                     one line per image that could not be encoded, with why
    _neurcodec/plan.json               the job's identity: re-running the same command resumes
    _neurcodec/shards/NAME.json        each shard's record (counts, checksum, failures)

`decode_dataset` writes one image per row (`KEY.png` …) with the same state, manifest and
failures files. A job is identified by its settings and its source listing; running it again
skips every complete shard; a different job refuses the folder unless told to start over.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from neurcodec.dataset import engine as engines
from neurcodec.dataset import shards, sources, storage, work
from neurcodec.errors import BitstreamError, InputError, UsageError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FAILURES = "failures.jsonl"


@dataclass
class JobReport:
    """What a job did: counts over all its shards, and what this run added."""

    kind: str
    root: str
    shards: int
    shards_run: int
    items: int
    done: int
    failed: int
    seconds: float
    dae_bytes: int
    pixels: int
    manifest: str
    failures_file: str | None
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("records")
        data["bpp"] = 8 * self.dae_bytes / self.pixels if self.pixels else None
        return data


def encode_dataset(
    source: str,
    dest: str,
    settings: work.EncodeSettings,
    *,
    placement: work.Placement = work.Placement(),
    engine: engines.Engine = engines.Engine(),
    source_format: str = "auto",
    shard_size: int | None = None,
    column: str = sources.DEFAULT_COLUMN,
    key_column: str | None = None,
    start_over: bool = False,
    on_start: Callable[[int, int | None], None] | None = None,
    on_record: engines.OnRecord | None = None,
) -> JobReport:
    """Encode every image of `source` into `.dae` rows in shards under `dest`.

    `on_start(shards to run, images in them or None)` and `on_record(shard record)` report
    progress. Images that fail are listed in `dest/failures.jsonl`; the report counts them.
    """
    from neurcodec.zoo import weights_digest

    if settings.output_format not in shards.OUTPUT_FORMATS:
        raise UsageError(f"unknown output format {settings.output_format!r}; one of {', '.join(shards.OUTPUT_FORMATS)}")
    listed = sources.plan(source, source_format=source_format, shard_size=shard_size, column=column, key_column=key_column)
    settings = replace(settings, model_digest=weights_digest(settings.model).hex())  # what every worker must load
    identity = {
        "kind": "encode",
        "settings": asdict(settings),
        "model": {"name": settings.model, "digest": settings.model_digest},
        "source": listed.description,
        "units": _digest([u.to_json() for u in listed.units]),
    }
    fs, root = _prepare(dest, identity, start_over, lambda name: name.startswith("shard-"))
    extension = shards.OUTPUT_FORMATS[settings.output_format]

    recorded, present = _recorded(fs, root), {posixpath.basename(p) for p in _top_files(fs, root)}  # one listing each

    def complete(unit: sources.Unit) -> bool:
        return unit.name in recorded and unit.name + extension in present

    def finish(records: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            **identity,
            "output_format": settings.output_format,
            "shards": [{k: r[k] for k in ("name", "file", "items", "done", "failed", "bytes", "sha256")} for r in records],
        }

    return _run("encode", fs, root, listed.units, complete, settings, placement, engine, finish, on_start, on_record, engines.count_images(listed.units))


def decode_dataset(
    source: str,
    dest: str,
    settings: work.DecodeSettings,
    *,
    placement: work.Placement = work.Placement(),
    engine: engines.Engine = engines.Engine(),
    start_over: bool = False,
    on_start: Callable[[int, int | None], None] | None = None,
    on_record: engines.OnRecord | None = None,
) -> JobReport:
    """Decode every row of a dataset made by `encode_dataset` into image files `dest/KEY.ext`."""
    from neurcodec import media

    media.output_format(None, settings.image_format)  # an unknown format fails before any work
    src_fs, src_root = storage.resolve(source)
    manifest = read_manifest(source)
    if manifest.get("kind") != "encode":
        raise UsageError(f"{source}: holds decoded images, not .dae shards")
    units = [
        sources.Unit(index=i, kind="shard", uris=(storage.uri(src_fs, posixpath.join(src_root, s["file"])),))
        for i, s in enumerate(manifest["shards"])
    ]
    identity = {
        "kind": "decode",
        "settings": asdict(settings),
        "source": {"uri": source, "manifest_sha256": hashlib.sha256(storage.read_bytes(src_fs, posixpath.join(src_root, MANIFEST))).hexdigest()},
    }
    fs, root = _prepare(dest, identity, start_over, lambda name: False)

    recorded = _recorded(fs, root)

    def complete(unit: sources.Unit) -> bool:
        return unit.name in recorded

    def finish(records: list[dict[str, Any]]) -> dict[str, Any]:
        return {**identity, "shards": [{k: r[k] for k in ("name", "items", "done", "failed")} for r in records]}

    images = sum(s["done"] for s in manifest["shards"])
    return _run("decode", fs, root, units, complete, settings, placement, engine, finish, on_start, on_record, images)


def read_manifest(dest: str) -> dict[str, Any]:
    """The manifest of a finished job (UsageError naming what is there otherwise)."""
    fs, root = storage.resolve(dest)
    path = posixpath.join(root, MANIFEST)
    if not storage.exists(fs, path):
        if _read_plan(fs, root) is not None:
            raise UsageError(f"{dest}: the job is unfinished; run the same command again to finish it")
        raise InputError(f"{dest}: not a neurcodec dataset (no {MANIFEST})")
    try:
        manifest = json.loads(storage.read_bytes(fs, path))
    except ValueError as exc:
        raise BitstreamError(f"{path}: not valid JSON ({exc})") from None
    if manifest.get("neurcodec_dataset") != FORMAT_VERSION:
        raise BitstreamError(f"{path}: not a neurcodec dataset manifest of version {FORMAT_VERSION}")
    return manifest


def status(dest: str) -> dict[str, Any]:
    """What `dest` holds: the manifest of a finished job, or the progress of an unfinished one."""
    fs, root = storage.resolve(dest)
    if storage.exists(fs, posixpath.join(root, MANIFEST)):
        manifest = read_manifest(dest)
        totals = manifest["totals"]
        bpp = 8 * totals["dae_bytes"] / totals["pixels"] if totals["pixels"] else None
        return {"complete": True, **{k: v for k, v in manifest.items() if k != "shards"}, "shards": len(manifest["shards"]), "bpp": bpp}
    plan = _read_plan(fs, root)
    if plan is None:
        raise InputError(f"{dest}: not a neurcodec dataset (no {MANIFEST})")
    records_dir = work.state_paths(root)[1]
    done = len(storage.list_files(fs, records_dir)) if storage.exists(fs, records_dir) else 0
    return {"complete": False, **plan, "shards_done": done, "hint": "run the same command again to finish it"}


def verify(dest: str) -> list[str]:
    """Shards whose bytes no longer match the manifest's checksum (or that are missing)."""
    fs, root = storage.resolve(dest)
    manifest = read_manifest(dest)
    if manifest["kind"] != "encode":
        return []
    bad = []
    for shard in manifest["shards"]:
        path = posixpath.join(root, shard["file"])
        if not storage.exists(fs, path) or hashlib.sha256(storage.read_bytes(fs, path)).hexdigest() != shard["sha256"]:
            bad.append(shard["file"])
    return bad


def shard_files(dest: str) -> list[str]:
    """The shard files of a finished encode job, as paths or URIs, in order."""
    fs, root = storage.resolve(dest)
    manifest = read_manifest(dest)
    if manifest["kind"] != "encode":
        raise UsageError(f"{dest}: holds decoded images, not .dae shards")
    return [storage.uri(fs, posixpath.join(root, s["file"])) for s in manifest["shards"]]


# ---------------------------------------------------------------------------- internals


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _read_plan(fs: Any, root: str) -> dict[str, Any] | None:
    path = posixpath.join(work.state_paths(root)[0], "plan.json")
    if not storage.exists(fs, path):
        return None
    return json.loads(storage.read_bytes(fs, path))


def _prepare(dest: str, identity: dict[str, Any], start_over: bool, is_output: Callable[[str], bool]) -> tuple[Any, str]:
    """Open `dest` for this job: new or empty, or this same job to resume (or, with
    `start_over`, a neurcodec job whose outputs are cleared). Never touches other folders."""
    fs, root = storage.resolve(dest)
    found = storage.kind(fs, root)
    state, records, tmp = work.state_paths(root)
    if found == "file":
        raise UsageError(f"{dest}: exists and is not a folder")
    plan = _read_plan(fs, root) if found else None
    if found and plan is None and _has_entries(fs, root):
        raise UsageError(f"{dest}: not empty and not a neurcodec dataset folder; choose a new or empty folder")
    if plan is not None and (start_over or plan != identity):
        if not start_over:
            raise UsageError(f"{dest}: holds a different job ({_difference(plan, identity)}); use another folder, or -y to start over")
        _clear(fs, root, is_output)
    storage.makedirs(fs, records)
    storage.makedirs(fs, tmp)
    storage.clear_temporaries(fs, tmp)  # what a killed run left behind
    if _read_plan(fs, root) is None:
        storage.write_atomic(fs, posixpath.join(state, "plan.json"), json.dumps(identity, indent=1).encode(), tmp)
    return fs, root


def _recorded(fs: Any, root: str) -> set[str]:
    """Names of the shards whose record is written."""
    return {posixpath.basename(p)[: -len(".json")] for p in _top_files(fs, work.state_paths(root)[1]) if p.endswith(".json")}


def _top_files(fs: Any, folder: str) -> list[str]:
    from pyarrow import fs as pafs

    return [i.path for i in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)) if i.type == pafs.FileType.File]


def _has_entries(fs: Any, root: str) -> bool:
    from pyarrow import fs as pafs

    return bool(fs.get_file_info(pafs.FileSelector(root)))


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    for part in ("kind", "source", "model", "settings", "units"):
        if old.get(part) != new.get(part):
            if isinstance(old.get(part), dict) and isinstance(new.get(part), dict):
                keys = sorted(k for k in set(old[part]) | set(new[part]) if old[part].get(k) != new[part].get(k))
                return f"{part} differ: " + ", ".join(f"{k} {old[part].get(k)!r} → {new[part].get(k)!r}" for k in keys)
            return f"{part} differ" if part != "units" else "the source's files changed"
    return "different job"


def _clear(fs: Any, root: str, is_output: Callable[[str], bool]) -> None:
    from pyarrow import fs as pafs

    for info in fs.get_file_info(pafs.FileSelector(root)):
        name = posixpath.basename(info.path)
        if info.type == pafs.FileType.File and (is_output(name) or name in (MANIFEST, FAILURES)):
            fs.delete_file(info.path)
    fs.delete_dir(work.state_paths(root)[0])


def _run(
    kind: str, fs: Any, root: str, units: list[sources.Unit], complete: Callable[[sources.Unit], bool],
    settings: Any, placement: work.Placement, engine: engines.Engine, finish: Callable[[list[dict[str, Any]]], dict[str, Any]],
    on_start: Callable[[int, int | None], None] | None, on_record: engines.OnRecord | None, images: int | None,
) -> JobReport:
    pending = [u for u in units if not complete(u)]
    if on_start is not None:
        pending_images = images if len(pending) == len(units) else engines.count_images(pending)
        on_start(len(pending), pending_images)
    start = time.perf_counter()
    landed: dict[str, dict[str, Any]] = {}

    def record(shard: dict[str, Any]) -> None:
        landed[shard["name"]] = shard
        if on_record is not None:
            on_record(shard)

    engines.run(kind, root, settings, placement, pending, engine, record)
    seconds = time.perf_counter() - start
    records = [landed.get(u.name) or work.read_record(fs, root, u.name) for u in units]
    missing = [u.name for u, r in zip(units, records, strict=True) if r is None]
    if missing:  # a worker returned without writing: never report such a job as complete
        raise RuntimeError(f"shards without a record after the run: {', '.join(missing[:5])}")
    _, _, tmp = work.state_paths(root)
    failures = [f for r in records for f in r["failures"]]
    failures_path = posixpath.join(root, FAILURES)
    if failures:
        storage.write_atomic(fs, failures_path, "".join(json.dumps(f) + "\n" for f in failures).encode(), tmp)
    elif storage.exists(fs, failures_path):
        fs.delete_file(failures_path)
    from neurcodec import __version__

    manifest = {"neurcodec_dataset": FORMAT_VERSION, "neurcodec": __version__, **finish(records)}
    manifest["totals"] = {k: sum(r[k] for r in records) for k in ("items", "done", "failed", "dae_bytes", "pixels", "source_bytes")}
    storage.write_atomic(fs, posixpath.join(root, MANIFEST), json.dumps(manifest, indent=1).encode(), tmp)
    totals = manifest["totals"]
    return JobReport(
        kind=kind, root=storage.uri(fs, root), shards=len(units), shards_run=len(pending), items=totals["items"],
        done=totals["done"], failed=totals["failed"], seconds=round(seconds, 3), dae_bytes=totals["dae_bytes"],
        pixels=totals["pixels"], manifest=storage.uri(fs, posixpath.join(root, MANIFEST)),
        failures_file=storage.uri(fs, failures_path) if failures else None, records=records,
    )
