"""Choose a model's decode defaults by measurement: a grid of sampler × steps × guidance.

Encodes each image once per quality, then decodes every file with every setting and reports
mean PSNR, MS-SSIM and SSIMULACRA2 per setting (and the mean bpp per quality).

    python benchmarks/tune_decode.py ../shared/data/kodak --limit 6 --quality 40 \
        --steps 1 5 10 20 --guidance 1 1.5 2 3 --sampler ddpm ddim \
        --out benchmarks/results/tune_decode_tiny.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import neurcodec
from neurcodec.bench import metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--quality", type=int, nargs="+", default=[None])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    parser.add_argument("--sampler", nargs="+", default=["ddpm", "ddim"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    codec = neurcodec.load(args.model)
    names = [m for m in metrics.default_metrics() if m != "lpips"]
    paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() == ".png")[: args.limit]
    images = [Image.open(p).convert("RGB") for p in paths]
    rows = []
    for quality in args.quality:
        files = [codec.encode(im, quality=quality) for im in images]
        bpp = statistics.fmean(8 * len(d) / (im.width * im.height) for d, im in zip(files, images))
        for sampler, steps, guidance in itertools.product(args.sampler, args.steps, args.guidance):
            if steps == 1 and sampler != args.sampler[0]:
                continue  # one step is the same x0 estimate for every sampler
            scores: dict[str, list[float]] = {n: [] for n in names}
            start = time.perf_counter()
            for data, im in zip(files, images):
                out = codec.decode(data, steps=steps, guidance=guidance, sampler=sampler)
                for key, value in metrics.compute(np.asarray(im), np.asarray(out.convert("RGB")), names).items():
                    scores.setdefault(key, []).append(value)
            row = {
                "quality": quality,
                "bpp": bpp,
                "sampler": sampler,
                "steps": steps,
                "guidance": guidance,
                "decode_s": (time.perf_counter() - start) / len(images),
                **{k: statistics.fmean(v) for k, v in scores.items() if v},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": codec.name, "weights_digest": codec.digest.hex(), "images": [p.name for p in paths], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
