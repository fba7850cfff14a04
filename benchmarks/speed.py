"""Decode-path speed: our stage B against diffusers' StableCascadeUNet, and the codec end to end.

Part 1 — one process, one run, side by side: our stage B with the Stable Cascade LITE config and
diffusers' `StableCascadeUNet` with the equivalent config, holding THE SAME weights (the
fixture weight recipe of `shared/reference/FIXTURES.md`, renamed to diffusers' keys by
`to_diffusers_state_dict`), on the same input: the stage A latent of a 512×512 image
(1, 4, 128, 128) doubled for CFG (batch 2). Per sampling step, median over `--runs`,
interleaved (diffusers, ours default, ours fp32) so machine load hits all three alike:

- diffusers default: fp32, `torch.no_grad`, every input every step (its pipeline's way);
- ours default: what `Codec` does for this family on this machine — conditioning encoded once
  per decode (its one-off cost reported separately), channels_last, `inference_mode`, and bf16
  autocast where `resolve_autocast` enables it (the weight casts are made once per decode;
  the first step, which pays them, is reported too);
- ours fp32: the same without autocast.

Part 2 — the default model end to end on a 768×512 image (Kodak kodim01 when present):
`Codec.encode` (bytes out) and a 10-step `Codec.decode`, medians over `--e2e-runs`, plus the
per-option variants that justify the defaults (channels_last, bf16 autocast).

    nice -n 19 python benchmarks/speed.py [--threads 1] [--runs 3] [--e2e-runs 5] [--out benchmarks/results/speed.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEURCODEC_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO / "tests"))  # the fixture weight recipe lives with the tests

from _recipe import recipe_state_dict  # noqa: E402

from neurcodec.codec import Codec  # noqa: E402
from neurcodec.pipeline import resolve_autocast  # noqa: E402
from neurcodec.zoo import get_family  # noqa: E402
from neurcodec.models.configs import STAGE_B_LITE  # noqa: E402


def to_diffusers_state_dict(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our stage B keys (the official checkpoint's) → diffusers' StableCascadeUNet keys.

    `attention.attn.in_proj_*` splits into `attention.to_q/to_k/to_v.*`, `attention.attn.out_proj`
    becomes `attention.to_out.0`, `clip_mapper` becomes `clip_txt_pooled_mapper`.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in ours.items():
        if ".attention.attn.in_proj_" in key:
            prefix, kind = key.split(".attn.in_proj_")
            for name, part in zip(("to_q", "to_k", "to_v"), value.chunk(3, dim=0)):
                out[f"{prefix}.{name}.{kind}"] = part
        elif ".attention.attn.out_proj." in key:
            out[key.replace(".attention.attn.out_proj.", ".attention.to_out.0.")] = value
        elif key.startswith("clip_mapper."):
            out[key.replace("clip_mapper.", "clip_txt_pooled_mapper.", 1)] = value
        else:
            out[key] = value
    return out


def diffusers_config(cfg) -> dict[str, Any]:
    """diffusers' constructor arguments equivalent to one of our StageBConfig."""
    kinds = {"C": "SDCascadeResBlock", "T": "SDCascadeTimestepBlock", "A": "SDCascadeAttnBlock"}
    return dict(
        in_channels=cfg.c_in,
        out_channels=cfg.c_out,
        timestep_ratio_embedding_dim=cfg.c_r,
        patch_size=cfg.patch_size,
        conditioning_dim=cfg.c_cond,
        block_out_channels=list(cfg.c_hidden),
        num_attention_heads=list(cfg.nhead),
        down_num_layers_per_block=list(cfg.blocks[0]),
        up_num_layers_per_block=list(cfg.blocks[1]),
        down_blocks_repeat_mappers=list(cfg.block_repeat[0]),
        up_blocks_repeat_mappers=list(cfg.block_repeat[1]),
        block_types_per_layer=[[kinds[k] for k in level] for level in cfg.level_config],
        clip_text_pooled_in_channels=cfg.c_clip,
        clip_seq=cfg.c_clip_seq,
        effnet_in_channels=cfg.c_effnet,
        pixel_mapper_in_channels=cfg.c_pixels,
        kernel_size=cfg.kernel_size,
        dropout=list(cfg.dropout),
        self_attn=cfg.self_attn,
        timestep_conditioning_type=list(cfg.t_conds),
    )


def _timed(fn) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def stage_b_vs_diffusers(runs: int) -> dict[str, Any]:
    from diffusers.models.unets.unet_stable_cascade import StableCascadeUNet

    cfg = STAGE_B_LITE
    with torch.device("meta"):
        ours = cfg.build()
        theirs = StableCascadeUNet(**diffusers_config(cfg))
    weights = recipe_state_dict(ours.state_dict())
    ours.load_state_dict(weights, assign=True)
    theirs.load_state_dict(to_diffusers_state_dict(weights), strict=True, assign=True)  # shares storage
    ours.eval(), theirs.eval()
    params = sum(p.numel() for p in ours.parameters())
    _log(f"lite stage B: {params:,} parameters, same weights in both models")

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 128, 128, generator=g)  # stage A latent of 512×512, [x; x] for CFG
    r = torch.full((2,), 0.5)
    effnet = torch.randn(2, 16, 12, 12, generator=g)  # 512 px × effnet factor 0.75 / 32
    clip = torch.randn(2, 1, cfg.c_clip, generator=g)

    autocast = resolve_autocast(None, get_family("stable-cascade-lite").autocast, torch.device("cpu"), torch.float32)
    stack = contextlib.ExitStack()
    if autocast is not None:  # one context for the whole "decode": casts are cached across steps
        stack.enter_context(torch.autocast("cpu", dtype=autocast))
    off = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731 — nested, keeps the cache

    with stack:
        with torch.no_grad(), off():
            ref, t_theirs_first = _timed(lambda: theirs(x, r, clip_text_pooled=clip, effnet=effnet).sample)
        with torch.inference_mode():
            ours.to(memory_format=torch.channels_last)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            with off():  # as in Codec.generate: conditioning in fp32, once per decode
                cond, t_cond = _timed(lambda: ours.encode_conditions(effnet, clip, latent_hw=(128, 128)))
            out_default, t_default_first = _timed(lambda: ours(x_cl, r, cond=cond).float())
            with off():
                out_fp32, _ = _timed(lambda: ours(x_cl, r, cond=cond))
        times: dict[str, list[float]] = {"diffusers_fp32": [], "ours_default": [], "ours_fp32": []}
        for i in range(runs):
            with torch.no_grad(), off():
                times["diffusers_fp32"].append(_timed(lambda: theirs(x, r, clip_text_pooled=clip, effnet=effnet).sample)[1])
            with torch.inference_mode():
                times["ours_default"].append(_timed(lambda: ours(x_cl, r, cond=cond))[1])
                with off():
                    times["ours_fp32"].append(_timed(lambda: ours(x_cl, r, cond=cond))[1])
            _log(f"run {i + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))

    med = {k: _median(v) for k, v in times.items()}
    scale = ref.abs().max().item()
    rel = lambda a: ((a.float() - ref).norm() / ref.norm()).item()  # noqa: E731
    return {
        "config": "stage_b_lite (Stable Cascade 700M), fixture-recipe random weights",
        "parameters": params,
        "input": {"x": [2, 4, 128, 128], "note": "stage A latent of a 512×512 image, CFG batch 2", "effnet": [2, 16, 12, 12], "clip": [2, 1, cfg.c_clip]},
        "ours_default_mode": {"autocast": str(autocast).replace("torch.", "") if autocast else None, "channels_last": True, "conditioning_cached": True},
        "seconds_per_step": med,
        "seconds_per_step_runs": times,
        "seconds_first_step": {"diffusers_fp32": t_theirs_first, "ours_default": t_default_first},
        "seconds_encode_conditions_once": t_cond,
        "speedup_ratio_default_vs_diffusers": med["diffusers_fp32"] / med["ours_default"],
        "speedup_ratio_fp32_vs_diffusers_fp32": med["diffusers_fp32"] / med["ours_fp32"],
        "max_abs_diff_fp32_vs_diffusers": (out_fp32 - ref).abs().max().item(),
        "max_abs_diff_default_vs_diffusers": (out_default.float() - ref).abs().max().item(),
        "rel_l2_diff_fp32_vs_diffusers": rel(out_fp32),
        "rel_l2_diff_default_vs_diffusers": rel(out_default),
        "diffusers_output_max_abs": scale,
    }


def _kodak_768x512():
    from PIL import Image

    path = SHARED / "data" / "kodak" / "kodim01.png"
    if path.is_file():
        image = Image.open(path).convert("RGB")
        if image.size == (768, 512):
            return image, str(path.relative_to(SHARED.parent))
    import numpy as np

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((768, 512), Image.BILINEAR), "synthetic 768×512"


def end_to_end(runs: int, steps: int, variants: bool) -> dict[str, Any]:
    import neurcodec

    try:
        codec = neurcodec.load()
        weights = "trained (bundled)"
    except Exception as exc:  # weights not bundled yet: same arithmetic with random weights
        codec = neurcodec.load(pretrained=False)
        weights = f"random (pretrained=False; trained weights unavailable: {type(exc).__name__})"
    image, source = _kodak_768x512()
    data = codec.encode(image)  # warm-up
    codec.decode(data, steps=1)
    enc, dec = [], []
    for i in range(runs):
        data, t_enc = _timed(lambda: codec.encode(image))
        _, t_dec = _timed(lambda data=data: codec.decode(data, steps=steps))
        enc.append(t_enc), dec.append(t_dec)
        _log(f"e2e run {i + 1}/{runs}: encode {t_enc:.2f}s, decode {t_dec:.2f}s")
    result: dict[str, Any] = {
        "model": codec.name,
        "weights": weights,
        "image": source,
        "size": list(image.size),
        "steps": steps,
        "bytes": len(data),
        "options": {"autocast": str(codec.autocast).replace("torch.", "") if codec.autocast else None, "channels_last": codec.pipeline.channels_last},
        "encode_seconds_median": _median(enc),
        "decode_seconds_median": _median(dec),
        "encode_seconds_runs": enc,
        "decode_seconds_runs": dec,
        "targets": {"encode_seconds": 1.0, "decode_seconds": 3.0},
    }
    if variants:  # the decode under each option, interleaved, to justify the defaults
        models = codec.models
        options = {
            "fp32_nchw": dict(autocast=False, channels_last=False),
            "fp32_channels_last": dict(autocast=False, channels_last=True),
            "bf16_channels_last": dict(autocast="bfloat16", channels_last=True),
        }
        times: dict[str, list[float]] = {k: [] for k in options}
        pixels: dict[str, Any] = {}
        import copy

        from neurcodec.bitstream import DecodeSettings

        latent = codec.encode_latent(codec._to_tensor(image))
        settings = DecodeSettings(steps=steps, guidance=codec.family.decode.guidance, sampler="ddpm", cfg_rescale=0.7, seed=0)
        # A pipeline owns its modules (it sets their layout): each variant gets its own copy.
        variants = {name: Codec(copy.deepcopy(models), **opts) for name, opts in options.items()}
        for _ in range(max(2, runs // 2)):
            for name, variant in variants.items():
                pixels[name], t = _timed(lambda variant=variant: variant.generate(latent, image.size, settings))
                times[name].append(t)
        ref = pixels["fp32_channels_last"]
        result["decode_variants_seconds_median"] = {k: _median(v) for k, v in times.items()}
        result["decode_variants_max_abs_pixel_diff_vs_fp32"] = {k: (v - ref).abs().max().item() for k, v in pixels.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="per-step timings of each stage B (median)")
    parser.add_argument("--e2e-runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--skip-lite", action="store_true", help="only the end-to-end part")
    parser.add_argument("--skip-e2e", action="store_true", help="only the stage B comparison")
    parser.add_argument("--no-variants", action="store_true", help="skip the per-option decode variants")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "speed.json")
    parser.add_argument("--note", default="", help="what else ran on the machine (recorded in the JSON)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    result: dict[str, Any] = {
        "benchmark": "speed",
        "command": "python " + " ".join(sys.argv),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_bf16_native": bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "loadavg_at_start": load,
        "note": args.note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every part, so a long run interrupted still leaves what it measured
        result["loadavg_at_end"] = os.getloadavg()
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    if not args.skip_e2e:
        _log("part 2: default model end to end")
        result["end_to_end"] = end_to_end(args.e2e_runs, args.steps, not args.no_variants)
        save()
    if not args.skip_lite:
        _log("part 1: stage B lite, ours vs diffusers")
        result["stage_b_lite"] = stage_b_vs_diffusers(args.runs)
        save()
    lite = result.get("stage_b_lite", {})
    e2e = result.get("end_to_end", {})
    print(json.dumps({k: v for k, v in {**lite, **e2e}.items() if "ratio" in k or "median" in k or "max_abs" in k}, indent=2))


if __name__ == "__main__":
    main()
