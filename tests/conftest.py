"""Shared test setup: never touch the network; find ../shared when it is there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before anything imports huggingface_hub: tests must never go to the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("NEURCODEC_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared folder (reference fixtures, data); skip when this machine lacks it."""
    if not (SHARED_DIR / "reference").is_dir():
        pytest.skip(f"needs the shared reference folder at {SHARED_DIR} (set NEURCODEC_SHARED)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"


@pytest.fixture(scope="session")
def fixtures_dir(reference_dir: Path) -> Path:
    return reference_dir / "fixtures"


@pytest.fixture(scope="session")
def kodak_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "kodak"
    if not path.is_dir():
        pytest.skip(f"needs the Kodak images at {path}")
    return path
