"""Files and options a hostile or careless user hands the CLI: one line on stderr, the right exit
code, no traceback, and no model loaded or work done first."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from neurcodec.bitstream import FrameGroup, ImageHeader, VideoHeader, encode_latent, write_image, write_video
from neurcodec.bitstream.container import MODEL_CODES


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neurcodec", *args], capture_output=True, text=True, timeout=120, cwd=cwd,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )


def _one_line_error(result: subprocess.CompletedProcess, code: int, words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert words in lines[0], lines[0]


def _latent() -> bytes:
    return encode_latent(np.zeros((16, 2, 2), dtype=np.int32))


def _forged(header, **fields):
    # What a foreign writer could put in a file: fields our own constructors refuse.
    for name, value in fields.items():
        object.__setattr__(header, name, value)
    return header


@pytest.mark.parametrize("mode", ["CMYK", "F", "P", "YCbCr"])
def test_a_header_mode_no_file_stores_is_refused_before_decoding(tmp_path, mode):
    header = ImageHeader(model=MODEL_CODES[4], weights_digest=b"\0" * 4, width=64, height=64, latent_shape=(16, 2, 2), step_index=40)
    (tmp_path / "x.dae").write_bytes(write_image(_forged(header, mode=mode), _latent()))
    _one_line_error(_cli("decode", str(tmp_path / "x.dae"), "-o", str(tmp_path / "x.png")), 5, f"image mode {mode}")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("field", ["fps", "time_base"])
def test_frame_rates_beyond_ffmpeg_range_are_corrupt(tmp_path, field):
    header = VideoHeader(model=MODEL_CODES[4], weights_digest=b"\0" * 4, width=64, height=64, latent_shape=(16, 2, 2), step_index=40)
    forged = _forged(header, **{field: Fraction(2**31 + 7, 1)})
    (tmp_path / "v.dae").write_bytes(write_video(forged, [FrameGroup((_latent(),))]))
    _one_line_error(_cli("info", str(tmp_path / "v.dae")), 5, "numerator")


@pytest.mark.parametrize(
    ("option", "value"), [("--seed", str(2**64)), ("--guidance", "101"), ("--steps", "10001"), ("--steps", "0")]
)
def test_out_of_range_options_are_usage_errors_before_any_work(tmp_path, option, value):
    result = _cli("encode", str(tmp_path / "missing.png"), "-o", str(tmp_path / "x.dae"), option, value)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert option in result.stderr and "missing.png" not in result.stderr  # refused before reading the input
