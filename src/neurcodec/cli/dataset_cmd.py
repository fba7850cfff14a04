"""`neurcodec dataset encode|decode|info`: whole collections, in-process or on a Ray cluster.

A thin layer over `neurcodec.dataset`: options in, one progress bar and one summary line on
stderr, JSON lines on stdout with --json (one per shard, then the totals).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from neurcodec import limits
from neurcodec.cli import app
from neurcodec.cli.codec_cmd import (
    Device,
    DeviceOpt,
    DTypeOpt,
    GuidanceOpt,
    JsonOpt,
    MaxPixelsOpt,
    MaxStepsOpt,
    QuietOpt,
    SamplerOpt,
    SeedOpt,
    StepsOpt,
    ThreadsOpt,
    check_rate_flags,
    default_model,
)
from neurcodec.errors import ItemsFailedError, UsageError

dataset_app = typer.Typer(
    help="Encode or decode whole collections into sharded .dae datasets, here or on a Ray cluster.",
    no_args_is_help=True,
)
app.add_typer(dataset_app, name="dataset")


class ShardFormat(str, Enum):
    parquet = "parquet"
    webdataset = "webdataset"


class SourceFormat(str, Enum):
    auto = "auto"
    folder = "folder"
    list = "list"
    webdataset = "webdataset"
    parquet = "parquet"


RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="local|auto|ADDRESS",
        help="Run on Ray: 'local' starts a private instance here, 'auto' joins the running cluster (RAY_ADDRESS or `ray start`), or a cluster address HOST:PORT. Default: in this process. Needs the scale extra.",
    ),
]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, help="Ray: model-holding actors (default: the cluster's CPUs / --cpus-per-worker).")]
CpusOpt = Annotated[int, typer.Option("--cpus-per-worker", min=1, help="Ray: CPUs (and torch threads) per actor.")]
GpusOpt = Annotated[float | None, typer.Option("--gpus-per-worker", min=0.0, help="Ray: GPUs per actor (default 1 with --device cuda).")]
RestartOpt = Annotated[bool, typer.Option("-y", "--overwrite", help="Start over: clear this folder's previous job (its shards, state and manifest) instead of resuming.")]

ENCODE_EPILOG = """\
Examples:
  neurcodec dataset encode photos/ -o photos.dae.parquet/          # folder tree, in this process
  neurcodec dataset encode list.txt -o out/ -q 30 --format webdataset
  neurcodec dataset encode shards/ -o out/ --ray auto              # WebDataset tars, on a Ray cluster
  neurcodec dataset encode data.parquet --column image -o out/ --ray 10.0.0.5:6379
  neurcodec dataset encode s3://bucket/photos/ -o s3://bucket/dae/ --ray auto

Sources: a folder (recursive; files with an image extension), a list file (.txt: one path or
URI per line), WebDataset .tar shards (a file or a folder of them), Parquet with an image-bytes
column. Output: shard-NNNNN.parquet (a row per image: key, source, width, height, mode, bpp, dae,
source_sha256) or shard-NNNNN.tar (KEY.dae + KEY.json), manifest.json, and failures.jsonl for
images that could not be encoded (exit code 10). Each .dae is what `neurcodec encode` writes for
the same image and settings. Run the same command again to resume: complete shards are kept.
"""

DECODE_EPILOG = """\
Examples:
  neurcodec dataset decode out/ -o images/                    # KEY.png per row
  neurcodec dataset decode out/ -o images/ --format webp --steps 10 --ray auto

Each picture is what `neurcodec decode` gives for the same .dae and settings (same seed, same
pixels). For training in latent space, read the shards with neurcodec.dataset.DaeDataset instead
(no diffusion).
"""

INFO_EPILOG = """\
Examples:
  neurcodec dataset info out/
  neurcodec dataset info out/ --json --verify | jq .bpp
"""


@dataclass
class _JobReporter:
    """One progress bar (images/s, MB/s, ETA) on a stderr terminal; JSON lines on stdout."""

    verb: str
    json_lines: bool
    quiet: bool
    console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))
    progress: Progress | None = None
    task: Any = None
    by_image: bool = True
    images: int = 0
    megabytes: float = 0.0
    started: float = 0.0

    def start(self, shards: int, images: int | None) -> None:
        self.started = time.perf_counter()
        if self.quiet or not sys.stderr.isatty() or shards == 0:
            return
        self.by_image = images is not None
        self.progress = Progress(
            TextColumn(f"[progress.description]{self.verb}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("images" if self.by_image else "shards"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(self.verb, total=images if self.by_image else shards, rate="")

    def record(self, record: dict[str, Any]) -> None:
        self.images += record["items"]
        self.megabytes += record.get("source_bytes", 0) / 1e6
        if self.progress is not None:
            seconds = max(time.perf_counter() - self.started, 1e-9)
            rate = f"{self.images / seconds:.2f} img/s, {self.megabytes / seconds:.2f} MB/s"
            self.progress.update(self.task, advance=record["items"] if self.by_image else 1, rate=rate)
        if self.json_lines:
            line = {"event": "shard", **{k: v for k, v in record.items() if k not in ("failures", "files")}}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def finish(self, report: Any, what: str) -> None:
        self.stop()
        summary = report.summary()
        if self.json_lines:
            sys.stdout.write(json.dumps({"event": "done", **summary}) + "\n")
            sys.stdout.flush()
        if not self.quiet:
            rate = f", {summary['bpp']:.4f} bpp" if summary["bpp"] is not None and report.kind == "encode" else ""
            speed = f"{self.images / report.seconds:.2f} images/s" if report.seconds > 0 and self.images else "nothing left to do"
            failed = f", {report.failed} failed (see {report.failures_file})" if report.failed else ""
            self.console.print(
                f"{report.root}: {report.done} of {report.items} images {what} in {report.shards} shards "
                f"({report.shards_run} run now{rate}){failed}; {report.seconds:.1f} s, {speed}",
                markup=False,
            )
        if report.failed:
            raise ItemsFailedError(f"{report.failed} of {report.items} images failed (reasons in {report.failures_file})")


def _engine_and_placement(
    ray: str | None, workers: int | None, cpus: int, gpus: float | None, device: Any, dtype: Any, threads: int | None
) -> tuple[Any, Any]:
    """Where the job runs (in-process or Ray, and its actor pool) and where each model runs."""
    from neurcodec.dataset import Engine, Placement

    device_name = getattr(device, "value", device)
    if ray is None and (workers is not None or gpus is not None):
        raise UsageError("--workers and --gpus-per-worker apply with --ray (in-process runs one worker)")
    if device_name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: CUDA is not available on this machine")
    if gpus is None:
        gpus = 1.0 if device_name == "cuda" and ray is not None else 0.0
    engine = Engine(ray=ray, workers=workers, cpus_per_worker=cpus, gpus_per_worker=gpus)
    return engine, Placement(device=device_name, dtype=dtype.value if dtype else None, threads=threads)


def _run_job(verb: str, what: str, json_lines: bool, quiet: bool, job: Callable[[_JobReporter], Any]) -> None:
    reporter = _JobReporter(verb, json_lines, quiet)
    try:
        report = job(reporter)
    finally:
        reporter.stop()
    reporter.finish(report, what)


@dataset_app.command("encode", epilog=ENCODE_EPILOG)
def encode(
    source: Annotated[str, typer.Argument(metavar="SRC", help="Folder, list file, WebDataset .tar (or folder of them), .parquet; local or a URI (s3://, gs://).")],
    output: Annotated[str, typer.Option("-o", "--output", metavar="DST", help="Output folder (local or a URI); re-running resumes.")],
    quality: Annotated[int | None, typer.Option("-q", "--quality", min=0, max=100, help="Quality 0..100 (higher: more bytes).")] = None,
    bpp: Annotated[float | None, typer.Option("--bpp", help="Target bits per pixel instead of -q.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model family (default: the bundled default model).")] = None,
    shard_format: Annotated[ShardFormat, typer.Option("--format", "-f", help="Output shards.")] = ShardFormat.parquet,
    source_format: Annotated[SourceFormat, typer.Option("--source-format", help="What SRC is (auto: by its name and contents).")] = SourceFormat.auto,
    column: Annotated[str, typer.Option("--column", help="Parquet source: the image-bytes column.")] = "image",
    key_column: Annotated[str | None, typer.Option("--key-column", help="Parquet source: the column of keys (default: FILE/ROW).")] = None,
    shard_size: Annotated[int | None, typer.Option("--shard-size", min=1, help="Images per shard for folders and lists (default: about 64 shards, 8..1000 images each).")] = None,
    steps: StepsOpt = None,
    guidance: GuidanceOpt = None,
    sampler: SamplerOpt = None,
    seed: SeedOpt = None,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    cpus_per_worker: CpusOpt = 1,
    gpus_per_worker: GpusOpt = None,
    device: DeviceOpt = Device.cpu,
    dtype: DTypeOpt = None,
    threads: ThreadsOpt = None,
    overwrite: RestartOpt = False,
    json_lines: JsonOpt = False,
    quiet: QuietOpt = False,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    """Encode every image of a collection into sharded .dae rows (Parquet or WebDataset)."""
    from neurcodec.dataset import EncodeSettings, encode_dataset

    limits.configure(max_pixels=max_pixels)
    check_rate_flags(quality, bpp)
    engine, placement = _engine_and_placement(ray, workers, cpus_per_worker, gpus_per_worker, device, dtype, threads)
    settings = EncodeSettings(
        model=model if model is not None else default_model(), quality=quality, bpp=bpp, steps=steps, guidance=guidance, sampler=sampler.value if sampler else None,
        seed=seed, output_format=shard_format.value, max_pixels=max_pixels,
    )
    _run_job("encoding", "encoded", json_lines, quiet, lambda reporter: encode_dataset(
        source, output, settings, placement=placement, engine=engine, source_format=source_format.value,
        shard_size=shard_size, column=column, key_column=key_column, start_over=overwrite,
        on_start=reporter.start, on_record=reporter.record,
    ))


@dataset_app.command("decode", epilog=DECODE_EPILOG)
def decode(
    source: Annotated[str, typer.Argument(metavar="SRC", help="A folder made by `neurcodec dataset encode` (local or a URI).")],
    output: Annotated[str, typer.Option("-o", "--output", metavar="DST", help="Output folder: one image per row, named by its key.")],
    image_format: Annotated[str, typer.Option("--format", "-f", help="Image format: png, jpeg, webp, tiff, bmp, ppm, avif.")] = "png",
    steps: StepsOpt = None,
    guidance: GuidanceOpt = None,
    sampler: SamplerOpt = None,
    seed: SeedOpt = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Decode with this model (default: the one named in each file).")] = None,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    cpus_per_worker: CpusOpt = 1,
    gpus_per_worker: GpusOpt = None,
    device: DeviceOpt = Device.cpu,
    dtype: DTypeOpt = None,
    threads: ThreadsOpt = None,
    overwrite: RestartOpt = False,
    json_lines: JsonOpt = False,
    quiet: QuietOpt = False,
    max_pixels: MaxPixelsOpt = None,
    max_steps: MaxStepsOpt = None,
) -> None:
    """Decode a .dae dataset into one image file per row."""
    from neurcodec.dataset import DecodeSettings, decode_dataset

    limits.configure(max_pixels=max_pixels, max_steps=max_steps)
    engine, placement = _engine_and_placement(ray, workers, cpus_per_worker, gpus_per_worker, device, dtype, threads)
    settings = DecodeSettings(
        image_format=image_format.lower(), steps=steps, guidance=guidance, sampler=sampler.value if sampler else None,
        seed=seed, model=model, max_pixels=max_pixels, max_steps=max_steps,
    )
    _run_job("decoding", "decoded", json_lines, quiet, lambda reporter: decode_dataset(
        source, output, settings, placement=placement, engine=engine, start_over=overwrite,
        on_start=reporter.start, on_record=reporter.record,
    ))


@dataset_app.command("info", epilog=INFO_EPILOG)
def info(
    dest: Annotated[str, typer.Argument(metavar="DST", help="A dataset folder (local or a URI).")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    check: Annotated[bool, typer.Option("--verify", help="Re-read every shard and check it against the manifest's sha256 (exit 5 on a mismatch).")] = False,
) -> None:
    """Show what a dataset folder holds: settings, model, shards, images, failures, bpp."""
    from neurcodec.dataset import jobs
    from neurcodec.errors import CorruptFileError

    described = jobs.status(dest)
    bad = jobs.verify(dest) if check and described["complete"] else []
    if check:
        described["verified"] = not bad
        described["bad_shards"] = bad
    if json_out:
        sys.stdout.write(json.dumps(described, default=str) + "\n")
    else:
        from neurcodec.cli.codec_cmd import _flatten

        console = Console(highlight=False)
        for key, value in _flatten(described):
            console.print(f"[bold]{key}[/bold]  {value}", soft_wrap=True)
    if bad:
        raise CorruptFileError(f"{len(bad)} shard(s) do not match the manifest: {', '.join(bad[:5])}")
