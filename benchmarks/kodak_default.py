"""Kodak at a model's default setting: whole-file bpp, PSNR, MS-SSIM, SSIMULACRA2 per image.

Also decodes every file with a single step (the x0 estimate at t = 1, i.e. the regression
decoder inside the diffusion model) so the multi-step sampler's benefit is measured, not assumed.

    python benchmarks/kodak_default.py ../shared/data/kodak --model tiny --out benchmarks/results/kodak_tiny.json
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--model", default=None, help="model family (default: the bundled default)")
    parser.add_argument("--quality", type=int, nargs="*", default=[None], help="-q values (default: the codec's default)")
    parser.add_argument("--steps", type=int, default=None, help="decode steps (default: the file's)")
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--sampler", default=None)
    parser.add_argument("--one-step", action="store_true", help="also decode with a single step")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    codec = neurcodec.load(args.model)
    paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".ppm", ".bmp"})[: args.limit]
    names = [m for m in metrics.default_metrics() if m != "lpips"]
    results = []
    for quality in args.quality:
        rows = []
        for path in paths:
            image = Image.open(path).convert("RGB")
            ref = np.asarray(image)
            start = time.perf_counter()
            data = codec.encode(image, quality=quality)
            enc_s = time.perf_counter() - start
            start = time.perf_counter()
            out = codec.decode(data, steps=args.steps, guidance=args.guidance, sampler=args.sampler)
            dec_s = time.perf_counter() - start
            row = {
                "image": path.name,
                "bytes": len(data),
                "bpp": 8 * len(data) / (image.width * image.height),
                "encode_s": enc_s,
                "decode_s": dec_s,
                **metrics.compute(ref, np.asarray(out.convert("RGB")), names),
            }
            if args.one_step:
                one = codec.decode(data, steps=1, guidance=args.guidance, sampler=args.sampler)
                row["one_step"] = metrics.compute(ref, np.asarray(one.convert("RGB")), names)
            rows.append(row)
            print(json.dumps({"quality": quality, **row}), flush=True)
        metric_keys = [k for k in rows[0] if k not in ("image", "bytes", "one_step")]
        summary = {k: statistics.fmean(r[k] for r in rows) for k in metric_keys}
        if args.one_step:
            summary["one_step"] = {k: statistics.fmean(r["one_step"][k] for r in rows) for k in rows[0]["one_step"]}
        results.append({"quality": quality, "mean": summary, "images": rows})
        print(json.dumps({"quality": quality, "mean": summary}), flush=True)
    report = {
        "model": codec.name,
        "weights_digest": codec.digest.hex(),
        "steps": args.steps,
        "guidance": args.guidance,
        "sampler": args.sampler,
        "threads": torch.get_num_threads(),
        "results": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
