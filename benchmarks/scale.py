"""Dataset-scale encode throughput: the plain CLI batch, the in-process dataset path and Ray.

The same N images (a folder repeated until N, e.g. Kodak ×8 + 8 = 200) through three commands,
each timed end to end as a user runs it (process start, model load, and for Ray the cluster
start and the actors' model loads included):

1. `neurcodec encode IMAGES… -O DIR` (one process, torch's default threads);
2. `neurcodec dataset encode SRC -o DST` (in-process engine, same threads);
3. `neurcodec dataset encode SRC -o DST --ray local --workers W` (a private Ray instance on the
   same cores, W actors of one CPU each).

Ray's overhead is its time over the in-process path's. The outputs are checked equal (every
`.dae` of the three runs byte-identical), so the figures compare the same work.

    python benchmarks/scale.py ../shared/data/kodak --images 200 --out benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _machine import machine
from neurcodec.dataset import shards
from neurcodec.media import IMAGE_SUFFIXES


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(["neurcodec", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"neurcodec {' '.join(args[:3])} … failed ({result.returncode}): {result.stderr.strip()}")
    return time.perf_counter() - start


def repeat_folder(folder: Path, count: int, into: Path) -> list[Path]:
    """`count` image files in `into`, cycling through `folder`'s images (hard links when possible)."""
    sources = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    made = []
    for i in range(count):
        source = sources[i % len(sources)]
        target = into / f"{source.stem}_r{i // len(sources)}{source.suffix}"
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        made.append(target)
    return made


def dataset_daes(out: Path) -> dict[str, bytes]:
    found = {}
    for path in glob.glob(str(out / "shard-*.parquet")):
        for row in shards.read_file(path):
            found[row["key"]] = row["dae"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="Ray actors (one CPU each)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="", help="what else ran on the machine (recorded in the JSON)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        images = repeat_folder(args.folder, args.images, src)
        pixels = sum(_pixels(p) for p in images)
        source_mb = sum(p.stat().st_size for p in images) / 1e6
        runs = {}
        cli_dir = Path(tmp) / "cli"
        runs["cli_batch"] = timed(["encode", *map(str, images), "-O", str(cli_dir), "--quiet"])
        runs["dataset_in_process"] = timed(["dataset", "encode", str(src), "-o", str(Path(tmp) / "inproc"), "--quiet"])
        runs["dataset_ray_local"] = timed(
            ["dataset", "encode", str(src), "-o", str(Path(tmp) / "ray"), "--ray", "local", "--workers", str(args.workers), "--quiet"]
        )
        inproc, on_ray = dataset_daes(Path(tmp) / "inproc"), dataset_daes(Path(tmp) / "ray")
        cli_daes = {p.stem: (cli_dir / f"{p.stem}.dae").read_bytes() for p in images}
        identical = inproc == on_ray == cli_daes
        dae_bytes = sum(len(b) for b in cli_daes.values())
        shard_count = len(glob.glob(str(Path(tmp) / "inproc" / "shard-*.parquet")))

    result = {
        "machine": machine(),
        "note": args.note,
        "images": args.images,
        "source": str(args.folder),
        "megapixels": round(pixels / 1e6, 2),
        "source_mb": round(source_mb, 2),
        "bpp": round(8 * dae_bytes / pixels, 5),
        "shards": shard_count,
        "ray_workers": args.workers,
        "outputs_identical": identical,
        "runs": {
            name: {"seconds": round(s, 2), "images_per_s": round(args.images / s, 3), "mb_per_s": round(source_mb / s, 3)}
            for name, s in runs.items()
        },
        "ray_overhead_vs_in_process": round(runs["dataset_ray_local"] / runs["dataset_in_process"] - 1, 4),
        "in_process_overhead_vs_cli": round(runs["dataset_in_process"] / runs["cli_batch"] - 1, 4),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


def _pixels(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as image:
        return image.width * image.height


if __name__ == "__main__":
    main()
