"""`neurcodec bench` from the command line, on a tmp folder of small images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neurcodec.cli import main


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["neurcodec", *argv])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def images(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        arr = (np.linspace(0, 255, 48)[None, :, None] * np.ones((40, 1, 3)) + rng.normal(0, 10, (40, 48, 3)))
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(d / f"im{i}.png")
    return d


def test_bench_no_neural_jpeg_limit_2(images: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "out"
    code = _run(
        ["bench", str(images), "--no-neural", "--vs", "jpeg", "--limit", "2", "--out", str(out),
         "--metrics", "psnr-rgb,ms-ssim-rgb", "--json"],
        monkeypatch,
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)  # stdout is only the JSON
    assert doc["images"] == ["im0.png", "im1.png"]
    assert [c["name"] for c in doc["codecs"]] == ["jpeg"]
    assert (out / "results.json").is_file() and (out / "results.csv").is_file()
    assert "Rate–quality" in captured.err  # the table goes to stderr with --json

    # A second run refuses to overwrite without -y, then replaces with it.
    assert _run(["bench", str(images), "--no-neural", "--vs", "jpeg", "--out", str(out)], monkeypatch) == 4
    assert "exists" in capsys.readouterr().err
    code = _run(
        ["bench", str(images), "--no-neural", "--vs", "jpeg", "--limit", "1", "--out", str(out), "-y",
         "--metrics", "psnr-rgb"],
        monkeypatch,
    )
    assert code == 0
    assert "jpeg" in capsys.readouterr().out  # table on stdout without --json


def test_bench_default_metrics_on_small_images(images: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "out"
    code = _run(["bench", str(images), "--no-neural", "--vs", "jpeg,webp", "--limit", "1", "--out", str(out)],
                monkeypatch)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads((out / "results.json").read_text())
    assert doc["metrics"][:5] == ["psnr-rgb", "ms-ssim-rgb", "ms-ssim-rgb-db", "thumb-psnr", "niqe"]
    # 48×40 is below NIQE's 96×96 block: said once, and null in the JSON rather than a crash.
    assert "niqe is undefined on 1 image(s) (im0.png)" in captured.err.replace("\n", " ")
    assert all(r["niqe"] is None and r["thumb-psnr"] is not None for r in doc["per_image"])
    assert {b["metric"] for b in doc["bd"]} >= {"psnr-rgb", "thumb-psnr"} and "niqe" not in {b["metric"] for b in doc["bd"]}
    assert "At matched bytes" in captured.out and "thumb PSNR" in captured.out and "NIQE" in captured.out


def test_bench_unknown_anchor_is_a_usage_error(images: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    code = _run(["bench", str(images), "--no-neural", "--vs", "jpeg,bpg", "--out", str(tmp_path / "o")], monkeypatch)
    assert code == 2
    assert "unknown anchor 'bpg'" in capsys.readouterr().err


def test_bench_missing_folder_is_an_input_error(tmp_path: Path, monkeypatch, capsys) -> None:
    code = _run(["bench", str(tmp_path / "nope"), "--no-neural", "--out", str(tmp_path / "o")], monkeypatch)
    assert code == 3
    assert "not a directory" in capsys.readouterr().err


def test_an_anchor_sweep_can_be_given(images: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "out"
    code = _run(["bench", str(images), "--no-neural", "--vs", "jpeg", "--anchor-quality", "jpeg=3,7", "--limit", "1",
                 "--out", str(out), "--metrics", "psnr-rgb", "--json"], monkeypatch)
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted({r["quality"] for r in doc["per_image"]}) == [3, 7]
    assert _run(["bench", str(images), "--no-neural", "--vs", "jpeg", "--anchor-quality", "webp=3",
                 "--out", str(tmp_path / "o2")], monkeypatch) == 2
    assert "--vs does not include" in capsys.readouterr().err
