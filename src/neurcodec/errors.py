"""Typed errors, each with the process exit code the CLI maps it to.

The CLI prints one line (`neurcodec: <message>`) and exits with `exit_code`;
a traceback is shown only with `--debug`.
"""

from __future__ import annotations


class NeurcodecError(Exception):
    """Base class: anything neurcodec reports to a user as a one-line error."""

    exit_code: int = 1


class UsageError(NeurcodecError):
    """Bad arguments or option combinations (same code as Typer/Click usage errors)."""

    exit_code = 2


class InputError(NeurcodecError):
    """An input that cannot be read: missing file, not an image/video, unsupported mode."""

    exit_code = 3


class OutputExistsError(NeurcodecError):
    """The output exists and `-y/--overwrite` was not given."""

    exit_code = 4


class BitstreamError(NeurcodecError):
    """A `.dae` file that cannot be decoded."""

    exit_code = 5


class CorruptFileError(BitstreamError):
    """Bad magic, checksum mismatch, impossible field values."""


class TruncatedFileError(CorruptFileError):
    """The file ends before a declared field or chunk does."""


class UnsupportedFileError(BitstreamError):
    """A well-formed file this build cannot decode (newer version, unknown feature)."""

    exit_code = 6


class WrongModelError(UnsupportedFileError):
    """The file was made by a model other than the one asked to decode it."""


class WeightsError(NeurcodecError):
    """Weights are missing (not cached, offline), or do not match what the registry records."""

    exit_code = 7


class OutputError(NeurcodecError):
    """The output cannot be written: an unwritable or read-only folder, a full disk."""

    exit_code = 9


class LimitError(NeurcodecError):
    """An input or file asks for more than a resource limit allows (pixels, frames, steps)."""

    exit_code = 8


class ItemsFailedError(NeurcodecError):
    """A dataset job finished, but some of its images could not be processed (listed in its
    failures file)."""

    exit_code = 10


EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "error": NeurcodecError.exit_code,
    "usage": UsageError.exit_code,
    "unreadable input": InputError.exit_code,
    "output exists": OutputExistsError.exit_code,
    "corrupt .dae": BitstreamError.exit_code,
    "unsupported .dae": UnsupportedFileError.exit_code,
    "missing weights": WeightsError.exit_code,
    "over a resource limit": LimitError.exit_code,
    "cannot write the output": OutputError.exit_code,
    "dataset job finished with failed images": ItemsFailedError.exit_code,
    "interrupted": 130,
}
