"""`neurcodec bench`: neurcodec against classical anchors — metrics, BD-rate, tables and plots.

Flow: `make_plan(BenchConfig)` → `run_bench(images, plan.sweeps)` → `write_reports(...)`.
"""

from __future__ import annotations

from neurcodec.bench.bdrate import BDResult, Curve, bd_quality, bd_rate, quality_at_rate
from neurcodec.bench.codecs import Codec, Coded, NeuralCodec, Rescaled, make_codec
from neurcodec.bench.plan import BenchConfig, Plan, make_plan, parse_list
from neurcodec.bench.report import (
    Comparison,
    bd_table,
    compare,
    compressai_json,
    matched_bpp,
    rd_table,
    write_reports,
)
from neurcodec.bench.runner import BenchResults, CurveResult, Row, find_images, run_bench

__all__ = [
    "BDResult",
    "BenchConfig",
    "BenchResults",
    "Codec",
    "Coded",
    "Comparison",
    "Curve",
    "CurveResult",
    "NeuralCodec",
    "Plan",
    "Rescaled",
    "Row",
    "bd_quality",
    "bd_rate",
    "bd_table",
    "compare",
    "compressai_json",
    "find_images",
    "make_codec",
    "make_plan",
    "matched_bpp",
    "parse_list",
    "quality_at_rate",
    "rd_table",
    "run_bench",
    "write_reports",
]
