"""A small photo collection for the dataset tests: 40 good images in a folder tree (PNG and
JPEG, three depths), 3 bad ones (truncated, not an image, a decompression bomb) and a text file
that is not an image at all. Plus helpers that run the CLI and read a job's output."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

GOOD = 40
BAD_KEYS = {"broken", "notes", "sub/bomb"}


def make_collection(root: Path) -> list[Path]:
    """Write the collection under `root`; return the good images' paths (sorted)."""
    rng = np.random.default_rng(11)
    good = []
    for i in range(GOOD):
        folder = root / ("" if i % 3 == 0 else "sub" if i % 3 == 1 else "sub/deeper")
        folder.mkdir(parents=True, exist_ok=True)
        y, x = np.mgrid[0:48, 0:64]
        base = np.stack([(x * 4 + i * 9) % 256, (y * 5 + i * 17) % 256, ((x + y) * 3 + i * 29) % 256], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"img{i:02d}.{'jpg' if i % 4 == 3 else 'png'}"
        Image.fromarray(pixels).save(path)
        good.append(path)
    whole = (root / "img00.png").read_bytes()
    (root / "broken.png").write_bytes(whole[: len(whole) * 2 // 3])
    (root / "notes.jpg").write_text("not a picture\n")
    Image.new("1", (8000, 6000)).save(root / "sub" / "bomb.png")  # 48 Mpx in a few KB: over the 40 Mpx limit
    (root / "README.txt").write_text("a file that is not an image, skipped\n")
    return sorted(good)


def key_of(path: Path, root: Path) -> str:
    return str(path.relative_to(root).with_suffix(""))


def cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neurcodec", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def rows(out: Path) -> list[dict]:
    """Every row of every shard of a finished encode job, in shard order."""
    from neurcodec.dataset import shards

    found = []
    for path in sorted(glob.glob(str(out / "shard-*"))):
        found.extend(shards.read_file(path))
    return found


def failures(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]


def start_job(*args: str, env: dict | None = None) -> subprocess.Popen:
    """The CLI as a child that takes Ctrl-C as a terminal would deliver it: a shell that starts the
    test run in the background hands it SIGINT ignored, and children inherit that."""
    return subprocess.Popen(
        [sys.executable, "-m", "neurcodec", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})}, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_records(out: Path, count: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until `count` shards of the job writing `out` are done (the job must still be running)."""
    deadline = time.monotonic() + timeout
    while len(glob.glob(str(out / "_neurcodec" / "shards" / "*.json"))) < count:
        assert proc.poll() is None, f"the job ended before {count} shards were done: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out waiting for shards"
        time.sleep(0.02)
