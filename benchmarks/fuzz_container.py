"""Long fuzz run of the .dae reader -> benchmarks/results/fuzz.json.

Feeds >= 100,000 truncated / bit-flipped / spliced / byte-overwritten variants of small
image, video and bare-latent files, a fifth of them CRC-valid files with a mutated latent payload
(the same cases as tests/test_bitstream_fuzz.py), and records the outcome counts, the slowest
single file, the peak traced allocation and the process's peak RSS.
Anything other than a typed neurcodec bitstream error is a failure (exit code 1), and so is a
payload mutant with a checked blob that decodes to other symbols ("altered_checked").

    python benchmarks/fuzz_container.py [--n 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
import tracemalloc
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_bitstream_fuzz import fuzz_cases, outcome  # noqa: E402

from _machine import machine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz.json")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    outcomes: dict[str, int] = {}
    failures: list[dict] = []
    slowest = 0.0
    tracemalloc.start()
    t0 = time.perf_counter()
    kinds: dict[str, int] = {}
    tags: dict[str, int] = {}
    for kind, sample, tag in fuzz_cases(args.n, rng):
        kinds[kind] = kinds.get(kind, 0) + 1
        if tag:
            tags[tag] = tags.get(tag, 0) + 1
        t = time.perf_counter()
        try:
            name = outcome(kind, sample, tag)
        except Exception as exc:  # a bug: record it with the input that triggered it
            name = f"UNTYPED:{type(exc).__name__}"
            if len(failures) < 20:
                failures.append({"kind": kind, "input_hex": sample.hex(), "error": traceback.format_exc()})
        slowest = max(slowest, time.perf_counter() - t)
        outcomes[name] = outcomes.get(name, 0) + 1
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    result = {
        "files": args.n,
        "seed": args.seed,
        "outcomes": outcomes,
        "untyped_failures": sum(v for k, v in outcomes.items() if k.startswith("UNTYPED")),
        "seconds_total": round(elapsed, 2),
        "slowest_file_ms": round(1000 * slowest, 2),
        "peak_traced_bytes": peak,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "files_by_kind": kinds,
        "crc_valid_payload_mutants": tags,
        "altered_checked": outcomes.get("altered_checked", 0),
        "altered_unchecked": outcomes.get("altered_unchecked", 0),
        "note": "altered_*: CRC-valid payload mutants that decoded to other symbols, by whether "
        "the blob carries a latent check (3/4 of them) or is an unchecked blob of an older file",
        "machine": machine(),
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}, indent=1))
    return 1 if result["untyped_failures"] or result["altered_checked"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
