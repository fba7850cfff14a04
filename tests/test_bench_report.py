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
from neurcodec.bench.report import csv_columns
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
    assert len(doc["matched_bpp"]) == 3 * 2
    jpeg_curve = results.curve("jpeg")
    lo, hi = min(jpeg_curve.results["bpp"]), max(jpeg_curve.results["bpp"])
    for m in doc["matched_bpp"]:
        assert set(m["anchors"]) == {"jpeg", "webp"}
        # an anchor value exactly when the test's bpp lies inside that anchor's measured range
        assert (m["anchors"]["jpeg"] is not None) == (lo <= m["bpp"] <= hi)
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
