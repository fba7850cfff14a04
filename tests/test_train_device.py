"""The GPU training stage's script (`benchmarks/train_device.sh`), run on the CPU with the micro
config: it builds the compact photo set, trains for its minutes and leaves an export that loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def test_the_device_script_prepares_trains_for_its_minutes_and_exports(tmp_path):
    source = tmp_path / "photos"
    source.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        coarse = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((140, 120), Image.BICUBIC).save(source / f"img{i}.png")
    device_dir = tmp_path / "device"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # A budget that holds only some of the photos: the set is cut to fit, evenly spread.
    prepared = subprocess.run(
        [sys.executable, "benchmarks/train_device.py", "prepare", "--source", str(source), "--out", str(device_dir), "--side", "64", "--budget-mib", "0.012", "--no-wheels"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert prepared.returncode == 0, prepared.stderr
    record = json.loads((device_dir / "prepared.json").read_text())
    photos = sorted((device_dir / "train").glob("*.jpg"))
    assert 0 < record["photos"] == len(photos) < 8 and sum(p.stat().st_size for p in photos) <= 0.012 * 2**20
    assert all(min(Image.open(p).size) == 64 for p in photos)

    out = tmp_path / "out"
    ran = subprocess.run(
        ["bash", "benchmarks/train_device.sh", "--data", str(device_dir / "train"), "--config", "micro", "--no-init",
         "--probe-minutes", "0.05", "--export-seconds", "1", "--threads", "1"],
        cwd=REPO, env={**env, "OUT": str(out), "DEVICE": "cpu", "MINUTES": "0.35"}, capture_output=True, text=True, timeout=120,
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    result = json.loads((out / "train_device.json").read_text())
    assert result["finished_schedule"] and result["joint_steps"] == result["scheduled_steps"] > 0
    assert result["wall_s"] < 0.35 * 60 + 15  # the minutes it was given (plus start-up)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log and all(np.isfinite(e["loss"]) for e in log)

    from neurcodec.zoo import bundle_metadata

    exported = bundle_metadata(out / result["export"])
    assert exported["training"]["joint_steps"] == result["joint_steps"] and exported["training"]["phase"] == "done"
