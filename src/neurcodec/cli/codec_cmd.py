"""`neurcodec encode`, `decode` and `info`: argument parsing around the Python codec API.

Conventions (cjxl / zstd / ffmpeg habits): `-` is stdin/stdout; without `-o`, `photo.png`
encodes to `photo.dae` next to it and `photo.dae` decodes to `photo.png` (stdin goes to stdout);
several inputs need `-O DIR`; nothing is overwritten without `-y`; outputs are written atomically;
progress goes to stderr only on a terminal; `--json` prints one result line per file on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from neurcodec import fileio, limits, media
from neurcodec.bitstream.container import MAX_SEED, MAX_STEPS
from neurcodec.cli import app, video_cmd
from neurcodec.errors import NeurcodecError, UsageError
from neurcodec.info import check_image_latent, describe

DAE_SUFFIX = ".dae"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class DType(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"


class Sampler(str, Enum):
    ddpm = "ddpm"
    ddim = "ddim"
    dpmpp_2m = "dpmpp-2m"


# ---------------------------------------------------------------------------- shared options

OutputOpt = Annotated[
    str | None, typer.Option("-o", "--output", help="Output file, or '-' for stdout.")
]
OutdirOpt = Annotated[
    Path | None,
    typer.Option("-O", "--outdir", help="Output folder (created if needed); needed for several inputs."),
]
# Ranges are the file format's (checked here, before any model loads).
StepsOpt = Annotated[int | None, typer.Option("--steps", min=1, max=MAX_STEPS, help="Diffusion sampling steps.")]
GuidanceOpt = Annotated[
    float | None, typer.Option("--guidance", min=0.0, max=100.0, help="Classifier-free guidance weight.")
]
SamplerOpt = Annotated[Sampler | None, typer.Option("--sampler", help="Diffusion sampler.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", min=0, max=MAX_SEED, help="Sampling noise seed.")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where the model runs.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for torch.")]
DTypeOpt = Annotated[
    DType | None, typer.Option("--dtype", help="Compute precision. Default: the model's measured choice (bf16 autocast for Stable Cascade on CPUs with native bf16, fp32 otherwise). On CPU this sets autocast over fp32 weights; on CUDA it casts the weights.")
]
OverwriteOpt = Annotated[bool, typer.Option("-y", "--overwrite", help="Overwrite existing outputs.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON result line per file on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress or summary on stderr.")]
MaxPixelsOpt = Annotated[int | None, typer.Option("--max-pixels", min=1, help="Refuse pictures and video frames above N pixels (default 40,000,000; env NEURCODEC_MAX_PIXELS).")]
MaxFramesOpt = Annotated[int | None, typer.Option("--max-frames", min=1, help="Refuse videos above N frames (default 100,000; env NEURCODEC_MAX_FRAMES).")]
MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", min=1, help="Refuse files asking for more than N sampling steps (default 1,000; env NEURCODEC_MAX_STEPS); --steps overrides the file.")]

ENCODE_EPILOG = """\
Examples:
  neurcodec encode photo.png                        # writes photo.dae
  neurcodec encode photo.jpg -o small.dae -q 20
  neurcodec encode photo.png -o p.dae --bpp 0.03    # search the quality for a target rate
  neurcodec encode photo.png --bpp 0.045 --search-steps 60   # minutes: a closer decode
  neurcodec encode shots/*.png -O dae/ --json       # batch, one JSON line per file
  cat photo.png | neurcodec encode - -o - > photo.dae
  cat photo.png | neurcodec encode - | neurcodec decode - -o out.png

Alpha is carried losslessly; 16-bit images are coded at 8-bit precision and come back in
their 16-bit mode; CMYK and palette images come back as RGB(A). --steps/--guidance/--sampler/
--seed are stored in the file as its decode defaults.
"""

DECODE_EPILOG = """\
Examples:
  neurcodec decode photo.dae                        # writes photo.png
  neurcodec decode photo.dae -o photo.jpg --steps 30 --guidance 3 --seed 7
  neurcodec decode dae/*.dae -O out/ --format webp
  neurcodec decode - -o - < photo.dae > photo.png   # stdout is PNG unless --format

  neurcodec decode photo.dae --variations 4 --steps 10 -o var_%02d.png   # 4 samples, seeds 0..3

Settings not given come from the file (the encoder's choices, else the model's defaults).
The same file, seed and settings decode to the same pixels on one machine.
"""

INTERPOLATE_EPILOG = """\
Examples:
  neurcodec interpolate a.dae b.dae -n 8 -o mix_%02d.png
  neurcodec interpolate a.dae b.dae -n 5 --steps 10 -o mix_%d.webp

Linear in the conditioning latent, spherical in the sampling noise (between the two files'
seeds), as Diffusion Autoencoders interpolate. The first and last pictures are the plain
decodes of A and B. Both files must come from the same model and have the same size.
"""

INFO_EPILOG = """\
Examples:
  neurcodec info photo.dae                          # human-readable
  neurcodec info photo.dae --json | jq .bpp
"""


# ---------------------------------------------------------------------------- runtime


@dataclass
class _Runtime:
    """Device/precision/threads for this run and the models loaded so far (one per name)."""

    device: str
    dtype: str | None
    threads: int | None
    _codecs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.threads is None and self.device == "cpu":
            return  # nothing to set up: keep torch's import for when a model is loaded
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda: CUDA is not available on this machine")
        if self.device == "mps" and not torch.backends.mps.is_available():
            raise UsageError("--device mps: MPS is not available on this machine")

    def codec(self, name: str) -> Any:
        if name not in self._codecs:
            from neurcodec.codec import load_on

            self._codecs[name] = load_on(name, self.device, self.dtype)
        return self._codecs[name]


@dataclass
class _Reporter:
    """Progress bar over files on a stderr terminal, summaries on stderr, JSON on stdout."""

    total: int
    json_lines: bool
    quiet: bool
    # soft_wrap: a line is one line whatever the width (a pipe or a log file has none).
    console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))
    progress: Progress | None = None
    files_task: Any = None
    steps_task: Any = None

    @contextmanager
    def running(self) -> Iterator[_Reporter]:
        if self.quiet or not sys.stderr.isatty():
            yield self
            return
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        with self.progress:
            self.files_task = self.progress.add_task("files", total=self.total)
            yield self
        self.progress = None

    def start(self, name: str) -> None:
        if self.progress is not None:
            self.progress.update(self.files_task, description=name)

    def steps(self, done: int, total: int) -> None:
        if self.progress is None:
            return
        if self.steps_task is None:
            self.steps_task = self.progress.add_task("  steps", total=total)
        self.progress.update(self.steps_task, completed=done, total=total)

    def _next_file(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.files_task)
            if self.steps_task is not None:
                self.progress.remove_task(self.steps_task)
                self.steps_task = None

    def done(self, result: dict[str, Any], summary: str) -> None:
        self._next_file()
        if not self.quiet:
            self.console.print(summary)
        if self.json_lines:
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()

    def failed(self, source: str, exc: NeurcodecError) -> None:
        """One line naming the file (and, with --json, a result line saying what went wrong)."""
        self._next_file()
        message = str(exc) if str(exc).startswith(source) else f"{source}: {exc}"
        self.console.print(f"neurcodec: {message}", markup=False)
        if self.json_lines:
            sys.stdout.write(json.dumps({"file": source, "error": message, "exit_code": exc.exit_code}) + "\n")
            sys.stdout.flush()


def _label(path: str) -> str:
    return "<stdin>" if fileio.is_stdio(path) else path


def _out_label(path: str) -> str:
    return "<stdout>" if fileio.is_stdio(path) else path


def _plan_outputs(
    inputs: list[str], output: str | None, outdir: Path | None, name_for: Callable[[str], str],
    overwrite: bool, json_lines: bool,
) -> list[str]:
    """Each input's output path, checked before any work is done."""
    if output is not None and outdir is not None:
        raise UsageError("use either -o FILE or -O DIR, not both")
    if len(inputs) > 1 and outdir is None:
        raise UsageError(f"{len(inputs)} inputs need -O DIR (-o names a single output)")
    if sum(fileio.is_stdio(i) for i in inputs) > 1:
        raise UsageError("stdin ('-') can be read only once")
    if output is not None:
        outputs = [output]
    elif outdir is not None:
        if any(fileio.is_stdio(i) for i in inputs):
            raise UsageError("stdin ('-') has no name to put in -O DIR; use -o FILE")
        outputs = [str(outdir / name_for(Path(i).name)) for i in inputs]
    else:
        outputs = [fileio.STDIO if fileio.is_stdio(i) else name_for(i) for i in inputs]

    if json_lines and any(fileio.is_stdio(o) for o in outputs):
        raise UsageError("--json prints on stdout, so the output cannot be stdout; use -o FILE")
    seen: set[Path] = set()
    for source, target in zip(inputs, outputs, strict=True):
        if fileio.is_stdio(target):
            continue
        resolved = Path(target).resolve()
        if not fileio.is_stdio(source) and resolved == Path(source).resolve():
            raise UsageError(f"{target}: output would overwrite its input")
        if resolved in seen:
            raise UsageError(f"{target}: two inputs would write the same output")
        seen.add(resolved)
    if outdir is not None:
        if outdir.exists() and not outdir.is_dir():
            raise UsageError(f"{outdir}: not a folder")
        outdir.mkdir(parents=True, exist_ok=True)
    for target in outputs:
        fileio.check_output(target, overwrite)
    return outputs


def _run_all(
    inputs: list[str], outputs: list[str], reporter: _Reporter,
    one: Callable[[str, str], tuple[dict[str, Any], str]],
) -> None:
    """Run `one(input, output)` for each file; in a batch keep going past failures and exit
    with the first failure's code."""
    failures: list[NeurcodecError] = []
    with fileio.sigterm_raises(), reporter.running():
        for source, target in zip(inputs, outputs, strict=True):
            reporter.start(_label(source))
            try:
                result, summary = one(source, target)
            except NeurcodecError as exc:
                if len(inputs) == 1:
                    raise
                failures.append(exc)
                reporter.failed(_label(source), exc)
                continue
            reporter.done(result, summary)
    if failures:
        first = failures[0]
        raise type(first)(f"{len(failures)} of {len(inputs)} files failed (first: {first})")


def _numbered_outputs(pattern: str, n: int, overwrite: bool) -> list[str]:
    """`pattern`'s one number field (`%d`, `%02d` …) filled with 0 … n−1; checked before any work."""
    fileio.check_numbered_output(pattern, overwrite, what=f"{n} pictures")
    return [fileio.numbered(pattern, i) for i in range(n)]


def _write_pictures(
    pictures: Iterator[Any], names: list[str], fmt: str | None, source: str, overwrite: bool, json_lines: bool, quiet: bool
) -> None:
    """Write each picture as it arrives, reporting it like a decoded file."""
    specs = [media.output_format(name, fmt) for name in names]  # a bad --format fails before any work
    reporter = _Reporter(len(names), json_lines, quiet)
    with fileio.sigterm_raises(), reporter.running():
        start = time.perf_counter()
        for name, spec, image in zip(names, specs, pictures, strict=False):
            reporter.start(name)
            fileio.atomic_write(name, lambda f, image=image, spec=spec: media.write_image(image, f, spec), overwrite=overwrite)
            seconds, start = time.perf_counter() - start, time.perf_counter()
            reporter.done(*_picture_report(source, name, image, spec, seconds))


def _picture_report(
    source: str, target: str, image: Any, spec: media.OutputFormat, seconds: float, **file_facts: Any
) -> tuple[dict[str, Any], str]:
    """The JSON result and the summary line of one decoded picture written to `target`."""
    width, height = image.size
    result = {
        "file": source, "output": target, **file_facts, "width": width, "height": height,
        "mode": image.mode, "format": spec.name, "seconds": round(seconds, 4),
    }
    return result, f"{_label(source)} -> {_out_label(target)}: {width}x{height} {image.mode} {spec.name}, {seconds:.2f} s"


# ---------------------------------------------------------------------------- encode


def check_rate_flags(quality: int | None, bpp: float | None) -> None:
    """-q and --bpp, checked before any work (without importing the codec)."""
    if quality is not None and bpp is not None:
        raise UsageError("use either -q or --bpp, not both")
    if bpp is not None and bpp <= 0:
        raise UsageError(f"--bpp must be positive, got {bpp}")


def default_model() -> str:
    from neurcodec.zoo import default_family

    return default_family()


@app.command(epilog=ENCODE_EPILOG)
def encode(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT", help="Images or video clips (mp4, mkv, webm, y4m, ...), or '-' for stdin.")],
    output: OutputOpt = None,
    outdir: OutdirOpt = None,
    quality: Annotated[
        int | None, typer.Option("-q", "--quality", min=0, max=100, help="Quality 0..100 (higher: more bytes).")
    ] = None,
    bpp: Annotated[
        float | None, typer.Option("--bpp", help="Target bits per pixel instead of -q.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model family (see `neurcodec models`; default: the bundled default model).")] = None,
    gop: Annotated[int | None, typer.Option("--gop", min=1, max=1024, help="Video: intra refresh every N frames (default 32).")] = None,
    fps: Annotated[float | None, typer.Option("--fps", min=0.001, help="Video: frame rate for inputs without timing (raw .h264).")] = None,
    steps: StepsOpt = None,
    guidance: GuidanceOpt = None,
    sampler: SamplerOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = Device.cpu,
    threads: ThreadsOpt = None,
    dtype: DTypeOpt = None,
    overwrite: OverwriteOpt = False,
    json_lines: JsonOpt = False,
    quiet: QuietOpt = False,
    max_pixels: MaxPixelsOpt = None,
    search_steps: Annotated[
        int,
        typer.Option(
            "--search-steps", min=0, max=10000, metavar="N",
            help="Images: N gradient steps searching for a latent that decodes closer to the image: "
            "higher fidelity, more bytes at the same -q, a much slower encode (~4 s a step at 768x512 "
            "on 2 CPU cores). Needs a model with a direct decode path (tiny2); files decode as any other.",
        ),
    ] = 0,
) -> None:
    """Encode images or video clips into .dae files."""
    limits.configure(max_pixels=max_pixels)
    check_rate_flags(quality, bpp)
    outputs = _plan_outputs(
        inputs, output, outdir, lambda name: str(Path(name).with_suffix(DAE_SUFFIX)),
        overwrite, json_lines,
    )
    runtime = _Runtime(device.value, dtype.value if dtype else None, threads)
    model = model if model is not None else default_model()
    settings = dict(
        quality=quality, bpp=bpp, seed=seed, steps=steps, guidance=guidance,
        sampler=sampler.value if sampler else None,
    )

    reporter = _Reporter(len(inputs), json_lines, quiet)

    def one(source: str, target: str) -> tuple[dict[str, Any], str]:
        if video_cmd.is_video_input(source):
            if search_steps:
                raise UsageError(f"{_label(source)}: --search-steps works on images, not video")
            return video_cmd.encode_one(
                runtime.codec(model), source, target, overwrite=overwrite, gop=gop, fps=fps, quiet=quiet, **settings
            )
        image = media.open_image(fileio.read_input(source), name=_label(source))
        codec = runtime.codec(model)
        start = time.perf_counter()
        blob = codec.encode(image, **settings, search_steps=search_steps, progress=reporter.steps)
        seconds = time.perf_counter() - start
        fileio.atomic_write(target, blob, overwrite=overwrite)
        width, height = image.size
        result = {
            "file": source, "output": target, "bytes": len(blob),
            "bpp": 8 * len(blob) / (width * height), "width": width, "height": height,
            "seconds": round(seconds, 4),
        }
        summary = (
            f"{_label(source)} -> {_out_label(target)}: {len(blob)} bytes, "
            f"{result['bpp']:.4f} bpp, {width}x{height}, {seconds:.2f} s"
        )
        return result, summary

    _run_all(inputs, outputs, reporter, one)


# ---------------------------------------------------------------------------- decode


@app.command(epilog=DECODE_EPILOG)
def decode(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT.dae", help=".dae files, or '-' for stdin.")],
    output: OutputOpt = None,
    outdir: OutdirOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="Image format: png, jpeg, webp, tiff, bmp, ppm, avif (default: from the extension; png for stdout)."),
    ] = None,
    steps: StepsOpt = None,
    guidance: GuidanceOpt = None,
    sampler: SamplerOpt = None,
    seed: SeedOpt = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Decode with this model (default: the one named in the file).")
    ] = None,
    crf: Annotated[int | None, typer.Option("--crf", min=0, max=51, help="Video: H.264 CRF of mp4/mkv/mov output (default 12; 0 lossless).")] = None,
    pix_fmt: Annotated[str | None, typer.Option("--pix-fmt", help="Video: yuv420p (default) or yuv444p.")] = None,
    refine: Annotated[float | None, typer.Option("--refine", min=0.0, max=1.0, help="Video: start each batch from the previous frames noised to this t (partial diffusion).")] = None,
    variations: Annotated[int | None, typer.Option("--variations", min=1, help="Write N samples of one image .dae (seeds seed, seed+1, ...) to -o NAME_%02d.png; needs a decode of 2+ steps.")] = None,
    device: DeviceOpt = Device.cpu,
    threads: ThreadsOpt = None,
    dtype: DTypeOpt = None,
    overwrite: OverwriteOpt = False,
    json_lines: JsonOpt = False,
    quiet: QuietOpt = False,
    max_pixels: MaxPixelsOpt = None,
    max_frames: MaxFramesOpt = None,
    max_steps: MaxStepsOpt = None,
) -> None:
    """Decode .dae files into images (or, for a video .dae, a clip)."""
    limits.configure(max_pixels=max_pixels, max_frames=max_frames, max_steps=max_steps)
    if variations is not None:
        if len(inputs) != 1 or outdir is not None:
            raise UsageError("--variations decodes one file: give one INPUT.dae and -o NAME_%02d.png")
        source = inputs[0]
        if video_cmd.is_video_dae(source):
            raise UsageError(f"{_label(source)}: --variations applies to image .dae files, not video")
        stem = "variation" if fileio.is_stdio(source) else Path(source).stem
        names = _numbered_outputs(output or f"{stem}_%02d.png", variations, overwrite)
        runtime = _Runtime(device.value, dtype.value if dtype else None, threads)
        data = fileio.read_input(source)
        codec = runtime.codec(model or describe(data)["model"])
        pictures = codec.variations(data, variations, steps=steps, guidance=guidance, seed=seed, sampler=sampler.value if sampler else None)
        _write_pictures(pictures, names, fmt, source, overwrite, json_lines, quiet)
        return
    default_spec = media.output_format(None, None if video_cmd.is_video_format(fmt) else fmt)  # also validates --format early
    videos = {i for i in inputs if video_cmd.is_video_dae(i)}
    video_names = videos | {Path(i).name for i in videos}
    outputs = _plan_outputs(
        inputs, output, outdir,
        lambda name: video_cmd.output_name(name, fmt) if name in video_names else str(Path(name).with_suffix(default_spec.extension)),
        overwrite, json_lines,
    )
    specs = [None if i in videos else media.output_format(target, fmt) for i, target in zip(inputs, outputs, strict=True)]
    runtime = _Runtime(device.value, dtype.value if dtype else None, threads)
    settings = dict(steps=steps, guidance=guidance, seed=seed, sampler=sampler.value if sampler else None)
    reporter = _Reporter(len(inputs), json_lines, quiet)
    spec_for = dict(zip(outputs, specs, strict=True))

    def one(source: str, target: str) -> tuple[dict[str, Any], str]:
        if source in videos:
            return video_cmd.decode_one(
                runtime.codec, model, source, target, fmt=fmt, overwrite=overwrite, crf=crf, pix_fmt=pix_fmt,
                refine=refine, progress=reporter.steps, quiet=quiet, **settings,
            )
        data = fileio.read_input(source)
        header = describe(data)
        limits.check_pixels(header["width"], header["height"], what=f"{_label(source)}: image")  # before the model loads
        spec = spec_for[target]
        # Refuse before the (slow) diffusion decode what the format could not hold.
        media.check_can_save(header.get("mode", "RGB"), spec, transparent=bool(header.get("alpha")))
        check_image_latent(data)
        codec = runtime.codec(model or header["model"])
        start = time.perf_counter()
        image = codec.decode(data, progress=reporter.steps, **settings)
        seconds = time.perf_counter() - start
        fileio.atomic_write(target, lambda f: media.write_image(image, f, spec), overwrite=overwrite)
        bpp = 8 * len(data) / (image.width * image.height)
        return _picture_report(source, target, image, spec, seconds, bytes=len(data), bpp=bpp)

    _run_all(inputs, outputs, reporter, one)


# ---------------------------------------------------------------------------- interpolate


@app.command(epilog=INTERPOLATE_EPILOG)
def interpolate(
    first: Annotated[str, typer.Argument(metavar="A.dae", help="The first picture.")],
    last: Annotated[str, typer.Argument(metavar="B.dae", help="The last picture.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Output names with one number field, e.g. mix_%02d.png.")],
    count: Annotated[int, typer.Option("-n", "--count", min=2, help="Pictures to write, both ends included.")] = 8,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="Image format (default: from the extension).")] = None,
    steps: StepsOpt = None,
    guidance: GuidanceOpt = None,
    sampler: SamplerOpt = None,
    device: DeviceOpt = Device.cpu,
    threads: ThreadsOpt = None,
    dtype: DTypeOpt = None,
    overwrite: OverwriteOpt = False,
    json_lines: JsonOpt = False,
    quiet: QuietOpt = False,
    max_pixels: MaxPixelsOpt = None,
    max_steps: MaxStepsOpt = None,
) -> None:
    """Pictures in between two .dae images of the same model and size."""
    limits.configure(max_pixels=max_pixels, max_steps=max_steps)
    names = _numbered_outputs(output, count, overwrite)
    data = [fileio.read_input(path) for path in (first, last)]
    described = [describe(blob) for blob in data]
    if any(d["kind"] != "image" for d in described):
        raise UsageError("interpolate takes two image .dae files, not video")
    if described[0]["model"] != described[1]["model"]:
        raise UsageError(f"{first} was made by model {described[0]['model']!r} and {last} by {described[1]['model']!r}: they cannot be mixed")
    runtime = _Runtime(device.value, dtype.value if dtype else None, threads)
    codec = runtime.codec(described[0]["model"])
    pictures = codec.interpolate(*data, count, steps=steps, guidance=guidance, sampler=sampler.value if sampler else None)
    _write_pictures(pictures, names, fmt, f"{first} → {last}", overwrite, json_lines, quiet)


# ---------------------------------------------------------------------------- info


@app.command(epilog=INFO_EPILOG)
def info(
    inputs: Annotated[list[str], typer.Argument(metavar="FILE.dae", help=".dae files, or '-' for stdin.")],
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object per file on stdout.")] = False,
) -> None:
    """Show what a .dae file holds: model, original size and mode, latent, bpp, settings, sizes."""
    if sum(fileio.is_stdio(i) for i in inputs) > 1:
        raise UsageError("stdin ('-') can be read only once")
    console = Console(highlight=False)
    for source in inputs:
        data = fileio.read_input(source)
        described = {"file": source, "bytes": len(data), **describe(data)}
        if json_lines:
            sys.stdout.write(json.dumps(described, default=str) + "\n")
            continue
        table = Table(title=_label(source), show_header=False, title_justify="left", box=None)
        table.add_column(style="bold")
        table.add_column()
        for key, value in _flatten(described):
            table.add_row(key, value)
        console.print(table)


def _flatten(mapping: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.")
        elif isinstance(value, (list, tuple)):
            yield name, " x ".join(map(str, value)) if key.endswith("shape") else ", ".join(map(str, value))
        elif isinstance(value, float):
            yield name, f"{value:.6g}"
        else:
            yield name, str(value)
