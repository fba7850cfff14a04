"""Files of a dataset job, local or remote, through pyarrow's filesystems.

Local paths and URIs (`s3://bucket/x`, `gs://...`, anything `pyarrow.fs.FileSystem.from_uri`
knows) take the same path through this module, so the code tested here on local disks is the
code that runs against object stores. Writes are atomic: a temporary name in the job's state
folder, then a move (a rename on local disks).
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Callable
from typing import Any, BinaryIO

from neurcodec.errors import OutputError

Writer = Callable[[BinaryIO], None]


def resolve(location: str) -> tuple[Any, str]:
    """(filesystem, path within it) for a local path or a URI."""
    from pyarrow import fs as pafs

    if "://" in location and not location.startswith("file://"):
        return pafs.FileSystem.from_uri(location)
    if location.startswith("file://"):
        location = location[len("file://") :]
    return pafs.LocalFileSystem(), os.path.abspath(location)


def is_local(fs: Any) -> bool:
    return fs.type_name == "local"


def uri(fs: Any, path: str) -> str:
    """What `resolve` turns back into (fs, path): the plain path for local files."""
    return path if is_local(fs) else f"{fs.type_name}://{path}"


def kind(fs: Any, path: str) -> str | None:
    """"file", "dir", or None when nothing is there."""
    from pyarrow import fs as pafs

    found = fs.get_file_info(path).type
    if found == pafs.FileType.NotFound:
        return None
    return "dir" if found == pafs.FileType.Directory else "file"


def exists(fs: Any, path: str) -> bool:
    return kind(fs, path) is not None


def list_files(fs: Any, path: str) -> list[str]:
    """Every file under `path` (recursive), skipping hidden files and folders."""
    from pyarrow import fs as pafs

    selector = pafs.FileSelector(path, recursive=True)
    found = []
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        relative = posixpath.relpath(info.path, path)
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        found.append(info.path)
    return found


def read_bytes(fs: Any, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read()


def makedirs(fs: Any, path: str) -> None:
    try:
        fs.create_dir(path, recursive=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the folder ({exc})") from None


def write_atomic(fs: Any, path: str, data: bytes | Writer, tmp_dir: str) -> None:
    """Write `path` all-or-nothing: readers see the old state or the whole new file."""
    tmp = posixpath.join(tmp_dir, f"{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with fs.open_output_stream(tmp) as stream:
            if isinstance(data, (bytes, bytearray, memoryview)):
                stream.write(data)
            else:
                data(stream)
        fs.move(tmp, path)
    except BaseException as exc:
        try:
            fs.delete_file(tmp)
        except Exception:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write ({exc})") from None
        raise


def clear_temporaries(fs: Any, tmp_dir: str) -> int:
    """Remove what interrupted writers left in `tmp_dir`; returns how many."""
    from pyarrow import fs as pafs

    removed = 0
    for info in fs.get_file_info(pafs.FileSelector(tmp_dir, allow_not_found=True)):
        if info.type == pafs.FileType.File and info.path.endswith(".tmp"):
            fs.delete_file(info.path)
            removed += 1
    return removed
