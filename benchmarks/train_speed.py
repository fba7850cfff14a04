"""Training throughput of a joint step: fp32 against bf16 autocast + channels_last.

One process, the same config, batch and crops, the same training images: for each variant a
`Trainer` is built from one seed, warmed up, and timed over `--steps` joint steps (the diffusion
batch plus the one-step pixel loss, optimizer and EMA included), interleaved in rounds so
machine load hits both alike. The variants differ only in `autocast` and `channels_last` of
the training config. `speedup` = steps/s after ÷ steps/s before.

    python benchmarks/train_speed.py [--config tiny] [--steps 10] [--rounds 3] \
        [--out benchmarks/results/train_speed.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _machine import cpu_name
from neurcodec.train import CropSampler, Trainer, TrainConfig, find_images, load_images

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEURCODEC_SHARED", REPO.parent / "shared"))


def make_trainer(cfg: TrainConfig, images: list[torch.Tensor], stage_a: Path | None, seed: int) -> Trainer:
    trainer = Trainer(cfg, SHARED / "data" / "train", Path(tempfile.mkdtemp()), seed=seed, log=lambda _: None)
    if trainer.pretrained_stage_a:
        trainer.load_stage_a(stage_a)
    trainer.images = images
    trainer.finish_stage_a()  # sets a latent scale; the weights' values don't change the cost
    trainer.phase, trainer.step = "joint", 0
    trainer.build_latent_cache()
    return trainer


def time_steps(trainer: Trainer, steps: int) -> float:
    sampler = CropSampler(trainer.images, trainer.config.joint_phase.crop, trainer.downscale, trainer.rng)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.joint_step(sampler)
        trainer.step += 1
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--steps", type=int, default=10, help="timed joint steps per round and variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=48, help="training images loaded (the cost does not depend on it)")
    parser.add_argument("--stage-a", type=Path, default=SHARED / "pretrained" / "taef2", help="for configs with a pretrained stage A")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="", help="what else ran on the machine (recorded in the JSON)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    base = TrainConfig.load(args.config)
    before = dataclasses.replace(base, autocast=None, channels_last=False)
    after = dataclasses.replace(base, autocast="bfloat16", channels_last=True)
    crop = max(base.joint_phase.crop, base.one_step_crop)
    images = load_images(find_images(SHARED / "data" / "train")[: args.images], crop)
    trainers = {"before": make_trainer(before, images, args.stage_a, 0), "after": make_trainer(after, images, args.stage_a, 0)}
    for trainer in trainers.values():
        time_steps(trainer, 2)  # warm-up: allocator, bf16 kernels
    per_step: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            per_step[name].append(time_steps(trainer, args.steps))
    rates = {name: 1.0 / statistics.median(values) for name, values in per_step.items()}
    result = {
        "config": args.config,
        "batch": {"joint": base.joint_phase.batch_size, "crop": base.joint_phase.crop, "one_step_batch": base.one_step_batch, "one_step_crop": base.one_step_crop},
        "before": {"autocast": None, "channels_last": False, "steps_per_s": round(rates["before"], 4), "s_per_step": [round(v, 4) for v in per_step["before"]]},
        "after": {"autocast": "bfloat16", "channels_last": True, "steps_per_s": round(rates["after"], 4), "s_per_step": [round(v, 4) for v in per_step["after"]]},
        "speedup": round(rates["after"] / rates["before"], 3),
        "machine": {"cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__, "python": platform.python_version()},
        "command": "python benchmarks/train_speed.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "stage_a", "note")),
        "note": args.note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
