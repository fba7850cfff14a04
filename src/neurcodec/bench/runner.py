"""Sweep codecs × settings × images, measuring bytes, time and metrics for every decode."""

from __future__ import annotations

import math
import multiprocessing
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from neurcodec.bench import metrics as M
from neurcodec.bench import perceptual
from neurcodec.bench.codecs import Codec, make_codec
from neurcodec import media
from neurcodec.errors import InputError

def find_images(directory: Path, limit: int | None = None) -> list[Path]:
    """Images directly in `directory` (sorted by name), at most `limit` of them."""
    return media.find_images(directory, limit=limit)


def load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None


@dataclass
class Row:
    """One image through one codec at one setting."""

    codec: str
    quality: int
    image: str
    width: int
    height: int
    bytes: int
    bpp: float
    encoding_time: float
    decoding_time: float
    metrics: dict[str, float] = field(default_factory=dict)
    # Inception features of the decode's 256² patches, for FID/KID (not written to reports).
    features: np.ndarray | None = field(default=None, repr=False, compare=False)

    def fields(self) -> dict[str, object]:
        """The row as reports write it: its own fields, then one column per metric."""
        return {k: v for k, v in vars(self).items() if k not in ("metrics", "features")} | self.metrics


@dataclass
class CurveResult:
    """A codec's per-setting means over images, in CompressAI's `results` layout."""

    name: str
    description: str
    quality_label: str
    qualities: list[int]
    results: dict[str, list[float]]  # "bpp", metric names, "encoding_time", "decoding_time"


@dataclass
class BenchResults:
    images: list[str]
    metrics: list[str]  # metric keys present in rows (incl. derived ms-ssim-rgb-db)
    rows: list[Row]
    curves: list[CurveResult]
    notes: list[str] = field(default_factory=list)
    set_metrics: list[str] = field(default_factory=list)  # FID, KID: in the curves only, not in rows

    def curve(self, name: str) -> CurveResult:
        for c in self.curves:
            if c.name == name:
                return c
        raise KeyError(name)


def measure(codec: Codec, img: Image.Image, quality: int, image_name: str, metric_names: Sequence[str]) -> Row:
    """Encode + decode one image and score the decode against the original."""
    coded = codec.run(img, quality)
    ref, dist = M.to_rgb_array(img), M.to_rgb_array(coded.decoded)
    w, h = img.size
    return Row(
        codec=codec.name,
        quality=quality,
        image=image_name,
        width=w,
        height=h,
        bytes=len(coded.data),
        bpp=coded.bpp(w, h),
        encoding_time=coded.encode_seconds,
        decoding_time=coded.decode_seconds,
        metrics=M.compute(ref, dist, list(metric_names)),
        features=perceptual.patch_features(dist) if any(M.per_set(m) for m in metric_names) else None,
    )


# --- worker side (process pool) -------------------------------------------------------------
_worker_codecs: dict[str, Codec] = {}


def _init_worker() -> None:
    import torch

    # Each worker is one of the -j jobs: one thread each, no oversubscription.
    torch.set_num_threads(1)


def _worker(spec: str, quality: int, path: str, metric_names: list[str]) -> Row:
    codec = _worker_codecs.get(spec)
    if codec is None:
        codec = _worker_codecs[spec] = make_codec(spec)
    return measure(codec, load_image(Path(path)), quality, Path(path).name, metric_names)


def _mp_context() -> multiprocessing.context.BaseContext:
    # fork where it is safe (Linux): spawn would re-run the CLI's __main__ in every worker.
    # torch re-initialises its thread pool after fork, as DataLoader workers rely on.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _report_to(on_row: Callable[[Row], None]) -> Callable[[Future[Row]], None]:
    # Runs in the pool's result thread; failures are raised later by `fut.result()`.
    def callback(fut: Future[Row]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            on_row(fut.result())

    return callback


# --- driver -----------------------------------------------------------------------------------
def run_bench(
    images: Sequence[Path],
    sweeps: Sequence[tuple[Codec, Sequence[int]]],
    metric_names: Sequence[str] | None = None,
    jobs: int = 1,
    on_row: Callable[[Row], None] | None = None,
) -> BenchResults:
    """Run every (codec, quality) of `sweeps` on every image.

    Classical codecs go to `jobs` worker processes when `jobs > 1`; codecs that are not
    `parallel_safe` (neurcodec) run in this process meanwhile. `on_row` is called as each
    image finishes (for progress).
    """
    names = list(metric_names) if metric_names is not None else M.default_metrics()
    unknown = [n for n in names if n not in M.METRICS]
    if unknown:
        raise ValueError(f"unknown metrics: {unknown}")
    perceptual.require([n for n in names if n in M.LEARNED])  # before any work, one line if not
    paths = [Path(p) for p in images]
    rows: list[Row] = []

    def done(row: Row) -> None:
        rows.append(row)
        if on_row:
            on_row(row)

    pooled = [(c, qs) for c, qs in sweeps if jobs > 1 and c.parallel_safe]
    local = [(c, qs) for c, qs in sweeps if not (jobs > 1 and c.parallel_safe)]
    futures: list[Future[Row]] = []
    pool = None
    if pooled:
        pool = ProcessPoolExecutor(jobs, mp_context=_mp_context(), initializer=_init_worker)
        for codec, qs in pooled:
            for q in qs:
                for p in paths:
                    fut = pool.submit(_worker, codec.spec, q, str(p), names)
                    if on_row:
                        fut.add_done_callback(_report_to(on_row))
                    futures.append(fut)
    try:
        if local:
            loaded = [(p.name, load_image(p)) for p in paths]
            for codec, qs in local:
                for q in qs:
                    for name, img in loaded:
                        done(measure(codec, img, q, name, names))
        for fut in futures:
            rows.append(fut.result())
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)

    order = {c.name: i for i, (c, _) in enumerate(sweeps)}
    qorder = {(c.name, q): i for c, qs in sweeps for i, q in enumerate(qs)}
    iorder = {p.name: i for i, p in enumerate(paths)}
    rows.sort(key=lambda r: (order[r.codec], qorder[(r.codec, r.quality)], iorder[r.image]))
    present = list(rows[0].metrics) if rows else [n for n in names if not M.per_set(n)]
    curves = [summarize(c, qs, rows, present) for c, qs in sweeps]
    notes = undefined_notes(rows, present)
    per_set = [n for n in names if M.per_set(n)]
    if per_set:
        notes += add_set_metrics(curves, rows, [load_image(p) for p in paths], per_set)
    return BenchResults([p.name for p in paths], present, rows, curves, notes, per_set)


def add_set_metrics(curves: Sequence[CurveResult], rows: Sequence[Row], originals: Sequence[Image.Image],
                    names: Sequence[str]) -> list[str]:
    """FID/KID of each curve point: the 256² patches of its decodes against those of the originals."""
    real = np.concatenate([perceptual.patch_features(M.to_rgb_array(img)) for img in originals])
    notes = []
    if len(real) < 2:
        notes.append(f"{', '.join(names)} need at least two {perceptual.PATCH}×{perceptual.PATCH} patches; "
                     f"these images give {len(real)}: values are NaN")
    elif len(real) < perceptual.FEATURE_DIM:
        notes.append(f"{', '.join(names)} over {len(real)} patches (fewer than the {perceptual.FEATURE_DIM} "
                     "feature dimensions): FID is biased upward at this size; KID is not")
    for curve in curves:
        for name in names:
            curve.results[name] = []
        for q in curve.qualities:
            fake = [r.features for r in rows if r.codec == curve.name and r.quality == q and r.features is not None]
            fake_all = np.concatenate(fake) if fake else np.zeros((0, perceptual.FEATURE_DIM))
            for name in names:
                curve.results[name].append(perceptual.SET_FUNCTIONS[name](real, fake_all))
    return notes


def undefined_notes(rows: Sequence[Row], metric_names: Sequence[str]) -> list[str]:
    """One note per metric that has no value (NaN) on some image, naming the images.

    Said out loud because such a metric's means over those images are NaN too.
    """
    notes = []
    for m in metric_names:
        images = list(dict.fromkeys(r.image for r in rows if math.isnan(r.metrics[m])))
        if images:
            shown = ", ".join(images[:5]) + (", ..." if len(images) > 5 else "")
            notes.append(f"{m} is undefined on {len(images)} image(s) ({shown}): too small for it"
                         f" or without texture; means over them are NaN")
    return notes


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def summarize(codec: Codec, qualities: Sequence[int], rows: Sequence[Row], metric_names: Sequence[str]) -> CurveResult:
    """Per-setting means over images (each image weighs the same, as in CompressAI)."""
    results: dict[str, list[float]] = {k: [] for k in ["bpp", *metric_names, "encoding_time", "decoding_time"]}
    for q in qualities:
        sel = [r for r in rows if r.codec == codec.name and r.quality == q]
        results["bpp"].append(_mean([r.bpp for r in sel]))
        for m in metric_names:
            results[m].append(_mean([r.metrics[m] for r in sel]))
        results["encoding_time"].append(_mean([r.encoding_time for r in sel]))
        results["decoding_time"].append(_mean([r.decoding_time for r in sel]))
    return CurveResult(codec.name, codec.description, codec.quality_label, list(qualities), results)
