"""Where a dataset job's images come from, cut into units of work.

A *unit* is what one worker call turns into one output shard. Its description is small and
self-contained (URIs, not bytes), so it can be shipped to a worker on another machine, and it is
the same every time the same source is listed: the plan of a job, and so its resume, depends on
nothing else.

- a folder tree (recursive) or a list file (one path or URI per line): the image files, sorted,
  cut into units of `shard_size`; keys are the relative paths without their extension;
- WebDataset tar shards: one unit per tar; keys are the samples' own keys;
- Parquet with an image-bytes column: one unit per row group; keys from `key_column`, else
  `<file stem>/<row number>`.

Paths may be remote (`s3://`, `gs://`, ...): listing and reading go through pyarrow's
filesystems, as Ray Data's own readers do.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from neurcodec.dataset import storage
from neurcodec.errors import InputError, UsageError
from neurcodec.media import IMAGE_SUFFIXES

SOURCE_FORMATS = ("auto", "folder", "list", "webdataset", "parquet")
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
DEFAULT_COLUMN = "image"
MAX_AUTO_SHARD = 1000


@dataclass(frozen=True)
class Unit:
    """One unit of work: `kind` "files" (uris + keys), "tar" (uris[0]) or "parquet" (uris[0],
    row group `row_group` whose first row is `first_row` of the file)."""

    index: int
    kind: str
    uris: tuple[str, ...]
    keys: tuple[str, ...] = ()
    row_group: int = 0
    first_row: int = 0
    column: str = DEFAULT_COLUMN
    key_column: str | None = None

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Unit:
        return cls(**{**data, "uris": tuple(data["uris"]), "keys": tuple(data["keys"])})


@dataclass
class Item:
    """One image of a unit: its key, where it came from, and its bytes (or why it has none)."""

    key: str
    origin: str
    data: bytes | None = None
    error: str | None = None


@dataclass
class SourcePlan:
    """A listed source: its description (for the job's identity) and its units."""

    description: dict[str, Any]
    units: list[Unit] = field(default_factory=list)
    ignored: int = 0  # files in a folder that are not images by their extension


def plan(
    source: str,
    *,
    source_format: str = "auto",
    shard_size: int | None = None,
    column: str = DEFAULT_COLUMN,
    key_column: str | None = None,
) -> SourcePlan:
    """List `source` and cut it into units (the same units every time for the same source)."""
    if source_format not in SOURCE_FORMATS:
        raise UsageError(f"unknown source format {source_format!r}; one of {', '.join(SOURCE_FORMATS)}")
    fs, path = storage.resolve(source)
    found = storage.kind(fs, path)
    if found is None:
        raise InputError(f"{source}: no such file or folder")
    is_dir = found == "dir"
    listing = storage.list_files(fs, path) if is_dir else []  # one listing serves detection and planning
    kind = source_format if source_format != "auto" else _detect(path, is_dir, listing)
    description: dict[str, Any] = {"uri": source, "format": kind}
    if kind in ("folder", "list"):
        uris, keys, ignored = _list_files(fs, path, kind, listing)
        size = shard_size or auto_shard_size(len(uris))
        description["shard_size"] = size
        units = [
            Unit(index=i, kind="files", uris=tuple(uris[start : start + size]), keys=tuple(keys[start : start + size]))
            for i, start in enumerate(range(0, len(uris), size))
        ]
        return SourcePlan(description, units, ignored)
    if shard_size is not None:
        raise UsageError(f"--shard-size applies to folders and list files; a {kind} source keeps its own shards")
    if kind == "webdataset":
        tars = _members(path, is_dir, listing, ".tar")
        return SourcePlan(description, [Unit(index=i, kind="tar", uris=(storage.uri(fs, t),)) for i, t in enumerate(tars)])
    description.update(column=column, key_column=key_column)
    units: list[Unit] = []
    for file in _members(path, is_dir, listing, ".parquet"):
        for group, first_row in _row_groups(fs, file, column, key_column):
            units.append(
                Unit(index=len(units), kind="parquet", uris=(storage.uri(fs, file),), row_group=group, first_row=first_row, column=column, key_column=key_column)
            )
    return SourcePlan(description, units)


def auto_shard_size(count: int) -> int:
    """Images per shard for a file source: about 64 shards (so many workers share small jobs),
    at least 8 and at most 1000 images each. Depends only on the count, so a re-run plans alike."""
    return max(8, min(MAX_AUTO_SHARD, -(-count // 64)))


def read_unit(unit: Unit) -> Iterator[Item]:
    """The unit's images, in order; an unreadable one comes with `error` set instead of data."""
    if unit.kind == "files":
        yield from _read_files(unit)
    elif unit.kind == "tar":
        yield from _read_tar(unit)
    elif unit.kind == "parquet":
        yield from _read_parquet(unit)
    else:
        raise ValueError(f"unknown unit kind {unit.kind!r}")


# ---------------------------------------------------------------------------- listing


def _detect(path: str, is_dir: bool, listing: list[str]) -> str:
    suffix = posixpath.splitext(path)[1].lower()
    if not is_dir:
        if suffix in LIST_SUFFIXES:
            return "list"
        if suffix == ".tar":
            return "webdataset"
        if suffix == ".parquet":
            return "parquet"
        raise UsageError(f"{path}: a source is a folder, a list file (.txt), WebDataset .tar or .parquet; give --source-format")
    suffixes = {posixpath.splitext(p)[1].lower() for p in listing}
    if suffixes & IMAGE_SUFFIXES or not suffixes:
        return "folder"
    if ".tar" in suffixes:
        return "webdataset"
    if ".parquet" in suffixes:
        return "parquet"
    return "folder"


def _members(path: str, is_dir: bool, listing: list[str], suffix: str) -> list[str]:
    if not is_dir:
        return [path]
    found = sorted(p for p in listing if p.lower().endswith(suffix))
    if not found:
        raise InputError(f"{path}: no {suffix} files in this folder")
    return found


def _list_files(fs: Any, path: str, kind: str, listing: list[str]) -> tuple[list[str], list[str], int]:
    """Image URIs and their unique keys, sorted by relative path."""
    if kind == "folder":
        relative = sorted(posixpath.relpath(p, path) for p in listing)
        images = [r for r in relative if posixpath.splitext(r)[1].lower() in IMAGE_SUFFIXES]
        uris = [storage.uri(fs, posixpath.join(path, r)) for r in images]
        return uris, unique_keys(images), len(relative) - len(images)
    text = storage.read_bytes(fs, path).decode("utf-8", errors="replace")
    entries = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    base = posixpath.dirname(path)
    uris = [e if "://" in e else storage.uri(fs, e if posixpath.isabs(e) else posixpath.normpath(posixpath.join(base, e))) for e in entries]
    # Keys: paths below the entries' common folder (a list of /data/a/x.png, /data/b/y.png → a/x, b/y).
    paths = [u.split("://", 1)[-1] for u in uris]
    common = posixpath.commonpath([posixpath.dirname(p) for p in paths]) if paths else ""
    return uris, unique_keys([posixpath.relpath(p, common) if common else p.lstrip("/") for p in paths]), 0


def unique_keys(paths: list[str]) -> list[str]:
    """Keys for relative paths: the path without its extension, dots made `_` (WebDataset reads a
    dot as the start of the extension); a key already taken gets the extension appended."""
    keys: list[str] = []
    taken: set[str] = set()
    for path in paths:
        stem, suffix = posixpath.splitext(posixpath.normpath(path))
        key = stem.replace(".", "_")
        if key in taken:
            key = f"{key}_{suffix.lstrip('.')}"
        n = 2
        base = key
        while key in taken:
            key, n = f"{base}_{n}", n + 1
        taken.add(key)
        keys.append(key)
    return keys


def _row_groups(fs: Any, path: str, column: str, key_column: str | None) -> list[tuple[int, int]]:
    import pyarrow.parquet as pq

    try:
        with fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            meta, names = parquet.metadata, set(parquet.schema_arrow.names)
    except Exception as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    for wanted, flag in ((column, "--column"), (key_column, "--key-column")):
        if wanted is not None and wanted not in names:
            raise UsageError(f"{path}: no column {wanted!r} (has {', '.join(sorted(names))}); name it with {flag}")
    groups, first = [], 0
    for g in range(meta.num_row_groups):
        groups.append((g, first))
        first += meta.row_group(g).num_rows
    return groups


# ---------------------------------------------------------------------------- reading


def _read_files(unit: Unit) -> Iterator[Item]:
    for uri, key in zip(unit.uris, unit.keys, strict=True):
        try:
            fs, path = storage.resolve(uri)
            yield Item(key, uri, storage.read_bytes(fs, path))
        except Exception as exc:  # a missing or unreadable file fails that image, not the job
            yield Item(key, uri, error=f"cannot read: {exc}")


def _read_tar(unit: Unit) -> Iterator[Item]:
    """Samples of a WebDataset tar: members grouped by key (the path up to the first dot of the
    file name), the sample's image the first member with an image extension."""
    uri = unit.uris[0]
    fs, path = storage.resolve(uri)
    samples: dict[str, dict[str, bytes]] = {}
    order: list[str] = []
    try:
        with fs.open_input_stream(path) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, name = posixpath.split(member.name)
                if name.startswith("."):
                    continue
                stem, _, extension = name.partition(".")
                key = posixpath.join(folder, stem)
                if key not in samples:
                    samples[key] = {}
                    order.append(key)
                handle = tar.extractfile(member)
                samples[key]["." + extension.lower()] = handle.read() if handle else b""
    except Exception as exc:
        yield Item(posixpath.basename(path), uri, error=f"cannot read the tar shard: {exc}")
        return
    for key in order:
        image = next((data for ext, data in samples[key].items() if "." + ext.rsplit(".", 1)[-1] in IMAGE_SUFFIXES), None)
        if image is None:
            yield Item(key, f"{uri}#{key}", error=f"no image member (has {', '.join(sorted(samples[key]))})")
        else:
            yield Item(key, f"{uri}#{key}", image)


def _read_parquet(unit: Unit) -> Iterator[Item]:
    import pyarrow.parquet as pq

    uri = unit.uris[0]
    fs, path = storage.resolve(uri)
    stem = posixpath.splitext(posixpath.basename(path))[0]
    columns = [unit.column] + ([unit.key_column] if unit.key_column else [])
    with fs.open_input_file(path) as handle:
        table = pq.ParquetFile(handle).read_row_group(unit.row_group, columns=columns)
    images = table.column(unit.column).to_pylist()
    keys = table.column(unit.key_column).to_pylist() if unit.key_column else [None] * len(images)
    for offset, (data, key) in enumerate(zip(images, keys, strict=True)):
        row = unit.first_row + offset
        key = str(key) if key is not None else f"{stem}/{row:08d}"
        origin = f"{uri}#row={row}"
        if isinstance(data, dict) and "bytes" in data:  # Hugging Face's Image feature: {bytes, path}
            data = data["bytes"]
        if isinstance(data, str):
            data = data.encode("latin-1")
        if not isinstance(data, (bytes, bytearray)):
            yield Item(key, origin, error=f"column {unit.column!r} holds no image bytes in this row ({type(data).__name__})")
        else:
            yield Item(key, origin, bytes(data))
