"""Video in the bench: H.264/H.265 anchors through PyAV and neurcodec's video codec per clip."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from neurcodec.bench.codecs.video import H264, H265, NeuralVideo, find_clips, is_video_dir, make_video_plan, run_video_bench
from neurcodec.bench.plan import BenchConfig
from neurcodec.bench.report import compare
from neurcodec.errors import UsageError
from test_video import _frames, _write_clip


@pytest.fixture
def clips(tmp_path):
    _write_clip(tmp_path / "a.y4m", _frames(4, 64, 48), fps=Fraction(25), codec="rawvideo")
    return tmp_path


def test_anchor_curves_have_rates_and_quality(clips):
    assert is_video_dir(clips) and [p.name for p in find_clips(clips)] == ["a.y4m"]
    sweeps = [(H264(gop=4), [40, 20]), (H265(gop=4), [40, 20])]
    results = run_video_bench(find_clips(clips), sweeps, max_frames=3)
    assert len(results.rows) == 4
    for curve in results.curves:
        bpp, psnr, kbps = curve.results["bpp"], curve.results["psnr-rgb"], curve.results["kbps"]
        assert bpp[0] < bpp[1] and psnr[0] < psnr[1]  # lower CRF: more bits, better pictures
        assert kbps[0] == pytest.approx(bpp[0] * 64 * 48 * 25 / 1000)
    assert compare(results, ["h265"], ["h264"])


def test_neurcodec_video_runs_in_the_bench(clips, random_codec):
    torch.set_num_threads(1)
    codec = NeuralVideo(random_codec, "tiny", steps=1, qualities=(20, 80), gop=4)
    results = run_video_bench(find_clips(clips), [(codec, [20, 80])], max_frames=3)
    bpp = results.curve("neurcodec-tiny-s1").results["bpp"]
    assert bpp[0] <= bpp[1]


def test_video_plan_knows_video_anchors_only():
    plan = make_video_plan(BenchConfig(anchors=["h264", "h265"], model=None))
    assert plan.tests == ["h265"] and plan.anchors == ["h264"]
    with pytest.raises(UsageError):
        make_video_plan(BenchConfig(anchors=["jpeg"], model=None))
