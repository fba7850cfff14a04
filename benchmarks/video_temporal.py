"""Temporal latent prediction vs intra-only coding, flicker, and memory flatness.

    python benchmarks/video_temporal.py [--quality 50] [--no-memory] [--checkpoint run/checkpoint.pt]

Per clip (foreman, mobile CIF, 25 frames) at one -q: bytes / kbps with temporal prediction
(closed loop, default hysteresis), with plain rounding (hysteresis 0.5) and intra-only; the
latent-domain error of each (what the hysteresis costs); and, on foreman, the flicker of the
decoded clip: mean |frame_t − frame_{t−1}| of the decode over the same for the source
(target ≤ 1.5) plus the decode's PSNR. Memory: peak RSS of the CLI encoding and decoding foreman,
and foreman played 10× in a row, each in a fresh process (flat = memory does not grow with length).

Weights: the bundled `tiny` if present, else a trainer checkpoint (`--checkpoint`, EMA modules)
if it has reached the joint phase, else fixture-recipe random weights; the JSON says which.
Writes benchmarks/results/video.json.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "video"
CLIPS = ("foreman_cif_25f.y4m", "mobile_cif_25f.y4m")


def load_codec(checkpoint: Path | None):
    """(codec, description of the weights)."""
    import neurcodec
    from neurcodec.errors import WeightsError

    try:
        return neurcodec.load(), "bundled default weights"
    except WeightsError:
        pass
    codec = neurcodec.load(pretrained=False)
    if checkpoint is not None and checkpoint.is_file():
        from neurcodec.models.effnet import EffNetStage

        with torch.serialization.safe_globals([EffNetStage]):
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state.get("phase") == "joint":
            codec.stage_a.load_state_dict(state["stage_a"])
            codec.encoder.load_state_dict(state["ema_encoder"])
            codec.stage_b.load_state_dict(state["ema_stage_b"])
            codec.stage_a.scale_factor = state["latent_scale"]
            return codec, f"tiny trainer checkpoint (EMA), joint phase step {state['step']}, {state['elapsed']:.0f} s trained — NOT the final model"
    sys.path.insert(0, str(ROOT / "tests"))
    from _recipe import recipe_state_dict

    for module in (codec.stage_a, codec.encoder, codec.stage_b):
        module.load_state_dict(recipe_state_dict(module.state_dict()))
    return codec, "RANDOM fixture-recipe weights (tiny architecture, untrained): rates and flicker are not the trained model's"


def flicker(frames: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b.astype(np.int16) - a.astype(np.int16)).mean() for a, b in zip(frames, frames[1:])]))


def psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    mse = np.mean([np.mean((x.astype(np.float64) - y) ** 2) for x, y in zip(a, b)])
    return 10 * math.log10(255**2 / mse)


def run_clip(codec, name: str, args) -> dict:
    from neurcodec.bitstream import dequantize, read_video, step_from_index
    from neurcodec.video import DEFAULT_HYSTERESIS, VideoCodec, group_symbols
    from neurcodec.video_io import read_clip

    path = DATA / name
    info, frames = read_clip(path)
    video = VideoCodec(codec)
    t0 = time.perf_counter()
    latents = list(video._latents(iter(frames)))
    latent_seconds = time.perf_counter() - t0

    class Cached(VideoCodec):  # the encoder is the slow part: run it once per clip
        def _latents(self, frames_in):
            return iter(latents[: sum(1 for _ in frames_in)])

    cached = Cached(codec)
    duration = len(frames) / float(info.fps)
    out: dict = {"frames": len(frames), "fps": float(info.fps), "size": [info.width, info.height],
                 "encoder_seconds_per_frame": latent_seconds / len(frames)}
    variants = {"temporal": dict(gop=args.gop), "temporal_plain_rounding": dict(gop=args.gop, hysteresis=0.5),
                "intra_only": dict(temporal=False)}
    streams = {}
    for key, options in variants.items():
        buf = io.BytesIO()
        report = cached.encode(path, buf, quality=args.quality, steps=args.steps, **options)
        data = buf.getvalue()
        streams[key] = data
        video_file = read_video(data)
        step = step_from_index(video_file.header.step_index)
        shape = tuple(video_file.header.latent_shape)
        decoded = [dequantize(s, step) for g in video_file.groups for s in group_symbols(g, shape)]
        rmse = float(np.sqrt(np.mean([np.mean((d - l) ** 2) for d, l in zip(decoded, latents)])))
        out[key] = {"bytes": len(data), "kbps": 8 * len(data) / 1000 / duration, "bpp": report.bpp,
                    "intra_bytes": report.intra_bytes, "residual_bytes": report.residual_bytes,
                    "latent_rmse": rmse, "latent_rmse_over_step": rmse / step}
    out["step"] = step
    out["latent_std"] = float(np.std(np.stack(latents)))
    out["saving_vs_intra"] = 1 - out["temporal"]["bytes"] / out["intra_only"]["bytes"]
    out["saving_vs_intra_plain_rounding"] = 1 - out["temporal_plain_rounding"]["bytes"] / out["intra_only"]["bytes"]
    out["hysteresis"] = DEFAULT_HYSTERESIS
    if name.startswith("foreman") and args.decode_frames:
        n = min(args.decode_frames, len(frames))
        buf = io.BytesIO()
        cached.encode(path, buf, quality=args.quality, gop=args.gop, steps=args.steps, limit=n)
        t0 = time.perf_counter()
        decoded = list(video.frames(video.open(io.BytesIO(buf.getvalue()))))
        seconds = time.perf_counter() - t0
        src_flicker, dec_flicker = flicker(frames[:n]), flicker(decoded)
        out["flicker"] = {"frames": n, "steps": args.steps or cached.codec.family.decode.steps, "source": src_flicker, "decoded": dec_flicker,
                          "ratio": dec_flicker / src_flicker, "psnr_rgb": psnr(frames[:n], decoded),
                          "decode_seconds_per_frame": seconds / n}
    return out


def _peak_rss_kib(command: list[str]) -> int:
    """Peak RSS (KiB) of `command`, run as the only child of a fresh Python process."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1])


def _repeat_clip(source: Path, times: int, target: Path) -> int:
    """Write `source` played `times` times in a row as a y4m; returns the frame count."""
    import av

    from neurcodec.video_io import read_clip

    info, frames = read_clip(source)
    with av.open(str(target), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=info.fps)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, "yuv420p"
        for _ in range(times):
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return times * len(frames)


def memory_probe(source: Path, times: int, quality: int, threads: int) -> dict:
    """Peak RSS of the CLI encoding and decoding `source` repeated `times` times (fresh processes).

    The decode uses one sampling step: steps change time, not memory."""
    with tempfile.TemporaryDirectory() as tmp:
        clip, dae, back = Path(tmp) / "clip.y4m", Path(tmp) / "clip.dae", Path(tmp) / "back.mkv"
        frames = _repeat_clip(source, times, clip)
        common = ["--quiet", "--threads", str(threads)]
        encode = _peak_rss_kib(["neurcodec", "encode", str(clip), "-o", str(dae), "-q", str(quality), *common])
        decode = _peak_rss_kib(["neurcodec", "decode", str(dae), "-o", str(back), "--steps", "1", *common])
    return {"frames": frames, "encode_peak_rss_mib": encode / 1024, "decode_peak_rss_mib": decode / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("/work/runs/tiny/checkpoint.pt"))
    parser.add_argument("--quality", type=int, default=50)
    parser.add_argument("--gop", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="decode steps for the flicker measurement (default: the model's)")
    parser.add_argument("--decode-frames", type=int, default=25, help="foreman frames decoded for flicker (0: skip)")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="peak memory of foreman played 1x and 10x (CLI encode + decode)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    codec, weights = load_codec(args.checkpoint)
    result = {
        "benchmark": "video_temporal",
        "weights": weights,
        "quality": args.quality,
        "gop": args.gop,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                    "cpus": os.cpu_count()},
        "targets": {"saving_vs_intra": ">= 0.30", "flicker_ratio_foreman": "<= 1.5"},
        "clips": {},
    }
    for name in CLIPS:
        print(f"{name} ...", file=sys.stderr)
        result["clips"][name] = run_clip(codec, name, args)
        print(json.dumps(result["clips"][name], indent=1), file=sys.stderr)
    if args.memory:
        source = DATA / "foreman_cif_25f.y4m"
        probes = [memory_probe(source, times, args.quality, args.threads) for times in (1, 10)]
        result["memory"] = {
            "clip": f"{source.name} played 1x and 10x in a row, through the CLI (encode, then a 1-step decode)",
            "runs": probes,
            "decode_growth_10x": probes[1]["decode_peak_rss_mib"] / probes[0]["decode_peak_rss_mib"],
            "encode_growth_10x": probes[1]["encode_peak_rss_mib"] / probes[0]["encode_peak_rss_mib"],
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
