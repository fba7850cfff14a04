"""`neurcodec encode/decode/info` end to end with the real Codec (random-weight tiny model).

`neurcodec.load` is routed to the `random_codec` fixture (conftest), so every layer below the
CLI is the real one: media, padding, quantization, entropy coding, the container, sampling and
stage A. The pictures are noise; sizes, modes, alpha, bytes and determinism are what is checked.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import neurcodec
from neurcodec.errors import BitstreamError, UsageError
from test_cli_codec import entry, run

STEPS = "2"  # sampling steps: every code path runs, quickly


@pytest.fixture
def real(monkeypatch, random_codec):
    from neurcodec.zoo import default_family

    def load(name=None, **kwargs):
        # The default model's name is asked for first; the files then name "tiny" (the micro codec's).
        assert name in (None, "tiny", default_family()), name
        return random_codec

    monkeypatch.setattr(neurcodec, "load", load)
    return random_codec


def _make(path, size, mode):
    rng = np.random.default_rng(3)
    if mode in ("I;16", "I;16B", "I"):
        values = rng.integers(0, 65536, (size[1], size[0]))
        dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4"}[mode]
        raw = {"I;16": "I;16", "I;16B": "I;16B", "I": "I;32"}[mode]
        image = Image.frombytes(mode, size, values.astype(dtype).tobytes(), "raw", raw)
    else:
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8))
        image = image.convert(mode)
    image.save(path)
    return image


@pytest.mark.parametrize(
    ("size", "mode"),
    [((1, 1), "RGB"), ((7, 3), "RGB"), ((7, 3), "I;16"), ((9, 5), "RGBA"), ((5, 9), "L"),
     ((3, 7), "LA"), ((7, 3), "1"), ((7, 3), "I;16B"), ((7, 3), "I")],
)
def test_round_trip_restores_exact_size_and_mode(tmp_path, real, size, mode):
    ext = "tiff" if mode in ("I;16B", "I") else "png"  # PNG can't hold these two
    original = _make(tmp_path / f"in.{ext}", size, mode)
    result = run("encode", str(tmp_path / f"in.{ext}"), "-o", str(tmp_path / "in.dae"), "--quiet")
    assert result.exit_code == 0, result.output
    result = run("decode", str(tmp_path / "in.dae"), "-o", str(tmp_path / f"out.{ext}"),
                 "--steps", STEPS, "--quiet")
    assert result.exit_code == 0, result.output
    out = Image.open(tmp_path / f"out.{ext}")
    expected = "I;16" if mode == "I;16B" else mode  # same values in native byte order
    assert (out.size, out.mode) == (original.size, expected)
    if mode == "RGBA":  # alpha is carried losslessly
        assert out.getchannel("A").tobytes() == original.getchannel("A").tobytes()


def test_pipeline_gives_the_same_bytes_as_paths_and_decodes_are_repeatable(tmp_path, real, capsys):
    src = tmp_path / "x.png"
    _make(src, (40, 24), "RGB")
    dae, png = tmp_path / "x.dae", tmp_path / "x_out.png"
    assert entry(capsys, "encode", str(src), "-o", str(dae), "-q", "30")[0] == 0
    assert entry(capsys, "decode", str(dae), "-o", str(png), "--steps", STEPS, "--seed", "7")[0] == 0

    code, encoded, _ = entry(capsys, "encode", "-", "-o", "-", "-q", "30", stdin=src.read_bytes())
    assert code == 0 and encoded == dae.read_bytes()
    code, decoded, _ = entry(capsys, "decode", "-", "-o", "-", "--steps", STEPS, "--seed", "7",
                             stdin=encoded)
    assert code == 0 and decoded == png.read_bytes()


def test_json_lines_and_info_match_the_files(tmp_path, real, capsys):
    for name in ("a.png", "b.png"):
        _make(tmp_path / name, (16, 8), "RGB")
    code, out, _ = entry(capsys, "encode", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                         "-O", str(tmp_path / "dae"), "--json", "--steps", "3", "--seed", "11")
    assert code == 0
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert len(lines) == 2
    for line in lines:
        dae = tmp_path / "dae" / (line["file"].rsplit("/", 1)[-1][:-4] + ".dae")
        assert line["output"] == str(dae) and line["bytes"] == dae.stat().st_size
        assert (line["width"], line["height"]) == (16, 8)

    code, out, _ = entry(capsys, "info", str(tmp_path / "dae" / "a.dae"), "--json")
    described = json.loads(out)
    assert described["model"] == "tiny" and (described["width"], described["height"]) == (16, 8)
    assert described["seed"] == 11 and described["decode_defaults"]["steps"] == 3
    assert described["bytes"] == lines[0]["bytes"]
    assert sum(described["breakdown"].values()) == described["bytes"]
    assert described["latent_check_bits"] == 32  # new files carry the latent's check

    code, out, _ = entry(capsys, "info", str(tmp_path / "dae" / "a.dae"))
    assert code == 0 and b"latent_shape" in out and b"breakdown.latent_payload" in out


def test_corrupt_and_truncated_files_exit_with_the_bitstream_code(tmp_path, real, capsys):
    _make(tmp_path / "x.png", (8, 8), "RGB")
    assert entry(capsys, "encode", str(tmp_path / "x.png"))[0] == 0
    data = (tmp_path / "x.dae").read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    (tmp_path / "flip.dae").write_bytes(bytes(flipped))
    (tmp_path / "cut.dae").write_bytes(data[: len(data) // 2])
    for bad in ("flip.dae", "cut.dae"):
        for command in (["decode", "--steps", STEPS], ["info"]):
            code, _, err = entry(capsys, command[0], str(tmp_path / bad), *command[1:])
            assert code == BitstreamError.exit_code, err
            assert err.startswith("neurcodec: ") and "Traceback" not in err
            assert not (tmp_path / bad.replace(".dae", ".png")).exists()


def test_transparency_is_refused_for_jpeg_output(tmp_path, real):
    _make(tmp_path / "a.png", (6, 6), "RGBA")
    assert run("encode", str(tmp_path / "a.png"), "--quiet").exit_code == 0
    result = run("decode", str(tmp_path / "a.dae"), "-o", str(tmp_path / "a.jpg"), "--steps", STEPS)
    assert isinstance(result.exception, UsageError) and "transparency" in str(result.exception)
    assert not (tmp_path / "a.jpg").exists()
