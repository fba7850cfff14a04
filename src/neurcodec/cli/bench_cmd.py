"""`neurcodec bench DIR --vs jpeg,webp,avif`: argument parsing only; the work is in neurcodec.bench."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from neurcodec.cli import app
from neurcodec.errors import OutputExistsError, UsageError


@app.command()
def bench(
    directory: Annotated[Path, typer.Argument(help="Folder of images (png, jpg, ppm, ...) or of video clips (y4m, mp4, ...).")],
    vs: Annotated[
        str,
        typer.Option(
            "--vs",
            help="Anchors: jpeg, webp, avif, jxl, jpeg2000; add -x2/-x4 to downscale first (e.g. jpeg-x4). Videos: h264, h265 (default).",
        ),
    ] = "jpeg,webp,avif",
    frames: Annotated[int | None, typer.Option("--frames", min=1, help="Videos: use only the first N frames of each clip.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="neurcodec model to benchmark (default: the bundled default model).")] = None,
    quality: Annotated[
        str | None, typer.Option("--quality", "-q", help="neurcodec -q sweep (default 0,10,20,30,50).")
    ] = None,
    steps: Annotated[
        str | None, typer.Option("--steps", help="Decode step counts, one curve each, e.g. 10,30.")
    ] = None,
    anchor_quality: Annotated[
        list[str] | None,
        typer.Option("--anchor-quality", help="An anchor's quality sweep instead of its default, NAME=Q,Q,... (repeatable), e.g. avif-x4=0,2,4,6,8,10,15,20."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes for the classical codecs.")] = 1,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Use only the first N images.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for results.json/.csv and rd-*.png.")] = Path(
        "bench-results"
    ),
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", help="Metrics to compute, comma-separated (default: psnr-rgb, ms-ssim-rgb, thumb-psnr, niqe, and ssimulacra2 if installed). Learned ones only when asked: lpips, dists (per image), fid, kid (over the 256² patches of each decoded set); they need the metrics extra and their backbone weights already in the torch hub cache."),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="Device for neurcodec (cpu, cuda, mps).")] = None,
    no_neural: Annotated[bool, typer.Option("--no-neural", help="Classical anchors only.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print results.json on stdout.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y", help="Replace results already in --out.")] = False,
    html_report: Annotated[bool, typer.Option("--html", help="Also write report.html: RD plots, BD table and the pictures side by side at the closest bytes (self-contained).")] = False,
    html_images: Annotated[int, typer.Option("--html-images", min=1, help="With --html: how many images the viewer holds (each adds ~1 MB per codec).")] = 8,
) -> None:
    """Rate–quality of neurcodec against classical anchors: table, JSON, CSV, RD plots, BD-rate."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from neurcodec.bench import (
        BenchConfig,
        bd_table,
        find_images,
        make_plan,
        parse_list,
        rd_table,
        run_bench,
        write_reports,
    )
    from neurcodec.bench import metrics as M
    from neurcodec.zoo import default_family

    err = Console(stderr=True)
    if (out / "results.json").exists() and not overwrite:
        raise OutputExistsError(f"{out / 'results.json'} exists (use -y to replace it)")
    metric_names = parse_list(metrics, str)
    if metric_names:
        unknown = [m for m in metric_names if m not in M.METRICS]
        if unknown:
            raise UsageError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(M.METRICS)}")
        from neurcodec.bench.perceptual import require

        require([m for m in metric_names if m in M.LEARNED])  # exit 7 names a missing backbone file
        missing = {m: why for m in metric_names if (why := M.unavailable(m))}
        if missing:
            raise UsageError("; ".join(f"{m}: {why}" for m, why in missing.items()))

    from neurcodec.bench.codecs.video import find_clips, is_video_dir, make_video_plan, run_video_bench

    video = is_video_dir(directory)
    if video and vs == "jpeg,webp,avif":  # the image default: videos compare with video codecs
        vs = "h264,h265"
    if video and metric_names:
        raise UsageError("--metrics applies to image folders; a clip bench measures PSNR per frame")
    if video and html_report:
        raise UsageError("--html compares still images; for clips use the RD plots and results.json")
    images = find_clips(directory, limit) if video else find_images(directory, limit)
    config = BenchConfig(
        anchors=parse_list(vs, str) or [],
        model=None if no_neural else (model or default_family()),
        qualities=parse_list(quality),
        steps=parse_list(steps) or [None],
        device=device,
        anchor_qualities=_anchor_qualities(anchor_quality or []),
    )
    stray = sorted(set(config.anchor_qualities) - set(config.anchors))
    if stray:
        raise UsageError(f"--anchor-quality names {', '.join(stray)}, which --vs does not include")
    plan = make_video_plan(config) if video else make_plan(config)
    for note in plan.notes:
        err.print(f"[yellow]note:[/] {note}")
    skipped = [
        {"part": f"metric {m}", "reason": why}
        for m, why in M.optional_metrics().items() if why and not metric_names
    ]
    _print_skipped(err, skipped)

    total = len(images) * sum(len(qs) for _, qs in plan.sweeps)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("bench", total=total)

        def on_row(row) -> None:  # type: ignore[no-untyped-def]
            progress.update(task, advance=1, description=f"{row.codec} q{row.quality}")

        if video:
            results = run_video_bench(images, plan.sweeps, frames, on_row=on_row)
        else:
            results = run_bench(images, plan.sweeps, metric_names, jobs=jobs, on_row=on_row)
    for note in results.notes:  # from the run itself (e.g. a metric undefined on small images)
        err.print(f"[yellow]note:[/] {note}")
    results.notes.extend(plan.notes)
    doc, written = write_reports(results, out, plan.tests, plan.anchors, skipped)
    _print_skipped(err, doc["skipped"][len(skipped):])
    if html_report:
        from neurcodec.bench.html import viewer_data, write_html

        reference = (plan.tests or plan.anchors)[0]  # with --no-neural the first anchor leads
        others = [a for a in plan.anchors if a != reference]
        viewer = viewer_data(results, plan.sweeps, images, reference, others, limit=html_images)
        written.append(write_html(out, doc, [p for p in written if p.suffix == ".png"], viewer))

    table_console = err if json_out else Console()
    table_console.print(rd_table(results))
    if plan.tests:
        from neurcodec.bench.report import compare, matched_bpp, matched_table

        table_console.print(bd_table(compare(results, plan.tests, plan.anchors)))
        table_console.print(matched_table(matched_bpp(results, plan.tests, plan.anchors)))
    err.print(f"wrote {', '.join(str(p) for p in written)}")
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")


def _print_skipped(err, skipped: list[dict[str, str]]) -> None:  # type: ignore[no-untyped-def]
    """One stderr line per reason (matplotlib missing would otherwise say it once per plot)."""
    by_reason: dict[str, list[str]] = {}
    for s in skipped:
        by_reason.setdefault(s["reason"], []).append(s["part"])
    for why, parts in by_reason.items():
        err.print(f"[yellow]skipped[/] {', '.join(parts)}: {why}", highlight=False, soft_wrap=True)


def _anchor_qualities(specs: list[str]) -> dict[str, list[int]]:
    """["avif-x4=0,2,4"] → {"avif-x4": [0, 2, 4]}."""
    from neurcodec.bench import parse_list

    out = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        qualities = parse_list(values)
        if not sep or not name or not qualities:
            raise UsageError(f"--anchor-quality wants NAME=Q,Q,..., got {spec!r}")
        out[name] = qualities
    return out
