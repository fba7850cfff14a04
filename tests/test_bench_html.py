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
