"""How much latent search (`encode --search-steps N`, `neurcodec/latent_search.py`) buys.

Per image: the plain encode at the model's default quality, and a searched one, either at the
same quality or (`--match-bytes`) at the highest quality whose file is not larger than the plain
one's; bytes, PSNR and MS-SSIM of the real decode (the model's default steps, and 1 step), and
the searched encode's wall time. A large gain says the one-pass encoder, not the decoder, is what
limits fidelity.

    python benchmarks/latent_search.py ../shared/data/kodak --iters 60 --match-bytes \
        --out benchmarks/results/latent_search_matched.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import neurcodec
from neurcodec.bench import metrics
from neurcodec.latent_search import LEARNING_RATE, MSE_WEIGHT

from _machine import machine


def score(codec, data: bytes, ref: np.ndarray, steps: int | None) -> dict:
    image = codec.decode(data, steps=steps)
    m = metrics.compute(ref, np.asarray(image.convert("RGB")), ["psnr-rgb", "ms-ssim-rgb"])
    return {"psnr": round(m["psnr-rgb"], 3), "ms_ssim": round(m["ms-ssim-rgb"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", default="kodim01,kodim04,kodim14,kodim23")
    parser.add_argument("--model", default=None)
    parser.add_argument("-q", "--quality", type=int, default=None)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--match-bytes", action="store_true", help="write the searched latent at the highest quality whose file is not larger than the plain encode's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = neurcodec.load(args.model)
    quality = codec.family.default_quality if args.quality is None else args.quality
    rows = []
    for name in args.images.split(","):
        path = args.folder / f"{name}.png"
        rgb = Image.open(path).convert("RGB")
        ref = np.asarray(rgb)
        plain = codec.encode(rgb, quality=quality)
        start = time.perf_counter()
        rate = {"bpp": 8 * len(plain) / (rgb.width * rgb.height)} if args.match_bytes else {"quality": quality}
        better = codec.encode(rgb, search_steps=args.iters, **rate)
        seconds = time.perf_counter() - start
        row = {"image": path.name, "searched_encode_seconds": round(seconds, 1)}
        for label, data in (("plain", plain), ("searched", better)):
            row[label] = {"bytes": len(data), "default_steps": score(codec, data, ref, None), "one_step": score(codec, data, ref, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    def mean(label: str, key: str, field: str) -> float:
        return round(float(np.mean([r[label][key][field] for r in rows])), 4)

    summary = {
        label: {
            "bytes": round(float(np.mean([r[label]["bytes"] for r in rows])), 1),
            **{f"{key}_{f}": mean(label, key, f) for key in ("default_steps", "one_step") for f in ("psnr", "ms_ssim")},
        }
        for label in ("plain", "searched")
    }
    result = {
        "benchmark": "latent_search", "model": codec.name, "quality": quality, "iters": args.iters,
        "learning_rate_in_steps": LEARNING_RATE, "mse_weight": MSE_WEIGHT, "match_bytes": args.match_bytes, "mean": summary, "rows": rows,
        "machine": {**machine(), "threads": torch.get_num_threads()},
        "command": "python benchmarks/latent_search.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
