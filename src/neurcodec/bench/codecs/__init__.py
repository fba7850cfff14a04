"""Benchmarked codecs: classical anchors by name (`jpeg`, `avif-x4`, ...) and neurcodec itself.

Adding an anchor is one small class in `pillow.py` (or a new file) listed in `ANCHORS`.
"""

from __future__ import annotations

import re

from neurcodec.bench.codecs.base import Codec, Coded
from neurcodec.bench.codecs.neural import NeuralCodec, load_neural
from neurcodec.bench.codecs.pillow import ANCHORS, PillowCodec
from neurcodec.bench.codecs.rescaled import Rescaled
from neurcodec.errors import UsageError

_SPEC = re.compile(r"^(?P<base>[a-z0-9]+)(?:-x(?P<factor>\d+))?$")


def parse_spec(spec: str) -> tuple[str, int]:
    """"avif-x4" → ("avif", 4); "jpeg" → ("jpeg", 1). Raises UsageError for unknown names."""
    m = _SPEC.match(spec.strip().lower())
    if not m or m["base"] not in ANCHORS:
        known = ", ".join(ANCHORS)
        raise UsageError(f"unknown anchor {spec!r}; known: {known} (append -x2 / -x4 to downscale first)")
    factor = int(m["factor"] or 1)
    if m["factor"] is not None and factor < 2:
        raise UsageError(f"anchor {spec!r}: the downscale factor must be ≥ 2")
    return m["base"], factor


def unavailable(spec: str) -> str:
    """Why the anchor `spec` cannot run on this machine, or "" if it can."""
    base, _ = parse_spec(spec)
    return ANCHORS[base].unavailable()


def make_codec(spec: str) -> Codec:
    """Build a classical anchor from its name, e.g. "jpeg", "webp", "jxl", "jpeg-x4", "avif-x2"."""
    base, factor = parse_spec(spec)
    why = ANCHORS[base].unavailable()
    if why:
        raise UsageError(f"anchor {spec!r} is unavailable: {why}")
    codec: Codec = ANCHORS[base]()
    return Rescaled(codec, factor) if factor > 1 else codec


__all__ = [
    "ANCHORS",
    "Codec",
    "Coded",
    "NeuralCodec",
    "PillowCodec",
    "Rescaled",
    "load_neural",
    "make_codec",
    "parse_spec",
    "unavailable",
]
