"""Peak memory of decoding large images with the default model (tiled above 1024²).

One fresh subprocess per measurement, so each peak RSS (`resource.getrusage(RUSAGE_SELF)
.ru_maxrss`, the process's lifetime high-water mark) belongs to that job alone:
- `load`: import + load the model (the floor every decode pays);
- `encode` at each size: makes the `.dae` the decode reads (a smooth synthetic image);
- `decode` at each size: `Codec.decode(bytes)` → PIL image, with the codec's default tiling.
Sizes: 1024×1024, 4K UHD (3840×2160), 8K UHD (7680×4320). Writes benchmarks/results/memory.json.

    nice -n 19 python benchmarks/memory.py [--steps 2] [--threads 1] [--sizes 1024x1024,3840x2160,7680x4320]

Steps change time, not memory (every step runs the same network on the same tiles), so few
steps are enough; the JSON records how many.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LIMIT_GIB = 24.0


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def _load(threads: int):
    import torch

    import neurcodec

    torch.set_num_threads(threads)
    try:
        return neurcodec.load(), "trained (bundled)"
    except Exception as exc:
        return neurcodec.load(pretrained=False), f"random (pretrained=False; trained weights unavailable: {type(exc).__name__})"


def _synthetic(width: int, height: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (max(1, height // 64), max(1, width // 64), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.BICUBIC)


def child(job: str, size: str, path: str, steps: int, threads: int) -> dict[str, Any]:
    start = time.perf_counter()
    codec, weights = _load(threads)
    result: dict[str, Any] = {"job": job, "weights": weights, "model": codec.name}
    if job == "encode":
        width, height = (int(v) for v in size.split("x"))
        Path(path).write_bytes(codec.encode(_synthetic(width, height)))
    elif job == "decode":
        data = Path(path).read_bytes()
        header = codec.read(data).header
        latent_hw = codec.latent_hw(header.width, header.height)
        result["tiled"] = codec.pipeline.tiling is not None and codec.pipeline.tiling.wants_tiles(latent_hw)
        result["tiling"] = None if codec.pipeline.tiling is None else codec.pipeline.tiling.__dict__
        image = codec.decode(data, steps=steps)
        result["output_size"] = list(image.size)
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_gib"] = _peak_gib()
    return result


def _run_child(job: str, size: str, path: str, steps: int, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", job, "--size", size, "--path", path, "--steps", str(steps), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"job": job, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", default="1024x1024,3840x2160,7680x4320")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "memory.json")
    parser.add_argument("--child", choices=["load", "encode", "decode"], help=argparse.SUPPRESS)
    parser.add_argument("--size", default="", help=argparse.SUPPRESS)
    parser.add_argument("--path", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size, args.path, args.steps, args.threads)))
        return

    result: dict[str, Any] = {
        "benchmark": "memory",
        "command": "python " + " ".join(sys.argv),
        "platform": platform.platform(),
        "threads": args.threads,
        "steps": args.steps,
        "steps_note": "decode steps reduced for time; peak memory does not grow with steps",
        "limit_gib": LIMIT_GIB,
        "load": _run_child("load", "", "", args.steps, args.threads),
        "sizes": {},
    }
    print(f"load only: {result['load'].get('peak_rss_gib', float('nan')):.2f} GiB", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            path = str(Path(tmp) / f"{size}.dae")
            enc = _run_child("encode", size, path, args.steps, args.threads)
            dec = _run_child("decode", size, path, args.steps, args.threads) if "error" not in enc else {"error": "encode failed"}
            peak = dec.get("peak_rss_gib")
            result["sizes"][size] = {
                "encode": enc,
                "decode": dec,
                "decode_peak_rss_gib": peak,
                "decode_within_limit": peak is not None and peak <= LIMIT_GIB,
            }
            print(f"{size}: encode peak {enc.get('peak_rss_gib', float('nan')):.2f} GiB, "
                  f"decode peak {peak if peak is not None else float('nan'):.2f} GiB "
                  f"({dec.get('seconds', float('nan')):.0f} s, tiled={dec.get('tiled')})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
