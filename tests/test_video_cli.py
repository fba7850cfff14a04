"""`neurcodec encode/decode/info` on video, end to end with the random-weight micro codec."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import torch

import neurcodec
from neurcodec.video_io import read_clip
from test_cli_codec import entry, run
from test_video import _frames, _write_clip


@pytest.fixture
def real(monkeypatch, random_codec):
    torch.set_num_threads(1)
    monkeypatch.setattr(neurcodec, "load", lambda name=None, **kwargs: random_codec)
    return random_codec


@pytest.fixture
def clip(tmp_path):
    return _write_clip(tmp_path / "clip.mp4", _frames(5, 96, 64), fps=Fraction(25))


def test_encode_decode_info_route_videos(tmp_path, real, clip):
    result = run("encode", str(clip), "--gop", "2", "-q", "30", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)
    assert line["kind"] == "video" and line["frames"] == 5 and (tmp_path / "clip.dae").is_file()

    result = run("info", str(tmp_path / "clip.dae"), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["frames"], info["fps"], info["groups"], info["width"]) == (5, "25", 3, 96)
    assert info["duration"] == pytest.approx(0.2) and info["kbps"] > 0

    (tmp_path / "clip.mp4").rename(tmp_path / "source.mp4")  # the default output name is free again
    result = run("decode", str(tmp_path / "clip.dae"), "--steps", "1", "--quiet")
    assert result.exit_code == 0, result.output
    decoded, frames = read_clip(tmp_path / "clip.mp4")
    assert (len(frames), decoded.fps, decoded.width, decoded.height) == (5, 25, 96, 64)

    result = run("decode", str(tmp_path / "clip.dae"), "-o", str(tmp_path / "f_%02d.png"), "--steps", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("f_*.png"))) == 5


def test_video_through_stdin_and_stdout(capsys, tmp_path, real, clip):
    code, out, err = entry(capsys, "encode", str(clip), "-o", "-", "--quiet")
    assert code == 0, err
    code, y4m, err = entry(capsys, "decode", "-", "-o", "-", "--steps", "1", "--quiet", stdin=out)
    assert code == 0, err
    assert y4m.startswith(b"YUV4MPEG2 W96 H64 F25:1")  # stdout defaults to y4m
    (tmp_path / "o.y4m").write_bytes(y4m)
    assert len(read_clip(tmp_path / "o.y4m")[1]) == 5


def test_truncated_video_is_a_corrupt_file_exit_code(capsys, tmp_path, real, clip):
    code, out, err = entry(capsys, "encode", str(clip), "-o", "-", "--quiet")
    (tmp_path / "cut.dae").write_bytes(out[:-10])
    code, _, err = entry(capsys, "decode", str(tmp_path / "cut.dae"), "-o", str(tmp_path / "o.mkv"), "--steps", "1")
    assert code == 5 and "ends" in err
    assert not (tmp_path / "o.mkv").exists()  # nothing partial left behind
    code, _, err = entry(capsys, "info", str(tmp_path / "cut.dae"))
    assert code == 5
