"""Output shards of `dataset encode`: a row per image, as Parquet or as a WebDataset tar.

Row: key, source (path or URI, `#row=N` / `#key` inside a shard), width, height, mode, bpp, the
`.dae` bytes, and the sha256 of the source bytes. In a tar each row is `KEY.dae` + `KEY.json`
(the other fields). Both are written deterministically (fixed member times and owners, one
Parquet row group), so the same rows give the same bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

from neurcodec.dataset import storage

OUTPUT_FORMATS = {"parquet": ".parquet", "webdataset": ".tar"}
FIELDS = ("key", "source", "width", "height", "mode", "bpp", "dae", "source_sha256")


def schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("key", pa.string()),
            ("source", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("mode", pa.string()),
            ("bpp", pa.float64()),
            ("dae", pa.binary()),
            ("source_sha256", pa.string()),
        ]
    )


def shard_bytes(rows: list[dict[str, Any]], output_format: str) -> bytes:
    """The file of one shard holding `rows` (possibly none)."""
    if output_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{f: row[f] for f in FIELDS} for row in rows], schema=schema())
        buffer = io.BytesIO()
        pq.write_table(table, buffer, row_group_size=max(1, len(rows)), compression="zstd")
        return buffer.getvalue()
    if output_format == "webdataset":
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for row in rows:
                meta = {f: row[f] for f in FIELDS if f not in ("key", "dae")}
                _add(tar, f"{row['key']}.dae", row["dae"])
                _add(tar, f"{row['key']}.json", json.dumps(meta, sort_keys=True).encode())
        return buffer.getvalue()
    raise ValueError(f"unknown output format {output_format!r}")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def format_of(path: str) -> str:
    """A shard file's format, from its name."""
    return "webdataset" if path.endswith(OUTPUT_FORMATS["webdataset"]) else "parquet"


def read_file(uri: str) -> Iterator[dict[str, Any]]:
    """The rows of the shard file at `uri` (a path or a URI), in order."""
    fs, path = storage.resolve(uri)
    yield from read_rows(storage.read_bytes(fs, path), format_of(path))


def read_rows(data: bytes, output_format: str) -> Iterator[dict[str, Any]]:
    """The rows of one shard file, in order."""
    if output_format == "parquet":
        import pyarrow.parquet as pq

        yield from pq.read_table(io.BytesIO(data)).to_pylist()
        return
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        pending: dict[str, dict[str, Any]] = {}
        for member in tar:
            key, _, extension = member.name.rpartition(".")
            handle = tar.extractfile(member)
            body = handle.read() if handle else b""
            row = pending.setdefault(key, {"key": key})
            if extension == "dae":
                row["dae"] = body
            elif extension == "json":
                row.update(json.loads(body))
            if "dae" in row and "source" in row:
                del pending[key]
                yield {f: row[f] for f in FIELDS}
