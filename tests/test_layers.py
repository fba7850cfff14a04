"""The rooms' layers and the lint rules hold (pyproject.toml's [tool.importlinter] / [tool.ruff]),
and the codec's import does not drag the benchmark room (or scipy) in with it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def test_no_room_imports_a_room_above_it_and_the_core_never_imports_bench_or_train():
    done = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_ruff_finds_nothing():
    done = subprocess.run([_tool("ruff"), "check", "src", "tests", "benchmarks"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]


def test_importing_the_codec_loads_no_benchmark_module_and_no_scipy():
    probe = "import sys, neurcodec.codec; print(sorted(m for m in sys.modules if m.startswith(('neurcodec.bench', 'scipy'))))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
