"""`neurcodec train`: train a model family from a folder of images (CPU or CUDA)."""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from neurcodec.cli import app


@app.command(
    epilog=(
        "Examples:\n\n"
        "  neurcodec train data/train --config tiny -o runs/tiny            # ~2 h on 2 CPU cores\n\n"
        "  neurcodec train data/train --config tiny2 --stage-a taef2/ -o runs/tiny2  # pretrained stage A\n\n"
        "  neurcodec train data/train --config tiny -o runs/tiny --resume   # continue after a stop\n\n"
        "  neurcodec train data/train -o runs/tiny --resume --export tiny.safetensors  # ship it\n\n"
        "  torchrun --nproc-per-node 4 -m neurcodec train data/train --device cuda -o runs/big  # 4 GPUs (DDP)"
    )
)
def train(
    data: Annotated[Path, typer.Argument(help="Folder of training images (searched recursively).")],
    config: Annotated[str, typer.Option("--config", "-c", help="Training config: a name in neurcodec/configs (tiny2: the default model; tiny; micro, micro2: test sizes) or a .json path.")] = "tiny2",
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoint.pt, log.jsonl, exported model.")] = Path("runs/tiny"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt.")] = False,
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", help="Stop (with a checkpoint) after this many minutes.")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or mps.")] = "cpu",
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for crops, noise and initialisation.")] = 0,
    export: Annotated[Optional[Path], typer.Option("--export", help="After training (or with --resume and no steps left), write the shippable model here (.safetensors).")] = None,
    init: Annotated[Optional[Path], typer.Option("--init", help="Start from a model exported by --export (same config): keep its stage A, continue the encoder + stage B from step 0 of the joint phase.")] = None,
    joint_steps: Annotated[Optional[int], typer.Option("--joint-steps", min=1, help="Override the config's number of joint (encoder + stage B) steps.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", min=0.0, help="Override the config's peak learning rate of the joint phase (e.g. lower for a fine-tune with --init).")] = None,
    stage_a: Annotated[Optional[Path], typer.Option("--stage-a", help="Pretrained stage A weights, for configs that do not train their own (tiny2): a folder with a TAESD *_encoder.pth/*_decoder.pth pair, or an exported model whose stage A to reuse.")] = None,
    register: Annotated[bool, typer.Option("--register", help="With --export: record the exported file (configs, size, sha256) in weights.json under the config's name, and its training record in docs/training.json.")] = False,
) -> None:
    """Train stage A, then the encoder and stage B jointly under the config's loss terms.

    Under torchrun the same command trains on every process (DDP: gloo on CPU, NCCL on CUDA):
    the global batch is split across them and rank 0 alone logs, checkpoints and exports."""
    import torch

    from neurcodec.train.distributed import close_world, init_world

    if threads:
        torch.set_num_threads(threads)
    world, device = init_world(device)
    try:
        _train(data, config, out, resume, max_minutes, device, seed, export, init, joint_steps, lr, stage_a, register, world)
    finally:
        close_world()


def _train(data, config, out, resume, max_minutes, device, seed, export, init, joint_steps, lr, stage_a, register, world) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console

    from neurcodec.errors import UsageError
    from neurcodec.train import Trainer, TrainConfig
    from neurcodec.train.distributed import barrier

    console = Console(stderr=True, quiet=not world.main)
    cfg = TrainConfig.load(config)
    if joint_steps is not None:
        cfg = dataclasses.replace(cfg, joint_phase=dataclasses.replace(cfg.joint_phase, steps=joint_steps))
    if lr is not None:
        cfg = dataclasses.replace(cfg, joint_phase=dataclasses.replace(cfg.joint_phase, lr=lr))
    trainer = Trainer(cfg, data, out, device=device, seed=seed, log=lambda m: console.print(m), world=world)
    if resume and init is not None:
        raise UsageError("--init starts a new run and --resume continues one: give only one")
    if resume:
        if not trainer.checkpoint_path.is_file():
            raise UsageError(f"--resume given but there is no checkpoint at {trainer.checkpoint_path}")
        trainer.load_checkpoint()
        console.print(f"resumed at phase {trainer.phase}, step {trainer.step}")
    elif trainer.checkpoint_path.exists():
        raise UsageError(f"{trainer.checkpoint_path} exists: pass --resume to continue it, or choose another --out")
    if stage_a is not None:
        if resume or init is not None:
            raise UsageError("--stage-a starts a new run; a resumed or --init run keeps its own stage A")
        trainer.load_stage_a(stage_a)
    if init is not None:
        before = trainer.init_from_bundle(init)
        console.print(f"starting from {init} ({before.get('joint_steps', '?')} joint steps already)")
    out.mkdir(parents=True, exist_ok=True)
    barrier()  # every process has checked the run folder before rank 0 writes into it
    if world.distributed:
        console.print(f"{world.size} processes: {cfg.joint_phase.batch_size // world.size} samples each per joint step")

    last = [time.monotonic()]

    def progress(phase: str, step: int, total: int, stats: dict) -> None:
        if step % 25 == 0 or step == total or time.monotonic() - last[0] > 30:
            last[0] = time.monotonic()
            shown = " ".join(f"{k} {v:.4f}" for k, v in stats.items())
            console.print(f"{phase}: step {step}/{total} {shown}", markup=False)

    from neurcodec.fileio import sigterm_raises

    with sigterm_raises():  # SIGTERM also checkpoints before exiting
        finished = trainer.run(max_minutes=max_minutes, progress=progress)
    console.print("training finished" if finished else f"stopped at phase {trainer.phase}, step {trainer.step}; resume with --resume")
    if not world.main:
        return
    if export is not None:
        command = "neurcodec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        spec = trainer.export(export, record={"command": command, "data": str(data)})
        console.print(f"exported {export} ({export.stat().st_size / 1e6:.1f} MB): {spec['training']}", markup=False)
        if register:
            from neurcodec.zoo import record_bundle

            record_bundle(export, family=cfg.name)
            console.print(f"recorded {export.name} as family {cfg.name!r} in weights.json (its training in docs/training.json)")
    elif register:
        raise UsageError("--register needs --export")
