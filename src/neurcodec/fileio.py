"""Files for the CLI: `-` for stdin/stdout, the overwrite policy, atomic writes.

An output is written to a hidden temp file in the same directory, fsynced and renamed over the
target, so a crash, Ctrl-C or SIGTERM never leaves a partial output (SIGKILL can leave the hidden
temp file, never a partial output). Binary data is never written to or read from a terminal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from neurcodec.errors import InputError, OutputError, OutputExistsError, UsageError

STDIO = "-"
Writer = Callable[[BinaryIO], None]


def is_stdio(path: str | Path | None) -> bool:
    return path is not None and str(path) == STDIO


def read_input(path_or_dash: str | Path) -> bytes:
    """All bytes of a file, or of stdin for `-` (refused when stdin is a terminal)."""
    if is_stdio(path_or_dash):
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("refusing to read binary data from a terminal; pipe a file into '-'")
        return sys.stdin.buffer.read()
    path = Path(path_or_dash)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def check_output(path: str | Path, overwrite: bool) -> None:
    """Refuse before any work is done: an existing output without `overwrite`, a missing folder,
    or binary output to a terminal."""
    if is_stdio(path):
        _check_stdout()
        return
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory (use -O DIR for an output folder)")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists (use -y to overwrite)")
    if not path.parent.is_dir():
        raise UsageError(f"{path}: folder {path.parent} does not exist")
    _check_writable(path)


def _check_writable(path: Path) -> None:
    # access() also reports read-only mounts and immutable folders, which permission bits do not.
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"{path}: cannot write in {path.parent} (not writable, or a read-only file system)")


# What the file system says when an output cannot be written, as opposed to a bug.
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _output_error(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write ({exc.strerror or exc})")


# A numbered output name, ffmpeg's image2 way: one `%d`/`%04d` field, `%%` for a literal percent;
# any other `%` (a name like `x%(a)s_%d.png`) is kept as it is.
_PATTERN_TOKEN = re.compile(r"%%|%(0?\d*)d")


def number_fields(pattern: str) -> int:
    return sum(1 for m in _PATTERN_TOKEN.finditer(pattern) if m.group(0) != "%%")


def numbered(pattern: str, number: int) -> str:
    """`pattern` with its number field filled and `%%` made `%`."""
    return _PATTERN_TOKEN.sub(lambda m: "%" if m.group(0) == "%%" else f"{number:{m.group(1)}d}", pattern)


def escape_percent(name: str) -> str:
    """`name` as a literal part of a numbered pattern."""
    return name.replace("%", "%%")


def check_numbered_output(pattern: str, overwrite: bool, what: str = "frames") -> None:
    """Refuse before any work a pattern without exactly one number field in its file name, a
    missing folder, or — without `overwrite` — a folder already holding files the pattern names."""
    path = Path(pattern)
    if number_fields(path.name) != 1 or number_fields(str(path.parent)):
        raise UsageError(f"{pattern}: {what} need an output name with one number field such as %04d "
                         "in the file name (e.g. out_%04d.png; %% for a literal %)")
    if not path.parent.is_dir():
        raise UsageError(f"{pattern}: folder {path.parent} does not exist")
    _check_writable(path)
    if overwrite:
        return
    pieces, last = [], 0  # the pattern as a regex: literals escaped, the number field any digits
    for token in _PATTERN_TOKEN.finditer(path.name):
        pieces.append(re.escape(path.name[last : token.start()]))
        pieces.append(re.escape("%") if token.group(0) == "%%" else r"\d+")
        last = token.end()
    pieces.append(re.escape(path.name[last:]))
    matcher = re.compile("".join(pieces))
    existing = sorted(p for p in path.parent.iterdir() if matcher.fullmatch(p.name))
    if existing:
        raise OutputExistsError(f"{existing[0]} exists ({len(existing)} file(s) named by {pattern}; use -y to overwrite)")


def atomic_write(path: str | Path, data: bytes | Writer, *, overwrite: bool = True) -> None:
    """Write `data` (bytes, or a function writing to a binary file) to `path` all-or-nothing.

    `-` writes to stdout (refused when it is a terminal). Without `overwrite`, an output that
    appeared meanwhile is not replaced (OutputExistsError).
    """
    if is_stdio(path):
        _check_stdout()
        out = sys.stdout.buffer
        _write(out, data)
        out.flush()
        return
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        if exc.errno in _UNWRITABLE:
            raise _output_error(path, exc) from None
        raise
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            _write(handle, data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), 0o666 & ~_umask())  # mkstemp made it 0600
        _commit(tmp, path, overwrite)
    except BaseException as exc:  # including KeyboardInterrupt and the SIGTERM exit below
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in _UNWRITABLE:
            raise _output_error(path, exc) from None
        raise
    _fsync_dir(path.parent)


def _write(handle: BinaryIO, data: bytes | Writer) -> None:
    if isinstance(data, (bytes, bytearray, memoryview)):
        handle.write(data)
    else:
        data(handle)


def _commit(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:  # link fails if the target exists: no window for clobbering
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(f"{path} exists (use -y to overwrite)") from None
    except OSError:  # filesystem without hard links
        if path.exists():
            raise OutputExistsError(f"{path} exists (use -y to overwrite)") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def _check_stdout() -> None:
    if sys.stdout is None or sys.stdout.isatty():
        raise UsageError("refusing to write binary data to a terminal; redirect stdout or use -o FILE")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform/filesystem.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into SystemExit(143) so `finally`/cleanup code (temp files) runs."""

    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
