"""What one `neurcodec bench` run measures: which codecs, at which settings, compared how."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from neurcodec.bench.codecs import Codec, load_neural, make_codec, parse_spec, unavailable
from neurcodec.errors import UsageError


@dataclass
class BenchConfig:
    """Settings of a bench run; None means each codec's default sweep."""

    anchors: Sequence[str] = ("jpeg", "webp", "avif")
    model: str | None = "tiny"  # None: classical anchors only
    qualities: Sequence[int] | None = None  # neurcodec's -q sweep
    steps: Sequence[int | None] = (None,)  # one neurcodec curve per entry
    device: str | None = None
    anchor_qualities: dict[str, Sequence[int]] = field(default_factory=dict)


@dataclass
class Plan:
    sweeps: list[tuple[Codec, list[int]]]
    tests: list[str]  # curves compared against the anchors
    anchors: list[str]
    notes: list[str]


def parse_list(text: str | None, kind: type = int) -> list | None:
    """"5,20,40" → [5, 20, 40]; None/"" → None. Raises UsageError on junk."""
    if not text:
        return None
    try:
        return [kind(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise UsageError(f"expected a comma-separated list of {kind.__name__}s, got {text!r}") from None


def make_plan(config: BenchConfig) -> Plan:
    """Build the codecs. Unavailable anchors are skipped with a note, unknown ones are an error.

    Comparisons: neurcodec curves against every anchor; without neurcodec, every anchor against
    the first one (so `--no-neural --vs jpeg,webp` still gives WebP's BD-rate vs JPEG).
    """
    notes: list[str] = []
    sweeps: list[tuple[Codec, list[int]]] = []
    seen: set[str] = set()
    for spec in config.anchors:
        parse_spec(spec)  # unknown names fail before anything runs
        why = unavailable(spec)
        if why:
            notes.append(f"{spec}: skipped ({why})")
            continue
        codec = make_codec(spec)
        if codec.name in seen:
            continue
        seen.add(codec.name)
        qs = config.anchor_qualities.get(codec.name) or codec.qualities
        sweeps.append((codec, list(qs)))
    anchors = [c.name for c, _ in sweeps]
    tests: list[str] = []
    if config.model:
        kwargs = {"qualities": config.qualities} if config.qualities else {}
        neural = load_neural(config.model, steps=list(config.steps) or [None], device=config.device, **kwargs)
        for codec in neural:
            sweeps.insert(len(tests), (codec, list(codec.qualities)))
            tests.append(codec.name)
    elif anchors:
        tests, anchors = anchors[1:], anchors[:1]
    if not sweeps:
        raise UsageError("nothing to benchmark: no available anchor and --no-neural")
    return Plan(sweeps, tests, anchors, notes)
