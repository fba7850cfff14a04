"""Turn bench results into BD-rate comparisons, a rich table, JSON, CSV and RD plots."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from neurcodec import fileio
from neurcodec.bench import metrics as M
from neurcodec.bench.bdrate import BDResult, Curve, bd_quality, bd_rate
from neurcodec.bench.runner import BenchResults, CurveResult, Row

#: File stem of each metric's plot, `rd-<short>.png`; MS-SSIM is plotted and compared in dB.
PLOT_NAMES = {"psnr-rgb": "psnr", "ms-ssim-rgb-db": "ms-ssim", "ssimulacra2": "ssimulacra2", "lpips": "lpips",
              "dists": "dists", "fid": "fid", "kid": "kid", "thumb-psnr": "thumb-psnr", "niqe": "niqe"}

#: Columns of the matched-bytes table, when measured: fidelity, low-frequency fidelity, naturalness.
MATCHED_COLUMNS = ("psnr-rgb", "ms-ssim-rgb", "thumb-psnr", "niqe")


def compared_metrics(results: BenchResults) -> list[str]:
    """Metrics plotted: everything measured, MS-SSIM only in its dB form."""
    return [m for m in [*results.metrics, *results.set_metrics] if m != "ms-ssim-rgb"]


def bd_metrics(results: BenchResults) -> list[str]:
    """Metrics with Bjøntegaard deltas: the plotted ones that compare the decode with the original.

    A no-reference score (NIQE) is not a fidelity that grows with rate (a decode can score more
    "natural" than its source), so a BD-rate over it would not mean "bits for the same quality".
    """
    return [m for m in compared_metrics(results) if M.needs_reference(m) and not M.per_set(m)]


def _curve(c: CurveResult, metric: str) -> Curve:
    return Curve(c.results["bpp"], c.results[metric])


@dataclass(frozen=True)
class Comparison:
    """BD-rate (%) and BD-quality (metric units) of `test` against `anchor` for one metric."""

    test: str
    anchor: str
    metric: str
    rate: BDResult
    quality: BDResult


def compare(
    results: BenchResults, tests: Sequence[str], anchors: Sequence[str], metrics: Sequence[str] | None = None
) -> list[Comparison]:
    out = []
    for t in tests:
        for a in anchors:
            if a == t:
                continue
            for m in metrics or bd_metrics(results):
                ct, ca = _curve(results.curve(t), m), _curve(results.curve(a), m)
                out.append(Comparison(t, a, m, bd_rate(ca, ct), bd_quality(ca, ct)))
    return out


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _largest_within(candidates: Sequence[Row], budget: int) -> Row | None:
    """The setting with the biggest file of at most `budget` bytes: its best quality at that cost."""
    fitting = [r for r in candidates if r.bytes <= budget]
    return max(fitting, key=lambda r: r.bytes) if fitting else None


def _anchor_at_bytes(results: BenchResults, anchor: str, test_rows: Sequence[Row], metrics: Sequence[str]
                     ) -> dict[str, Any] | None:
    """`anchor`'s means over images, each image at its largest file not larger than the test's.

    None when some image has no setting that small: a mean over only the images that fit would
    compare the anchor and the test on different images.
    """
    picks = []
    for t in test_rows:
        pick = _largest_within([r for r in results.rows if r.codec == anchor and r.image == t.image], t.bytes)
        if pick is None:
            return None
        picks.append(pick)
    return {
        "bpp": _mean([r.bpp for r in picks]),
        "qualities": [r.quality for r in picks],  # the setting picked for each image, in image order
        **{m: _mean([r.metrics[m] for r in picks]) for m in metrics},
    }


def matched_bpp(
    results: BenchResults, tests: Sequence[str], anchors: Sequence[str], metrics: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """For each setting of each test codec: its means, and every anchor's at matched bytes.

    Matched per image: each anchor contributes, for every image, its setting whose file is the
    largest not larger than the test's file of that image; the metrics of those picks are then
    averaged over images like the test's own. No interpolation, so every number is measured.
    An anchor is None at a test setting when one of the images has no anchor file that small.
    """
    names = list(metrics or results.metrics)
    rows = []
    for t in tests:
        curve = results.curve(t)
        for q in curve.qualities:
            own = [r for r in results.rows if r.codec == t and r.quality == q]
            rows.append({
                "codec": t,
                "quality": q,
                "bpp": _mean([r.bpp for r in own]),
                **{m: _mean([r.metrics[m] for r in own]) for m in names},
                "anchors": {a: _anchor_at_bytes(results, a, own, names) for a in anchors if a != t},
            })
    return rows


# --- files ------------------------------------------------------------------------------------
def _finite(value: Any) -> Any:
    """JSON has no inf/nan: write null (e.g. PSNR of a lossless decode)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _atomic_write(path: Path, text: str) -> None:
    fileio.atomic_write(path, text.encode("utf-8"))


def compressai_json(curve: CurveResult) -> dict[str, Any]:
    """CompressAI's results layout: {"name", "description", "results": {key: [one value per setting]}}."""
    return _finite(
        {
            "name": curve.name,
            "description": curve.description,
            "results": {curve.quality_label: curve.qualities, **curve.results},
        }
    )


def _bd_json(r: BDResult) -> dict[str, Any]:
    return _finite({"value": r.value, "overlap": list(r.overlap) if r.overlap else None, "note": r.note})


def results_document(
    results: BenchResults, comparisons: Sequence[Comparison], matched: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Everything in one JSON: per-codec CompressAI blocks, BD, matched-bpp and per-image rows."""
    return _finite(
        {
            "images": results.images,
            "metrics": results.metrics,
            "set_metrics": results.set_metrics,  # per curve point only (FID, KID over the decoded set)
            "notes": results.notes,
            "codecs": [compressai_json(c) for c in results.curves],
            "bd": [
                {
                    "test": c.test,
                    "anchor": c.anchor,
                    "metric": c.metric,
                    "bd_rate_percent": _bd_json(c.rate),
                    "bd_quality": _bd_json(c.quality),
                }
                for c in comparisons
            ],
            "matched_bpp": list(matched),  # at matched bytes per image, see `matched_bpp`
            "per_image": [
                r.fields() for r in results.rows
            ],
        }
    )


def csv_columns(results: BenchResults) -> list[str]:
    return ["codec", "quality", "image", "width", "height", "bytes", "bpp", *results.metrics,
            "encoding_time", "decoding_time"]


def write_csv(results: BenchResults, path: Path) -> None:
    """One line per image × codec × setting."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=csv_columns(results))
    writer.writeheader()
    for r in results.rows:
        writer.writerow(r.fields())
    _atomic_write(path, buf.getvalue())


def write_json(doc: dict[str, Any], path: Path) -> None:
    _atomic_write(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")


#: What to do when the RD plots cannot be drawn (matplotlib is a core dependency, so a broken or
#: stripped environment).
PLOTS_NEED = "pip install matplotlib (a neurcodec dependency; reinstall neurcodec)"


def plot_rd(results: BenchResults, metric: str, path: Path, tests: Sequence[str] = ()) -> str:
    """Write the RD plot of `metric` over bpp (log axis) for every curve to `path`.

    Returns "" when written, else why not: matplotlib cannot be imported, or no curve has a finite
    point (e.g. NIQE on images below its block size: an empty plot would only mislead).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return f"matplotlib cannot be imported ({e}): {PLOTS_NEED}"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        plotted = 0
        for c in results.curves:
            pts = sorted(
                (b, v) for b, v in zip(c.results["bpp"], c.results[metric])
                if math.isfinite(b) and math.isfinite(v) and b > 0
            )
            if not pts:
                continue
            plotted += 1
            style = "-" if c.name in tests else "--"  # classical anchors dashed, as CompressAI's plot does
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3, label=c.name)
        if not plotted:
            return f"no codec has a finite {M.label(metric)} value on these images"
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(M.label(metric))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(f"{M.label(metric)} vs rate ({len(results.images)} images)")
        fig.tight_layout()
        fileio.atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
    return ""


def write_reports(
    results: BenchResults, out_dir: Path, tests: Sequence[str], anchors: Sequence[str],
    skipped: Sequence[dict[str, str]] = (),
) -> tuple[dict[str, Any], list[Path]]:
    """Write results.json, results.csv, <codec>.json (CompressAI layout) and rd-<metric>.png.

    `skipped` lists parts left out before the run ({"part", "reason"}, e.g. an optional metric);
    the plots that cannot be drawn join it, and all of them land in results.json's "skipped".
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped = list(skipped)
    for m in compared_metrics(results):
        p = out_dir / f"rd-{PLOT_NAMES.get(m, m)}.png"
        if why := plot_rd(results, m, p, tests):
            skipped.append({"part": f"plot {p.name}", "reason": why})
        else:
            written.append(p)
    comparisons = compare(results, tests, anchors)
    doc = results_document(results, comparisons, matched_bpp(results, tests, anchors))
    doc["skipped"] = skipped
    write_json(doc, out_dir / "results.json")
    write_csv(results, out_dir / "results.csv")
    written[:0] = [out_dir / "results.json", out_dir / "results.csv"]
    for c in results.curves:
        # One file per codec so CompressAI's own plot tool can read them unchanged.
        p = out_dir / f"{c.name}.json"
        write_json(compressai_json(c), p)
        written.append(p)
    return doc, written


# --- tables -----------------------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "–"
    if math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}"


def rd_table(results: BenchResults) -> Table:
    """Per codec and setting: mean bpp, metrics and times."""
    shown = [*results.metrics, *results.set_metrics]
    kbps = all("kbps" in c.results for c in results.curves) and bool(results.curves)  # video runs
    t = Table(title=f"Rate–quality, mean over {len(results.images)} {'clips' if kbps else 'images'}")
    for col in ["codec", "q", "bpp", *(["kbps"] if kbps else []), *[M.short_label(m) for m in shown], "enc s", "dec s"]:
        t.add_column(col, justify="left" if col == "codec" else "right")
    for c in results.curves:
        for i, q in enumerate(c.qualities):
            digits = {"psnr-rgb": 2, "ms-ssim-rgb-db": 2, "ssimulacra2": 2, "thumb-psnr": 2, "niqe": 3}
            t.add_row(
                c.name,
                str(q),
                _fmt(c.results["bpp"][i], 4),
                *([_fmt(c.results["kbps"][i], 1)] if kbps else []),
                *[_fmt(c.results[m][i], digits.get(m, 4)) for m in shown],
                _fmt(c.results["encoding_time"][i], 3),
                _fmt(c.results["decoding_time"][i], 3),
            )
    return t


def bd_table(comparisons: Sequence[Comparison]) -> Table:
    """BD-rate (negative = fewer bits than the anchor) and BD-quality, over the overlap only."""
    t = Table(title="Bjøntegaard deltas (PCHIP, overlapping range only)")
    for col in ["test", "anchor", "metric", "BD-rate %", "BD-quality", "quality overlap"]:
        t.add_column(col, justify="left" if col in ("test", "anchor", "metric") else "right")
    for c in comparisons:
        # "(thin)": fewer than two measured points inside the overlap — read with care.
        rate = _fmt(c.rate.value, 1) + (" (thin)" if c.rate.note else "") if c.rate.ok else c.rate.note
        qual = _fmt(c.quality.value, 3) + (" (thin)" if c.quality.note else "") if c.quality.ok else c.quality.note
        span = f"{c.rate.overlap[0]:.3g}–{c.rate.overlap[1]:.3g}" if c.rate.overlap else "–"
        t.add_row(c.test, c.anchor, M.short_label(c.metric), rate, qual, span)
    return t


def matched_table(rows: Sequence[dict[str, Any]], metrics: Sequence[str] | None = None) -> Table:
    """Each test setting, then every anchor at matched bytes (rows of `matched_bpp`).

    Columns: `metrics`, by default PSNR, MS-SSIM, thumbnail PSNR and NIQE where measured.
    """
    measured = [m for m in (metrics or MATCHED_COLUMNS) if rows and m in rows[0]]
    t = Table(title="At matched bytes: per image, each anchor's largest file ≤ the test's; means over images "
                    "(– = an image has no anchor file that small)")
    for col in ["codec", "q", "vs", "bpp", *[M.short_label(m) for m in measured]]:
        t.add_column(col, justify="left" if col in ("codec", "vs") else "right")
    digits = {"ms-ssim-rgb": 4, "niqe": 3}
    for r in rows:
        t.add_row(r["codec"], str(r["quality"]), "itself", _fmt(r["bpp"], 4),
                  *[_fmt(r[m], digits.get(m, 2)) for m in measured])
        for name, a in r["anchors"].items():
            if a is None:
                t.add_row("", "", name, *["–"] * (1 + len(measured)))
            else:
                t.add_row("", "", name, _fmt(a["bpp"], 4), *[_fmt(a[m], digits.get(m, 2)) for m in measured])
        t.add_section()
    return t
