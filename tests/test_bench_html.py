"""`bench --html`: a self-contained comparison page, checked in a real headless browser."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from neurcodec.cli import app
from neurcodec.errors import UsageError


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((128, 96), Image.Resampling.BICUBIC).save(photos / f"p{i}.png")
    out = root / "out"
    result = CliRunner().invoke(
        app, ["bench", str(photos), "-q", "20,45", "--vs", "jpeg,webp-x4", "--metrics", "psnr-rgb", "--html", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out / "report.html"


def test_the_page_embeds_everything_it_shows(report):
    page = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no network, no CDN
    assert page.count("data:image/png;base64,") >= 1  # an RD plot
    for name in ("p0.png", "p1.png", "neurcodec-tiny2", "webp-x4", "jpeg"):
        assert name in page


def test_video_folders_are_refused_for_html(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.y4m").write_bytes(b"YUV4MPEG2 W16 H16 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(16 * 16 * 3 // 2))
    result = CliRunner().invoke(app, ["bench", str(clips), "--html", "-o", str(tmp_path / "o")])
    assert isinstance(result.exception, UsageError) and "--html" in str(result.exception)


def test_the_page_works_in_a_headless_browser(report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install '.[test]')")
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            assert page.locator("#image option").count() == 2
            assert page.locator("#strip figure").count() == 4  # original, neurcodec, jpeg, webp-x4
            labels = page.locator("#strip figcaption").all_inner_texts()
            assert labels[0] == "original" and all(" B · " in t and "bpp" in t for t in labels[1:])

            page.locator("#split").focus()
            for _ in range(15):
                page.keyboard.press("ArrowLeft")
            assert page.eval_on_selector("#split", "e => e.value") == "35"
            assert page.eval_on_selector("#over", "e => e.style.clipPath") == "inset(0px 65% 0px 0px)"

            page.locator("#stage").click()
            assert "one-to-one" in page.get_attribute("#stage", "class")  # 1:1 zoom on the clicked region
            before = page.get_attribute("#over", "src")
            page.select_option("#image", index=1)
            assert page.get_attribute("#over", "src") != before  # the viewer shows the other picture
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), [u[:80] for u in requests]
    with Image.open(shot) as im:
        assert im.width == 1200 and im.height > 900 and len(im.getcolors(1 << 24) or []) > 1000


def _photo(folder: Path, size: tuple[int, int] = (192, 128)) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(5)
    small = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.Resampling.BICUBIC).save(folder / "one.png")
    return folder


def _plots_section(page: str) -> str:
    return page.split('<div class="plots">', 1)[1].split("</div>", 1)[0]


def test_the_default_page_has_an_rd_plot_for_every_metric_in_its_table(tmp_path):
    """The main install draws every plot: one figure per compared metric, or a line saying why not."""
    from neurcodec.bench.report import PLOT_NAMES

    photos = _photo(tmp_path / "photos")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["bench", str(photos), "-q", "45", "--vs", "jpeg,avif-x4", "--html", "-o", str(out)])
    assert result.exit_code == 0, result.output
    doc = __import__("json").loads((out / "results.json").read_text())
    plots = _plots_section((out / "report.html").read_text())
    expected = [PLOT_NAMES.get(m, m) for m in doc["metrics"] if m != "ms-ssim-rgb"]  # MS-SSIM is plotted in dB
    assert {"psnr", "ms-ssim", "thumb-psnr", "niqe"} <= set(expected)
    for name in expected:
        assert f'alt="rd-{name}"' in plots and (out / f"rd-{name}.png").exists(), name
    assert plots.count("data:image/png;base64,") == len(expected)
    assert doc["skipped"] == [s for s in doc["skipped"] if s["part"].startswith("metric ")]


def test_without_matplotlib_the_bench_says_so_and_the_page_has_no_empty_section(tmp_path):
    import json
    import os
    import subprocess
    import sys

    photos = _photo(tmp_path / "photos", (96, 64))
    out = tmp_path / "out"
    block = "import sys; sys.modules['matplotlib'] = None; from neurcodec.cli import main; sys.argv[0] = 'neurcodec'; main()"
    proc = subprocess.run(
        [sys.executable, "-c", block, "bench", str(photos), "--no-neural", "--vs", "jpeg,webp",
         "-q", "10,50", "--metrics", "psnr-rgb", "--html", "-o", str(out)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if line.startswith("skipped")]
    assert len(notices) == 1 and "pip install matplotlib" in notices[0], proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert [s["part"] for s in doc["skipped"]] == ["plot rd-psnr.png"]
    assert "matplotlib" in doc["skipped"][0]["reason"]
    assert not list(out.glob("rd-*.png"))
    plots = _plots_section((out / "report.html").read_text())
    assert "<figure>" not in plots and "plot rd-psnr.png skipped: matplotlib cannot be imported" in plots
