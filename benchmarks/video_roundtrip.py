"""Every clip of a folder through the CLI and back: frame count, fps and size must survive.

For each clip: `neurcodec encode CLIP -o X.dae`, `neurcodec decode X.dae -o X.mkv` (H.264, the
default output codec), then both files are read back with PyAV and compared: frames, frame
rate, width × height; plus bytes, kbps, PSNR of the decode against the source and wall times.

    python benchmarks/video_roundtrip.py ../shared/data/video --out benchmarks/results/video_roundtrip.json
    python benchmarks/video_roundtrip.py ../shared/data/video --decode-args '--steps 4'   # faster
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import machine
from neurcodec.bench import metrics
from neurcodec.zoo.registry import default_family
from neurcodec.video_io import VIDEO_SUFFIXES, read_clip


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(["neurcodec", *args], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--encode-args", default="")
    parser.add_argument("--decode-args", default="")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="", help="what else ran on the machine (recorded in the JSON)")
    args = parser.parse_args()

    clips = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            dae, back = Path(tmp) / f"{clip.stem}.dae", Path(tmp) / f"{clip.stem}.mkv"
            enc_s = timed(["encode", str(clip), "-o", str(dae), "--quiet", *args.encode_args.split()])
            dec_s = timed(["decode", str(dae), "-o", str(back), "--quiet", *args.decode_args.split()])
            src_info, src_frames = read_clip(clip)
            out_info, out_frames = read_clip(back)
            seconds = len(src_frames) / float(src_info.fps)
            row = {
                "clip": clip.name,
                "frames": [len(src_frames), len(out_frames)],
                "fps": [float(src_info.fps), float(out_info.fps)],
                "size": [[src_info.width, src_info.height], [out_info.width, out_info.height]],
                "bytes": dae.stat().st_size,
                "kbps": 8 * dae.stat().st_size / seconds / 1000,
                "psnr_rgb": float(np.mean([metrics.psnr(a, b) for a, b in zip(src_frames, out_frames)])),
                "thumb_psnr": float(np.mean([metrics.thumb_psnr(a, b) for a, b in zip(src_frames, out_frames)])),
                "encode_s": enc_s,
                "decode_s": dec_s,
            }
            row["preserved"] = (
                row["frames"][0] == row["frames"][1]
                and abs(row["fps"][0] - row["fps"][1]) < 1e-3
                and row["size"][0] == row["size"][1]
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    report = {"model": default_family(), "machine": machine(), "note": args.note, "encode_args": args.encode_args, "decode_args": args.decode_args,
              "all_preserved": all(r["preserved"] for r in rows), "clips": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
