"""Kodak through the shell, as a user runs it: `neurcodec encode` then `neurcodec decode`.

Runs the installed `neurcodec` command on every image of a folder (one batch call each way, the
model's default settings unless given), then scores the decoded PNGs against the originals:
whole-file bpp, PSNR, MS-SSIM, thumbnail PSNR (1/32 scale: colour and low frequencies), NIQE
(naturalness of the decode alone; lower = more natural) and SSIMULACRA2 when installed, per image,
their means, the wall time of each call, and checks that every output has the original's size
and mode. NIQE of the originals (`niqe-original`) is reported beside it: a no-reference score
reads as "more or less natural than the source". With `--one-step` the same
files are also decoded with `--steps 1` (the x0 estimate at t = 1: the regression decoder inside
the diffusion model), so what the multi-step sampler adds is measured, not assumed.

    python benchmarks/kodak_cli.py ../shared/data/kodak --one-step --out benchmarks/results/kodak_cli.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from neurcodec.bench import metrics


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(["neurcodec", *args], check=True)
    return time.perf_counter() - start


def score(originals: list[Path], decoded: Path, names: list[str]) -> list[dict]:
    rows = []
    for path in originals:
        ref, out = Image.open(path), Image.open(decoded / f"{path.stem}.png")
        rows.append({
            "image": path.name,
            "same_size_and_mode": ref.size == out.size and ref.mode == out.mode,
            **metrics.compute(np.asarray(ref.convert("RGB")), np.asarray(out.convert("RGB")), names),
        })
    return rows


def niqe_of_originals(originals: list[Path]) -> dict[str, float]:
    """NIQE of each source image (NaN below 96×96), the baseline the decodes' NIQE is read against."""
    out = {}
    for path in originals:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        out[path.name] = metrics.compute(rgb, rgb, ["niqe"])["niqe"]
    return out


def mean(rows: list[dict], key: str) -> float:
    return statistics.fmean(r[key] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--encode-args", default="", help="extra encode options, e.g. '-q 40'")
    parser.add_argument("--decode-args", default="", help="extra decode options, e.g. '--steps 20'")
    parser.add_argument("--one-step", action="store_true", help="also decode every file with --steps 1")
    parser.add_argument("--keep", type=Path, default=None, help="keep the .dae and PNG files here")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    originals = sorted(p for p in args.folder.iterdir() if p.suffix.lower() == ".png")
    work = args.keep or Path(tempfile.mkdtemp(prefix="kodak_cli_"))
    dae, png, one = work / "dae", work / "png", work / "png_1step"
    names = [m for m in metrics.default_metrics() if m != "lpips"]  # includes thumb-psnr and niqe
    times = {"encode_s": run(["encode", *map(str, originals), "-O", str(dae), "-y", "--quiet", *args.encode_args.split()])}
    files = sorted(dae.glob("*.dae"))
    times["decode_s"] = run(["decode", *map(str, files), "-O", str(png), "-y", "--quiet", *args.decode_args.split()])
    rows = score(originals, png, names)
    source_niqe = niqe_of_originals(originals)
    for row, path in zip(rows, originals, strict=True):
        size = Image.open(path).size
        row["bytes"] = (dae / f"{path.stem}.dae").stat().st_size
        row["bpp"] = 8 * row["bytes"] / (size[0] * size[1])
        row["niqe-original"] = source_niqe[path.name]
    report: dict = {
        "command": {"encode": f"neurcodec encode IMAGES -O DIR {args.encode_args}".strip(),
                    "decode": f"neurcodec decode DIR/*.dae -O OUT {args.decode_args}".strip()},
        "images": len(rows),
        "wall_s": times,
        "all_same_size_and_mode": all(r["same_size_and_mode"] for r in rows),
        "mean": {k: mean(rows, k) for k in ("bpp", *[k for k in rows[0] if k not in ("image", "bytes", "bpp", "same_size_and_mode")])},
        "per_image": rows,
    }
    if args.one_step:
        times["decode_1step_s"] = run(["decode", *map(str, files), "-O", str(one), "-y", "--quiet", "--steps", "1"])
        single = score(originals, one, names)
        report["one_step"] = {k: mean(single, k) for k in single[0] if k not in ("image", "same_size_and_mode")}
        report["one_step_per_image"] = single
    info = subprocess.run(["neurcodec", "info", str(files[0]), "--json"], capture_output=True, text=True, check=True)
    report["file_settings"] = json.loads(info.stdout)
    print(json.dumps({k: v for k, v in report.items() if not k.endswith("per_image")}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
