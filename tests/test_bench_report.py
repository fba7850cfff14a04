"""The runner's rows and means, and the files a bench run leaves behind."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neurcodec.bench import (
    BenchConfig,
    NeuralCodec,
    find_images,
    make_codec,
    make_plan,
    run_bench,
    write_reports,
)
from neurcodec.bench.report import compare, compared_metrics, csv_columns, matched_bpp, matched_table
from neurcodec.bench.runner import BenchResults, CurveResult, Row
from neurcodec.errors import InputError, UsageError
from test_bench_codecs import FakeNeural


def _folder(tmp_path: Path, n: int = 2, size: tuple[int, int] = (64, 48)) -> Path:
    rng = np.random.default_rng(3)
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(n):
        w, h = size
        grad = np.linspace(30, 220, w)[None, :, None] * np.ones((h, 1, 3))
        arr = (grad + rng.normal(0, 8, (h, w, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(arr).save(d / f"img{i}.png")
    (d / "notes.txt").write_text("not an image")
    return d


def _strict_json(text: str) -> dict:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def test_find_images_sorts_limits_and_complains(tmp_path: Path) -> None:
    d = _folder(tmp_path, 3)
    assert [p.name for p in find_images(d)] == ["img0.png", "img1.png", "img2.png"]
    assert len(find_images(d, limit=2)) == 2
    with pytest.raises(InputError):
        find_images(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        find_images(empty)


@pytest.mark.parametrize("jobs", [1, 2])
def test_runner_rows_and_means(tmp_path: Path, jobs: int) -> None:
    images = find_images(_folder(tmp_path))
    jpeg = make_codec("jpeg")
    neural = NeuralCodec(FakeNeural(), "fake", steps=4, qualities=(8, 32))
    seen = []
    results = run_bench(
        images, [(neural, [8, 32]), (jpeg, [5, 50])], ["psnr-rgb", "ms-ssim-rgb"], jobs=jobs, on_row=seen.append
    )
    assert len(results.rows) == len(seen) == 2 * 2 * 2
    assert results.metrics == ["psnr-rgb", "ms-ssim-rgb", "ms-ssim-rgb-db"]
    # Rows come back in sweep order whatever order the workers finished in.
    assert [(r.codec, r.quality, r.image) for r in results.rows][:3] == [
        ("neurcodec-fake-s4", 8, "img0.png"),
        ("neurcodec-fake-s4", 8, "img1.png"),
        ("neurcodec-fake-s4", 32, "img0.png"),
    ]
    for r in results.rows:
        assert r.bpp == pytest.approx(8 * r.bytes / (r.width * r.height))
    curve = results.curve("jpeg")
    q5 = [r for r in results.rows if r.codec == "jpeg" and r.quality == 5]
    assert curve.results["bpp"][0] == pytest.approx(np.mean([r.bpp for r in q5]))
    assert curve.results["psnr-rgb"][0] == pytest.approx(np.mean([r.metrics["psnr-rgb"] for r in q5]))
    assert curve.results["bpp"][0] < curve.results["bpp"][1]


def test_reports_are_written_and_parse(tmp_path: Path) -> None:
    images = find_images(_folder(tmp_path))
    sweeps = [
        (NeuralCodec(FakeNeural(), "fake", qualities=(3, 6, 12)), [3, 6, 12]),
        (make_codec("jpeg"), [1, 10, 40, 90]),
        (make_codec("webp"), [0, 30, 80]),
    ]
    results = run_bench(images, sweeps, ["psnr-rgb", "ms-ssim-rgb"])
    out = tmp_path / "out"
    doc, written = write_reports(results, out, ["neurcodec-fake"], ["jpeg", "webp"])

    on_disk = _strict_json((out / "results.json").read_text())
    assert on_disk == doc
    assert [c["name"] for c in on_disk["codecs"]] == ["neurcodec-fake", "jpeg", "webp"]
    jpeg = _strict_json((out / "jpeg.json").read_text())  # CompressAI's layout, one file per codec
    assert set(jpeg) == {"name", "description", "results"}
    assert jpeg["results"]["quality"] == [1, 10, 40, 90]
    for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"):
        assert len(jpeg["results"][key]) == 4
    # BD entries for every (anchor, metric); MS-SSIM compared in dB only.
    assert {(b["anchor"], b["metric"]) for b in doc["bd"]} == {
        (a, m) for a in ("jpeg", "webp") for m in ("psnr-rgb", "ms-ssim-rgb-db")
    }
    for b in doc["bd"]:
        bd = b["bd_rate_percent"]
        assert (bd["value"] is None) == (bd["overlap"] is None)
    assert [(m["codec"], m["quality"]) for m in doc["matched_bpp"]] == [("neurcodec-fake", q) for q in (3, 6, 12)]
    for m in doc["matched_bpp"]:
        assert set(m["anchors"]) == {"jpeg", "webp"}
        own = {r.image: r.bytes for r in results.rows if r.codec == m["codec"] and r.quality == m["quality"]}
        for name, at in m["anchors"].items():
            files = {img: [r for r in results.rows if r.codec == name and r.image == img] for img in own}
            fits = {img: [r for r in rs if r.bytes <= own[img]] for img, rs in files.items()}
            # an anchor entry exactly when every image has an anchor file no larger than the test's
            assert (at is not None) == all(fits.values())
            if at is not None:  # ... and then it is each image's largest such file
                assert at["qualities"] == [max(fits[img], key=lambda r: r.bytes).quality for img in own]
    assert len(doc["per_image"]) == 2 * (3 + 4 + 3)

    with (out / "results.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == csv_columns(results)
        lines = list(reader)
    assert len(lines) == len(results.rows)
    assert float(lines[0]["bpp"]) == pytest.approx(results.rows[0].bpp)

    if importlib.util.find_spec("matplotlib"):
        for name in ("rd-psnr.png", "rd-ms-ssim.png"):
            with Image.open(out / name) as im:
                assert im.format == "PNG" and im.width > 100
    assert all(p.exists() for p in written)
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files


def test_lossless_psnr_becomes_null_in_json(tmp_path: Path) -> None:
    d = tmp_path / "flat"
    d.mkdir()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(d / "flat.png")
    results = run_bench(find_images(d), [(make_codec("webp"), [100])], ["psnr-rgb"])
    doc, _ = write_reports(results, tmp_path / "o", [], ["webp"])
    row = doc["per_image"][0]
    assert results.rows[0].metrics["psnr-rgb"] == float("inf") or row["psnr-rgb"] is not None
    _strict_json((tmp_path / "o" / "results.json").read_text())


def test_plan_without_neural_compares_against_the_first_anchor() -> None:
    plan = make_plan(BenchConfig(anchors=["jpeg", "webp", "jpeg-x4"], model=None))
    assert plan.anchors == ["jpeg"] and plan.tests == ["webp", "jpeg-x4"]
    assert [c.name for c, _ in plan.sweeps] == ["jpeg", "webp", "jpeg-x4"]


def test_plan_rejects_unknown_anchor_before_running() -> None:
    with pytest.raises(UsageError, match="unknown anchor"):
        make_plan(BenchConfig(anchors=["jpeg", "bpg"], model=None))


def test_rescaled_anchor_reaches_below_jpegs_floor_on_kodak_crops(kodak_dir: Path, tmp_path: Path) -> None:
    # Two 256² Kodak crops (big enough for the standard 5-scale MS-SSIM window).
    d = tmp_path / "crops"
    d.mkdir()
    for name in ("kodim05.png", "kodim23.png"):
        with Image.open(kodak_dir / name) as im:
            im.convert("RGB").crop((128, 128, 384, 384)).save(d / name)
    results = run_bench(
        find_images(d), [(make_codec("jpeg"), [1, 20]), (make_codec("jpeg-x4"), [20, 60])], ["psnr-rgb", "ms-ssim-rgb"]
    )
    jpeg, small = results.curve("jpeg"), results.curve("jpeg-x4")
    assert max(small.results["bpp"]) < min(jpeg.results["bpp"])
    assert all(0.0 < v < 1.0 for v in jpeg.results["ms-ssim-rgb"] + small.results["ms-ssim-rgb"])
    assert jpeg.results["psnr-rgb"][0] < jpeg.results["psnr-rgb"][1]


def _row(codec: str, q: int, image: str, nbytes: int, **metrics: float) -> Row:
    return Row(codec, q, image, 100, 80, nbytes, 8 * nbytes / 8000, 0.0, 0.0, dict(metrics))


def _results(rows: list[Row], metrics: list[str]) -> BenchResults:
    def curve(name: str) -> CurveResult:
        qs = list(dict.fromkeys(r.quality for r in rows if r.codec == name))
        sel = {q: [r for r in rows if r.codec == name and r.quality == q] for q in qs}
        means = {k: [float(np.mean([getattr(r, k) if k == "bpp" else r.metrics[k] for r in sel[q]])) for q in qs]
                 for k in ["bpp", *metrics]}
        return CurveResult(name, name, "quality", qs, means)

    names = list(dict.fromkeys(r.codec for r in rows))
    return BenchResults(sorted({r.image for r in rows}), metrics, rows, [curve(n) for n in names])


def test_matched_bytes_pick_each_images_largest_anchor_file_within_the_budget() -> None:
    m = {"psnr-rgb": 0.0, "thumb-psnr": 0.0, "niqe": 0.0}
    rows = [
        _row("neural", 1, "a.png", 100, **m | {"psnr-rgb": 20.0, "niqe": 4.0}),
        _row("neural", 1, "b.png", 300, **m | {"psnr-rgb": 22.0, "niqe": 6.0}),
        _row("neural", 2, "a.png", 40, **m),
        _row("neural", 2, "b.png", 200, **m),
        # jpeg: on a.png q10 (90 B) fits 100 B, q20 (120 B) does not; on b.png q20 (250 B) fits 300 B
        _row("jpeg", 10, "a.png", 90, **m | {"psnr-rgb": 25.0, "thumb-psnr": 40.0, "niqe": 7.0}),
        _row("jpeg", 20, "a.png", 120, **m | {"psnr-rgb": 30.0, "thumb-psnr": 44.0, "niqe": 5.0}),
        _row("jpeg", 10, "b.png", 150, **m | {"psnr-rgb": 26.0, "thumb-psnr": 41.0, "niqe": 8.0}),
        _row("jpeg", 20, "b.png", 250, **m | {"psnr-rgb": 29.0, "thumb-psnr": 43.0, "niqe": 6.0}),
    ]
    out = matched_bpp(_results(rows, list(m)), ["neural"], ["jpeg"])
    first, second = out
    assert first["psnr-rgb"] == pytest.approx(21.0) and first["niqe"] == pytest.approx(5.0)
    jpeg = first["anchors"]["jpeg"]
    assert jpeg["qualities"] == [10, 20]  # per image, so not one jpeg setting for both
    assert jpeg["psnr-rgb"] == pytest.approx((25.0 + 29.0) / 2)
    assert jpeg["thumb-psnr"] == pytest.approx((40.0 + 43.0) / 2)
    assert jpeg["niqe"] == pytest.approx((7.0 + 6.0) / 2)
    assert jpeg["bpp"] == pytest.approx(8 * (90 + 250) / 2 / 8000)
    # At 40 B no jpeg file of a.png fits: no value, rather than a mean over b.png alone.
    assert second["anchors"]["jpeg"] is None


def test_matched_table_shows_psnr_ms_ssim_thumbnail_psnr_and_niqe() -> None:
    from rich.console import Console

    names = ["psnr-rgb", "ms-ssim-rgb", "ms-ssim-rgb-db", "thumb-psnr", "niqe"]
    m = {"psnr-rgb": 21.0, "ms-ssim-rgb": 0.8, "ms-ssim-rgb-db": 7.0, "thumb-psnr": 33.3, "niqe": 4.321}
    rows = [_row("neural", 1, "a.png", 100, **m), _row("jpeg", 5, "a.png", 80, **m | {"niqe": 9.876}),
            _row("webp", 5, "a.png", 150, **m)]
    console = Console(width=200, record=True)
    console.print(matched_table(matched_bpp(_results(rows, names), ["neural"], ["jpeg", "webp"])))
    text = console.export_text()
    for heading in ("PSNR", "MS-SSIM", "thumb PSNR", "NIQE"):
        assert heading in text
    assert "MS-SSIM dB" not in text
    assert "9.876" in text and "33.30" in text
    webp_line = next(line for line in text.splitlines() if "webp" in line)
    assert "–" in webp_line  # webp's only file is larger than neurcodec's


def test_niqe_is_plotted_but_gets_no_bd_rate() -> None:
    names = ["psnr-rgb", "thumb-psnr", "niqe"]
    rows = [_row(c, q, "a.png", q * 10 + off, **{"psnr-rgb": 20.0 + q, "thumb-psnr": 30.0 + q, "niqe": 9.0 - q})
            for c, off in (("neural", 0), ("jpeg", 5)) for q in (1, 2, 3)]
    results = _results(rows, names)
    assert compared_metrics(results) == names
    assert {c.metric for c in compare(results, ["neural"], ["jpeg"])} == {"psnr-rgb", "thumb-psnr"}


def test_runner_notes_a_metric_undefined_on_small_images(tmp_path: Path) -> None:
    images = find_images(_folder(tmp_path))  # 64×48: below NIQE's 96×96 block
    results = run_bench(images, [(make_codec("jpeg"), [50])], ["psnr-rgb", "thumb-psnr", "niqe"])
    assert all(np.isnan(r.metrics["niqe"]) and np.isfinite(r.metrics["thumb-psnr"]) for r in results.rows)
    assert len(results.notes) == 1 and results.notes[0].startswith("niqe is undefined on 2 image(s)")
