"""Entropy-coder efficiency on Kodak-sized latents -> benchmarks/results/entropy.json.

For every image and quality: the real coded size next to (a) the ideal code length under
the exact integer model used (-sum log2 p), (b) the per-image empirical entropy of the
symbols (per channel, and pooled over channels), for the ANS and range coders, plus the
size of the whole .dae file and what the latent's 32-bit check adds to it.

Latent sources (`--source`):
  random-conv   (default, a STAND-IN until a trained encoder exists) Kodak images through a
                fixed-seed random 5-layer stride-2 conv net (768x512 -> 16x16x24), each
                channel standardised over the whole set (as the EfficientNet mapper's
                BatchNorm does), so per-channel, per-image scales differ.
  laplace       synthetic Laplacian latents, 16x16x24, per-channel std geomspace(0.3, 2).
  model:NAME    the real encoder of a neurcodec model family (e.g. model:tiny).
  MODULE:FUNC   a callable(image: float tensor (1,3,H,W) in [0,1]) -> latent (1,C,h,w),
                e.g. a real encoder wrapper built on `neurcodec` once models are trained.

    python benchmarks/entropy_efficiency.py [--kodak DIR] [--source random-conv] [--q 10 30 50]
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from _machine import machine
from neurcodec.bitstream import ImageHeader, quality_to_step_index, quantize, step_from_index
from neurcodec.bitstream import write_image
from neurcodec.bitstream.entropy import (
    METHOD_ANS,
    METHOD_RANGE,
    analyse_latent,
    empirical_entropy_bits,
    encode_latent,
)

ROOT = Path(__file__).resolve().parents[1]


def random_conv_encoder(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers, c = [], 3
    for out in (32, 48, 64, 96, 16):
        layers += [torch.nn.Conv2d(c, out, 5, stride=2, padding=2), torch.nn.GELU()]
        c = out
    return torch.nn.Sequential(*layers[:-1]).eval()


def load_kodak(kodak: Path) -> list[torch.Tensor]:
    images = []
    for path in sorted(kodak.glob("*.png")):
        img = Image.open(path).convert("RGB")
        if img.height > img.width:  # portrait Kodak images: same latent shape as landscape
            img = img.transpose(Image.Transpose.ROTATE_90)
        images.append(torch.from_numpy(np.asarray(img)).permute(2, 0, 1).float().div(255)[None])
    return images


def latents_for(source: str, kodak: Path) -> list[np.ndarray]:
    if source == "laplace":
        rng = np.random.default_rng(0)
        std = np.geomspace(0.3, 2.0, 16)[:, None, None]
        return [rng.laplace(size=(16, 16, 24)) * std / np.sqrt(2) for _ in range(24)]
    images = load_kodak(kodak)
    if source == "random-conv":
        net = random_conv_encoder()
        with torch.inference_mode():
            raw = [net(img)[0].double().numpy() for img in images]
        stack = np.stack(raw)
        mean = stack.mean(axis=(0, 2, 3), keepdims=True)[0]
        std = stack.std(axis=(0, 2, 3), keepdims=True)[0]
        return [(r - mean) / std for r in raw]
    module, func = source.split(":")
    if module == "model":
        import neurcodec

        encode = neurcodec.load(func).encode_latent
    else:
        encode = getattr(importlib.import_module(module), func)
    with torch.inference_mode():
        return [encode(img)[0].double().cpu().numpy() for img in images]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    ap.add_argument("--source", default="random-conv")
    ap.add_argument("--q", type=int, nargs="+", default=[0, 10, 20, 30, 40, 50, 60])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "entropy.json")
    args = ap.parse_args()

    latents = latents_for(args.source, args.kodak)
    pixels = 768 * 512
    rows = []
    for q in args.q:
        step_index = quality_to_step_index(q)
        agg = {k: 0.0 for k in ("ans", "range", "ideal", "params", "emp_ch", "emp_pool", "file", "esc", "check")}
        t_enc = 0.0
        for latent in latents:
            symbols = quantize(latent, step_from_index(step_index))
            ans = analyse_latent(symbols, METHOD_ANS)
            rng_report = analyse_latent(symbols, METHOD_RANGE)
            unchecked = analyse_latent(symbols, METHOD_ANS, check_bits=0)
            t0 = time.perf_counter()
            blob = encode_latent(symbols)
            t_enc += time.perf_counter() - t0
            header = ImageHeader("tiny", b"\0\0\0\0", 768, 512, symbols.shape, step_index, seed=12345)
            agg["file"] += len(write_image(header, blob))
            agg["ans"] += ans.coded_bytes
            agg["range"] += rng_report.coded_bytes
            agg["params"] += ans.params_bytes
            agg["ideal"] += ans.ideal_bits / 8
            agg["emp_ch"] += empirical_entropy_bits(symbols) / 8
            agg["emp_pool"] += empirical_entropy_bits(symbols, per_channel=False) / 8
            agg["esc"] += ans.escapes
            agg["check"] += ans.coded_bytes - unchecked.coded_bytes
        n = len(latents)
        mean = {k: v / n for k, v in agg.items()}
        row = {
            "q": q,
            "step": step_from_index(step_index),
            "mean_file_bytes": mean["file"],
            "bpp_file": mean["file"] * 8 / pixels,
            "mean_coded_bytes_ans": mean["ans"],
            "mean_coded_bytes_range": mean["range"],
            "mean_entropy_params_bytes": mean["params"],
            "mean_ideal_bytes": mean["ideal"],
            "mean_empirical_entropy_bytes_per_channel": mean["emp_ch"],
            "mean_empirical_entropy_bytes_pooled": mean["emp_pool"],
            "mean_escapes": mean["esc"],
            "mean_check_bytes": mean["check"],  # ANS, 32-bit check vs none, same symbols
            "ans_over_ideal_pct": 100 * (mean["ans"] / mean["ideal"] - 1),
            "ans_over_ideal_bytes": mean["ans"] - mean["ideal"],
            "range_over_ideal_pct": 100 * (mean["range"] / mean["ideal"] - 1),
            "payload_over_empirical_per_channel_pct": 100 * ((mean["ans"] + mean["params"]) / mean["emp_ch"] - 1),
            "payload_over_empirical_pooled_pct": 100 * ((mean["ans"] + mean["params"]) / mean["emp_pool"] - 1),
            "encode_ms_per_latent": 1000 * t_enc / n,
        }
        rows.append(row)
        print(
            f"q={q:3d} step={row['step']:.3f} file={row['mean_file_bytes']:7.1f}B bpp={row['bpp_file']:.4f} "
            f"ans-ideal={row['ans_over_ideal_pct']:+.2f}% ({row['ans_over_ideal_bytes']:+.1f}B) "
            f"range-ideal={row['range_over_ideal_pct']:+.2f}% "
            f"vs emp/ch={row['payload_over_empirical_per_channel_pct']:+.2f}% "
            f"vs emp/pool={row['payload_over_empirical_pooled_pct']:+.2f}% esc={row['mean_escapes']:.1f} "
            f"check=+{row['mean_check_bytes']:.2f}B"
        )
    result = {
        "source": args.source,
        "stand_in": args.source in ("random-conv", "laplace"),
        "images": len(latents),
        "latent_shape": list(latents[0].shape),
        "machine": machine(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
