"""Resource limits: the most work an input or a `.dae` file may ask for, checked from its size or
header before anything is allocated (as Pillow's `MAX_IMAGE_PIXELS` and ffmpeg's limits do).

A 61-byte `.dae` can declare a 16384×16384 picture, 10,000 sampling steps or 51,200 frames; a
164 KB PNG can hold 13000×13000 pixels. The defaults allow everything this tool is measured on
(8K UHD, 33 Mpx, decodes within 2.6 GiB) and refuse more, with one line that names the limit and
how to raise it: the environment variable, or the CLI flag that sets it for one run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from neurcodec.errors import LimitError, UsageError


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 40_000_000  # per picture or video frame; 8K UHD (7680×4320) is 33.2 Mpx
    max_frames: int = 100_000  # per video: ~55 min at 30 fps
    max_steps: int = 1_000  # sampling steps a file may ask for (an explicit --steps is the user's own)


ENV = {"max_pixels": "NEURCODEC_MAX_PIXELS", "max_frames": "NEURCODEC_MAX_FRAMES", "max_steps": "NEURCODEC_MAX_STEPS"}
FLAGS = {"max_pixels": "--max-pixels", "max_frames": "--max-frames", "max_steps": "--max-steps"}
_overrides: dict[str, int] = {}


def configure(**values: int | None) -> None:
    """Set this process's limits (a CLI command's flags), replacing earlier ones; None: no
    override (the environment's or the default value)."""
    unknown = set(values) - set(ENV)
    if unknown:
        raise TypeError(f"unknown limit(s) {', '.join(sorted(unknown))}")
    _overrides.clear()
    _overrides.update({name: value for name, value in values.items() if value is not None})


def current() -> Limits:
    """The limits in force: `configure`'s values, else the environment's, else the defaults."""
    limits = Limits()
    for name, var in ENV.items():
        if name in _overrides:
            limits = replace(limits, **{name: _overrides[name]})
        elif os.environ.get(var):
            try:
                value = int(os.environ[var])
            except ValueError:
                raise UsageError(f"{var}={os.environ[var]!r} is not a whole number") from None
            limits = replace(limits, **{name: value})
    return limits


def _how_to_raise(name: str) -> str:
    return f"raise it with {FLAGS[name]} N or {ENV[name]}=N"


def check_pixels(width: int, height: int, what: str = "picture") -> None:
    limit = current().max_pixels
    if width * height > limit:
        raise LimitError(f"{what} is {width}×{height} = {width * height:,} pixels, above the limit of {limit:,}; "
                         + _how_to_raise("max_pixels"))


def check_frames(count: int) -> None:
    limit = current().max_frames
    if count > limit:
        raise LimitError(f"video has {count:,} frames, above the limit of {limit:,}; " + _how_to_raise("max_frames"))


def check_steps(steps: int) -> None:
    limit = current().max_steps
    if steps > limit:
        raise LimitError(f"the file asks for {steps:,} sampling steps, above the limit of {limit:,}; "
                         f"give --steps to choose your own, or {_how_to_raise('max_steps')}")
