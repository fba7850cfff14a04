"""What machine a benchmark ran on, for its JSON: speeds compare only within one machine."""

from __future__ import annotations

import os
import platform
import subprocess

import torch


def cpu_name() -> str:
    """lscpu's model name and which native bf16 units it has (AMX, AVX-512-bf16 or none)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        flags = next((line for line in out.splitlines() if line.startswith("Flags:")), "")
        name = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name:")), "")
        native = [f for f in ("amx_bf16", "avx512_bf16") if f in flags.split()]
        return f"{name} ({', '.join(native) or 'no native bf16'})"
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}
