"""Reproduce the classical anchor figures of issue 8 on the 24 Kodak images.

    python benchmarks/anchors_kodak.py [--kodak ../shared/data/kodak] [-j 2]

Writes benchmarks/results/anchors_kodak.json: the measured means next to the figures the issue
quotes (Pillow 13), with the differences, and whether they fall within ±0.3 dB / ±0.005 bpp.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import PIL

from neurcodec.bench import compressai_json, find_images, make_codec, run_bench

ROOT = Path(__file__).resolve().parents[1]

# (anchor, quality) → figures from the issue: bpp, PSNR-RGB dB, and MS-SSIM where it gives one.
EXPECTED: dict[tuple[str, int], dict[str, float]] = {
    ("jpeg", 1): {"bpp": 0.173, "psnr-rgb": 21.48, "ms-ssim-rgb": 0.715},
    ("jpeg", 5): {"bpp": 0.221, "psnr-rgb": 23.85},
    ("jpeg", 20): {"bpp": 0.508, "psnr-rgb": 29.14},
    ("webp", 0): {"bpp": 0.109, "psnr-rgb": 25.85},
    ("avif", 0): {"bpp": 0.069, "psnr-rgb": 25.61},
    ("jpeg-x4", 60): {"bpp": 0.093, "psnr-rgb": 24.20},
}
TOLERANCE = {"bpp": 0.005, "psnr-rgb": 0.3, "ms-ssim-rgb": 0.01}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "anchors_kodak.json")
    args = ap.parse_args()

    images = find_images(args.kodak)
    sweeps: dict[str, list[int]] = {}
    for spec, q in EXPECTED:
        sweeps.setdefault(spec, []).append(q)
    t0 = time.perf_counter()
    results = run_bench(
        images,
        [(make_codec(spec), qs) for spec, qs in sweeps.items()],
        ["psnr-rgb", "ms-ssim-rgb"],
        jobs=args.jobs,
    )
    wall = time.perf_counter() - t0

    checks = []
    for (spec, q), expected in EXPECTED.items():
        curve = results.curve(spec)
        i = curve.qualities.index(q)
        measured = {k: curve.results[k][i] for k in ("bpp", "psnr-rgb", "ms-ssim-rgb", "ms-ssim-rgb-db")}
        diffs = {k: measured[k] - v for k, v in expected.items()}
        checks.append(
            {
                "codec": spec,
                "quality": q,
                "measured": measured,
                "expected": expected,
                "difference": diffs,
                "within_tolerance": all(abs(d) <= TOLERANCE[k] for k, d in diffs.items()),
            }
        )
        shown = "  ".join(f"{k} {measured[k]:.4f} (issue {v}, Δ {diffs[k]:+.4f})" for k, v in expected.items())
        print(f"{spec:8s} q{q:<3d} {shown}")

    doc = {
        "what": "Classical anchors on Kodak (24 images) vs the figures quoted in issue 8",
        "command": "python benchmarks/anchors_kodak.py -j %d" % args.jobs,
        "images": len(images),
        "pillow": PIL.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "tolerance": TOLERANCE,
        "wall_seconds": round(wall, 1),
        "all_within_tolerance": all(c["within_tolerance"] for c in checks),
        "checks": checks,
        "codecs": [compressai_json(c) for c in results.curves],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    print(f"{'all' if doc['all_within_tolerance'] else 'NOT all'} within tolerance; wrote {args.out} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
