"""Sampler overhead outside the network, for a 10-step decode of the small stage B.

Times (a) the network alone — the same 10 forward calls on the doubled CFG batch the sampler
makes — and (b) the full `neurcodec.diffusion.sample` (DDPM, 10 steps, CFG 1.1, ρ 0.7, seeded
CPU noise), interleaved, median of several runs. Overhead = (b − a)/a. Because a shared machine
makes that difference noisy (± several %), it also times the sampler around a network that costs
nothing (it returns a ready tensor): that is the sampler's own cost, reported as a share of (a)
(`overhead_pct_sampler_only`, the figure to compare with the 5 % target).

    python benchmarks/sampler_overhead.py [--runs 7] [--threads 1] [--out benchmarks/results/sampler_overhead.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from neurcodec.diffusion import build_gdf, cfg_batch, sample
from neurcodec.models import StageB

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEURCODEC_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "reference" / "fixtures" / "stage_b_small_weights.safetensors"
# The small stage B of FIXTURES.md §3 (also stored in the weights file's metadata).
CONFIG = dict(
    c_in=4, c_out=4, c_r=64, patch_size=2, c_cond=48, c_hidden=[32, 64, 64, 64], nhead=[-1, -1, 2, 2],
    blocks=[[1, 1, 2, 1], [1, 2, 1, 1]], block_repeat=[[1, 1, 1, 1], [3, 3, 2, 2]],
    level_config=["CT", "CT", "CTA", "CTA"], c_clip=32, c_clip_seq=4, c_effnet=16, c_pixels=3,
    kernel_size=3, dropout=[0, 0, 0.1, 0.1], self_attn=True, t_conds=["sca"],
)  # fmt: skip
STEPS, CFG, RHO = 10, 1.1, 0.7


def build_model() -> tuple[StageB, str]:
    torch.manual_seed(0)
    net = StageB(**CONFIG).eval()
    if WEIGHTS.is_file():  # random recipe weights; the reference init leaves many tensors at zero
        from safetensors.torch import load_file

        net.load_state_dict(load_file(WEIGHTS), strict=True)
        return net, "fixture recipe (random)"
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    return net, "normal(0, 0.05)"


def measure(net: StageB, latent_hw: tuple[int, int], effnet_hw: tuple[int, int], runs: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x_init = torch.randn(1, 4, *latent_hw, generator=gen)
    effnet = torch.randn(1, 16, *effnet_hw, generator=gen)
    clip = torch.randn(1, 1, 32, generator=gen)
    kw = cfg_batch({"effnet": effnet, "clip": clip}, {"effnet": torch.zeros_like(effnet), "clip": clip * 0.5})
    gdf = build_gdf()

    def model(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return net(x, r, kw["effnet"], kw["clip"])

    x2 = torch.cat([x_init, x_init])
    r2 = torch.full((2,), 0.5)
    ready = model(x2, r2)

    def network_only() -> None:
        for _ in range(STEPS):
            model(x2, r2)

    def full() -> None:
        sample(model, x_init, gdf, steps=STEPS, sampler="ddpm", cfg=CFG, cfg_rho=RHO, generator=torch.Generator().manual_seed(1))

    def sampler_only() -> None:
        sample(lambda x, r: ready, x_init, gdf, steps=STEPS, sampler="ddpm", cfg=CFG, cfg_rho=RHO,
               generator=torch.Generator().manual_seed(1))  # fmt: skip

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"network": [], "full": [], "sampler_only": []}
    with torch.inference_mode():
        for fn in (network_only, full, sampler_only):  # warm-up
            fn()
        for _ in range(runs):  # interleaved so machine load hits both alike
            times["network"].append(timed(network_only))
            times["full"].append(timed(full))
            times["sampler_only"].append(sum(timed(sampler_only) for _ in range(5)) / 5)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "latent_shape": [1, 4, *latent_hw],
        "effnet_shape": [1, 16, *effnet_hw],
        "median_s": med,
        "all_s": times,
        "overhead_pct_full_minus_network": 100 * (med["full"] - med["network"]) / med["network"],
        # Per-run pairs were measured back to back, so their ratio is less exposed to load drift.
        "overhead_pct_paired_median": 100
        * statistics.median(f / n - 1 for f, n in zip(times["full"], times["network"], strict=True)),
        "overhead_pct_sampler_only": 100 * med["sampler_only"] / med["network"],
        "sampler_only_us_per_step": 1e6 * med["sampler_only"] / STEPS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    # One thread by default: on a shared 2-core machine, competing OpenMP thread pools make
    # multi-threaded timings swing by 10× and swamp the difference being measured.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sampler_overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net, weights = build_model()
    cases = {
        "image_64px_latent_16x16": measure(net, (16, 16), (2, 2), args.runs),
        "latent_64x64": measure(net, (64, 64), (6, 6), args.runs),
    }
    result = {
        "name": "sampler_overhead",
        "description": "10-step DDPM decode (CFG 1.1, rho 0.7, doubled batch) of the small stage B: "
        "network alone vs the full neurcodec.diffusion.sample; target overhead < 5 %",
        "settings": {"steps": STEPS, "sampler": "ddpm", "cfg": CFG, "cfg_rho": RHO, "runs": args.runs, "weights": weights},
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_end": os.getloadavg(),
        },
        "results": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, case in cases.items():
        med = case["median_s"]
        print(
            f"{name}: network {med['network'] * 1e3:.1f} ms, full {med['full'] * 1e3:.1f} ms, "
            f"overhead {case['overhead_pct_full_minus_network']:+.2f} % (difference of medians), "
            f"{case['overhead_pct_paired_median']:+.2f} % (paired), "
            f"{case['overhead_pct_sampler_only']:.2f} % (sampler alone, "
            f"{case['sampler_only_us_per_step']:.0f} µs/step)"
        )


if __name__ == "__main__":
    main()
