"""A training stage on a lent GPU, in one call: prepared here, run there (`train_device.sh`).

The device machine gets a copy of the tracked tree plus carried paths, 64 MiB in all, and no
network. So `prepare` (here) builds what it needs under a git-ignored folder: a compact copy of
the training photos (short side 256 px, JPEG q95, as many as the byte budget left by the tracked
tree allows, evenly spread over the set) and the wheels of the pure dependencies a bare CUDA
PyTorch image may lack. `run` (there) trains from the shipped export for a fixed number of
minutes: it first times the step for `--probe-minutes`, then sets the joint schedule's length so
that its cosine decay ends when the minutes do, and writes the export, the learning log and a
JSON record under `--out` (`$OUT` on the device).

    python benchmarks/train_device.py prepare                    # here: build/device/ (photos + wheels)
    bash benchmarks/train_device.sh                              # there, as one call (see the script)
    python benchmarks/train_device.py run --minutes 8 --out OUT  # what the script runs
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEURCODEC_SHARED", REPO.parent / "shared"))
DEVICE_DIR = REPO / "build" / "device"  # git-ignored; carried to the device
CARRY_LIMIT = 64 * 2**20  # what the device tool copies: tracked tree + carried paths
# What `neurcodec.train` imports beyond torch, torchvision, numpy and Pillow (which a CUDA
# PyTorch image has); constriction is compiled, so its wheel comes for each likely Python.
WHEELS = ["pytorch-msssim", "safetensors", "constriction", "typing-extensions"]
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def tracked_bytes() -> int:
    names = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    return sum((REPO / n.decode()).stat().st_size for n in names if n and (REPO / n.decode()).is_file())


def download_wheels(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for python in PYTHONS:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", python,
             "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64", "-d", str(folder), *WHEELS],
            check=True,
        )
    return sum(p.stat().st_size for p in folder.glob("*.whl"))


def prepare(args: argparse.Namespace) -> None:
    from PIL import Image

    from neurcodec.train import find_images

    out = args.out
    photos = out / "train"
    photos.mkdir(parents=True, exist_ok=True)
    for old in photos.glob("*.jpg"):
        old.unlink()
    wheel_bytes = 0 if args.no_wheels else download_wheels(out / "wheels")
    budget = args.budget_mib * 2**20 if args.budget_mib else CARRY_LIMIT - tracked_bytes() - wheel_bytes - args.margin_mib * 2**20
    sources = find_images(args.source)
    encoded = []
    for path in sources:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = args.side / min(im.size)
            im = im.resize((max(args.side, round(im.width * scale)), max(args.side, round(im.height * scale))), Image.LANCZOS)
            buffer = io.BytesIO()
            im.save(buffer, "JPEG", quality=args.quality)
        encoded.append((path, buffer.getvalue()))
    mean = sum(len(data) for _, data in encoded) / len(encoded)
    count = min(len(encoded), int(budget // mean))
    if count < 1:
        raise SystemExit(f"no room for training photos: budget {budget / 2**20:.1f} MiB")
    chosen = [encoded[round(i * len(encoded) / count)] for i in range(count)]  # evenly spread
    while chosen and sum(len(d) for _, d in chosen) > budget:
        chosen.pop()
    for path, data in chosen:
        (photos / f"{path.stem}.jpg").write_bytes(data)
    record = {
        "source": str(args.source), "photos": len(chosen), "of": len(sources), "side": args.side, "quality": args.quality,
        "photo_mib": round(sum(len(d) for _, d in chosen) / 2**20, 2), "wheel_mib": round(wheel_bytes / 2**20, 2),
        "budget_mib": round(budget / 2**20, 2), "tracked_mib": None if args.budget_mib else round(tracked_bytes() / 2**20, 2),
    }
    (out / "prepared.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))


def run(args: argparse.Namespace) -> None:
    import torch

    from neurcodec.train import Trainer, TrainConfig

    start = time.monotonic()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig.load(args.config)
    if args.lr is not None:
        config = dataclasses.replace(config, joint_phase=dataclasses.replace(config.joint_phase, lr=args.lr))
    planned = config.joint_phase
    # Until the step is timed the schedule is open-ended; its warm-up does not depend on the length.
    open_ended = dataclasses.replace(config, joint_phase=dataclasses.replace(planned, steps=10**9))
    trainer = Trainer(open_ended, args.data, out / "run", device=args.device, seed=args.seed, log=print)
    if args.init:
        trainer.init_from_bundle(args.init)
    elif args.stage_a:
        trainer.load_stage_a(args.stage_a)
    probe_start = trainer.elapsed
    trainer.run(max_minutes=args.probe_minutes)
    if trainer.phase != "joint" or trainer.step == 0:
        raise SystemExit(f"the probe ended in phase {trainer.phase!r} at step {trainer.step}: give more --probe-minutes")
    s_per_step = (trainer.elapsed - probe_start) / trainer.step
    left = 60 * args.minutes - (time.monotonic() - start) - args.export_seconds
    steps = trainer.step + max(0, int(left / s_per_step))
    fitted = dataclasses.replace(config, joint_phase=dataclasses.replace(planned, steps=steps))
    trainer.config = trainer.joint_model.config = fitted
    print(f"probe: {trainer.step} steps, {s_per_step:.3f} s/step; schedule set to {steps} joint steps")
    finished = trainer.run(max_minutes=max(0.0, left / 60))
    export = out / f"{config.name}_{args.device.split(':')[0]}.safetensors"
    spec = trainer.export(export, record={"command": "benchmarks/train_device.py " + " ".join(sys.argv[2:]), "data": str(args.data)})
    (out / "log.jsonl").write_bytes((out / "run" / "log.jsonl").read_bytes())
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    record = {
        "device": device_name, "torch": torch.__version__, "python": platform.python_version(), "config": config.name,
        "init": str(args.init) if args.init else None, "photos": len(list(Path(args.data).glob("*"))),
        "joint_steps": trainer.step, "scheduled_steps": steps, "finished_schedule": finished,
        "s_per_step": round(s_per_step, 4), "bf16": trainer.bf16, "wall_s": round(time.monotonic() - start, 1),
        "export": export.name, "training": spec["training"],
    }
    (out / "train_device.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="build the compact training set (and wheels) to carry")
    p.add_argument("--source", type=Path, default=SHARED / "data" / "train")
    p.add_argument("--out", type=Path, default=DEVICE_DIR)
    p.add_argument("--side", type=int, default=256, help="short side of the compact photos (the training crop)")
    p.add_argument("--quality", type=int, default=95)
    p.add_argument("--budget-mib", type=float, default=None, help="bytes for photos (default: 64 MiB − tracked tree − wheels − margin)")
    p.add_argument("--margin-mib", type=float, default=1.0)
    p.add_argument("--no-wheels", action="store_true", help="skip downloading wheels (the device has the packages)")
    r = sub.add_parser("run", help="train for a fixed number of minutes and export")
    r.add_argument("--data", type=Path, default=DEVICE_DIR / "train")
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/device")))
    r.add_argument("--config", default="tiny2")
    r.add_argument("--init", type=Path, default=REPO / "src" / "neurcodec" / "weights" / "tiny2.safetensors")
    r.add_argument("--no-init", action="store_true", help="a fresh run (configs that train their own stage A, or with --stage-a)")
    r.add_argument("--stage-a", type=Path, default=None, help="with --no-init: a pretrained stage A for the fresh run")
    r.add_argument("--device", default="cuda")
    r.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget, probe and export included")
    r.add_argument("--probe-minutes", type=float, default=0.5)
    r.add_argument("--export-seconds", type=float, default=20.0, help="kept back for the export")
    r.add_argument("--lr", type=float, default=None)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.command == "run" and args.no_init:
        args.init = None
    (prepare if args.command == "prepare" else run)(args)


if __name__ == "__main__":
    main()
