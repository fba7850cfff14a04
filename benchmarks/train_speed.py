"""Training throughput of a joint step: the shipped recipe against the current one.

"Shipped" is the training code and config of a git revision (`--before-rev`, default: the one
that trained the shipped model), imported from `git show` into a module of its own, so it runs
exactly as it did; "current" is this tree's code with `--config` (plus `--set KEY=VALUE`
overrides). Each is timed in fp32 and, where the CPU does bf16 natively, with the config's
bf16 autocast + channels_last. Same process, same training images, same samples per step (the
diffusion batch and the one-step batch of the config); every variant is built from one seed,
warmed up, and timed over `--steps` joint steps (optimizer, critic and EMA included),
interleaved in rounds so machine load hits all alike. `speedup` = current ÷ shipped steps/s at
the recipe's own precision; `speedup_fp32` the same in fp32.

    python benchmarks/train_speed.py --config tiny2 --set one_step_window=128 [--steps 5 --rounds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

from _machine import cpu_name
from neurcodec import train as current
from neurcodec.pipeline import resolve_autocast

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEURCODEC_SHARED", REPO.parent / "shared"))
SHIPPED_REV = "b66343d"  # trained the shipped tiny2 (stage 2); the last revision before the faster step


def module_at(rev: str) -> ModuleType:
    """`neurcodec.train` and the tiny2-style configs as they were at `rev`."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:src/neurcodec/train.py"], capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / f"train_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"neurcodec_train_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def config_at(rev: str, name: str) -> dict:
    text = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:src/neurcodec/configs/{name}.json"], capture_output=True, text=True, check=True).stdout
    return json.loads(text)


def make_trainer(module: ModuleType, cfg, images: list[torch.Tensor], stage_a: Path | None, seed: int):  # type: ignore[no-untyped-def]
    trainer = module.Trainer(cfg, SHARED / "data" / "train", Path(tempfile.mkdtemp()), seed=seed, log=lambda _: None)
    if trainer.pretrained_stage_a:
        trainer.load_stage_a(stage_a)
    trainer.images = images
    trainer.finish_stage_a()  # sets a latent scale; the weights' values don't change the cost
    trainer.phase, trainer.step = "joint", cfg.adversarial_start  # past the critic's start: every term runs
    trainer.build_latent_cache()
    if hasattr(module, "CropSampler"):  # revisions before the train/ package drew crops from a sampler
        trainer.sampler = module.CropSampler(images, cfg.joint_phase.crop, trainer.downscale, trainer.rng)
    return trainer


def time_steps(trainer, steps: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(steps):
        trainer.joint_step(trainer.sampler) if hasattr(trainer, "sampler") else trainer.joint_step()
        trainer.step += 1
    return (time.perf_counter() - start) / steps


def parse_value(text: str):  # type: ignore[no-untyped-def]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny2")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field of the current recipe")
    parser.add_argument("--before-rev", default=SHIPPED_REV, help="git revision of the shipped recipe")
    parser.add_argument("--steps", type=int, default=5, help="timed joint steps per round and variant")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=48, help="training images loaded (the cost does not depend on it)")
    parser.add_argument("--stage-a", type=Path, default=SHARED / "pretrained" / "taef2", help="for configs with a pretrained stage A")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="", help="what else ran on the machine (recorded in the JSON)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    shipped_module = module_at(args.before_rev)
    shipped = shipped_module.TrainConfig.from_dict(config_at(args.before_rev, args.config))
    recipe = current.TrainConfig.load(args.config)
    recipe = dataclasses.replace(recipe, **{k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)})
    for field in ("batch_size", "crop"):
        assert getattr(shipped.joint_phase, field) == getattr(recipe.joint_phase, field), f"joint {field} differs: not the same samples per step"
    assert (shipped.one_step_batch, shipped.one_step_crop) == (recipe.one_step_batch, recipe.one_step_crop), "one-step samples differ"
    precisions = {"fp32": {"autocast": None, "channels_last": False}}
    if resolve_autocast(None, recipe.autocast, torch.device("cpu"), torch.float32) == torch.bfloat16:  # the trainer's own rule
        precisions["bf16"] = {"autocast": recipe.autocast, "channels_last": recipe.channels_last}

    crop = max(recipe.joint_phase.crop, recipe.one_step_crop)
    images = current.load_images(current.find_images(SHARED / "data" / "train")[: args.images], crop)
    trainers = {}
    for precision, layout in precisions.items():
        trainers[f"shipped_{precision}"] = make_trainer(shipped_module, dataclasses.replace(shipped, **layout), images, args.stage_a, 0)
        trainers[f"current_{precision}"] = make_trainer(current, dataclasses.replace(recipe, **layout), images, args.stage_a, 0)
    for trainer in trainers.values():
        time_steps(trainer, 2)  # warm-up: allocator, bf16 kernels
    per_step: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            per_step[name].append(time_steps(trainer, args.steps))
    rates = {name: 1.0 / statistics.median(values) for name, values in per_step.items()}
    top = "bf16" if "bf16" in precisions else "fp32"
    changed = {k: v for k, v in recipe.to_dict().items() if shipped.to_dict().get(k) != v}
    result = {
        "config": args.config,
        "samples_per_step": {"joint": recipe.joint_phase.batch_size, "crop": recipe.joint_phase.crop,
                             "one_step_batch": recipe.one_step_batch, "one_step_crop": recipe.one_step_crop or recipe.joint_phase.crop},
        "shipped_rev": args.before_rev,
        "recipe_changes": changed,
        "variants": {
            name: {**precisions[name.split("_")[1]], "steps_per_s": round(rates[name], 4), "s_per_step": [round(v, 4) for v in per_step[name]]}
            for name in trainers
        },
        "speedup": round(rates[f"current_{top}"] / rates[f"shipped_{top}"], 3),
        "speedup_precision": top,
        "speedup_fp32": round(rates["current_fp32"] / rates["shipped_fp32"], 3),
        "machine": {"cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__, "python": platform.python_version()},
        "command": "python benchmarks/train_speed.py " + " ".join(
            [f"--config {args.config}", *(f"--set {s}" for s in args.set), f"--steps {args.steps}", f"--rounds {args.rounds}", f"--threads {args.threads}"]),
        "note": args.note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
