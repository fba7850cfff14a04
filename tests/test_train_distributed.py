"""`neurcodec train` under torchrun: 2 gloo processes on the CPU train the model one process
trains with the same global batch, and a killed run resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neurcodec.train import TrainConfig

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds torchrun's worker processes in /proc (Linux)")
PARTS = ("stage_a", "encoder", "stage_b", "ema_encoder", "ema_stage_b")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        coarse = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((112, 96), Image.BICUBIC).save(folder / f"img{i}.png")
    return folder


def _config(tmp_path, name: str, **changes) -> str:
    """micro with a global batch of 4 (2 one-step samples): 2 processes take 2 (1) each."""
    data = TrainConfig.load("micro").to_dict()
    data["name"] = name
    data["stage_a_phase"] |= {"batch_size": 2}
    data["joint_phase"] |= {"batch_size": 4}
    data |= changes
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _train(processes: int, *args: str) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] if processes > 1 else [sys.executable]
    return [*launcher, "-m", "neurcodec", "train", *args, "--threads", "1"]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (torchrun's workers run in sessions of their own)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _state(run) -> dict:  # type: ignore[no-untyped-def]
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)


def _max_difference(a: dict, b: dict) -> float:
    return max((a[part][k].float() - b[part][k].float()).abs().max().item() for part in PARTS for k in a[part] if a[part][k].is_floating_point())


def _mean_difference(a: dict, b: dict) -> float:
    """Mean |a − b| over all weights (batch-norm statistics aside). Adam's first steps move a
    weight by ~lr whatever its gradient's size, so a weight whose true gradient is 0 (a bias
    before a batch norm) turns float noise into a difference of that size: the mean, not the
    maximum, tells runs on the same samples (float noise) from runs on others (~lr)."""
    diffs = [(a[part][k].float() - b[part][k].float()).abs().flatten() for part in PARTS for k in a[part] if a[part][k].is_floating_point() and "running" not in k]
    return torch.cat(diffs).mean().item()


def test_two_processes_train_the_model_one_process_trains_with_the_same_global_batch(photos, tmp_path):
    config = _config(tmp_path, "micro4")  # learning rate 1e-3
    _run(_train(1, str(photos), "-c", config, "-o", str(tmp_path / "one")))
    _run(_train(2, str(photos), "-c", config, "-o", str(tmp_path / "two"), "--export", str(tmp_path / "two.safetensors")))
    _run(_train(1, str(photos), "-c", config, "-o", str(tmp_path / "other"), "--seed", "1"))  # other crops and noise
    one, two, other = _state(tmp_path / "one"), _state(tmp_path / "two"), _state(tmp_path / "other")
    assert one["phase"] == two["phase"] == "done"
    # Float noise (summation order, the global batch norm), amplified by Adam: ~1e-5 of the
    # weights' scale, where other samples move them by ~0.1.
    assert _mean_difference(one, two) < 0.01 * _mean_difference(one, other)
    assert abs(one["latent_scale"] - two["latent_scale"]) < 1e-3 * one["latent_scale"]
    for part in ("stage_a", "encoder"):  # batch-norm statistics of the global batch, as one process has them
        for key in (k for k in one[part] if "running" in k):
            scale = one[part][key].abs().max()
            assert (one[part][key] - two[part][key]).abs().max() < 1e-2 * scale + 1e-5, key
    # Rank 0 alone writes: one log line per logged step, one export.
    steps = [(e["phase"], e["step"]) for e in map(json.loads, (tmp_path / "two" / "log.jsonl").read_text().splitlines())]
    assert len(steps) == len(set(steps)) and ("joint", 4) in steps
    assert (tmp_path / "two.safetensors").is_file()


def test_a_killed_two_process_run_resumes_where_it_stopped(photos, tmp_path):
    # A checkpoint after every step; enough steps that the kill comes long before the end.
    config = _config(tmp_path, "micro4k", checkpoint_minutes=0.0, joint_phase={**TrainConfig.load("micro").to_dict()["joint_phase"], "batch_size": 4, "steps": 60})
    _run(_train(2, str(photos), "-c", config, "-o", str(tmp_path / "whole")))

    run = tmp_path / "killed"
    job = subprocess.Popen(_train(2, str(photos), "-c", config, "-o", str(run)), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stopped_at = None
    deadline = time.monotonic() + 240
    while stopped_at is None and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
        try:
            state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
        except (FileNotFoundError, RuntimeError, EOFError):
            continue
        if state["phase"] == "joint" and state["step"] >= 3:
            for pid in [job.pid, *_descendants(job.pid)]:  # no chance to save: the last checkpoint is all there is
                os.kill(pid, signal.SIGKILL)
            stopped_at = state["step"]
    job.wait(timeout=60)
    assert stopped_at is not None and stopped_at < 60, "the run ended before it could be killed"
    assert _state(run)["phase"] == "joint"

    _run(_train(2, str(photos), "-c", config, "-o", str(run), "--resume"))
    resumed, whole = _state(run), _state(tmp_path / "whole")
    assert resumed["phase"] == "done" and resumed["step"] == whole["step"] == 60
    assert _max_difference(resumed, whole) < 1e-6
