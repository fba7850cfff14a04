"""`neurcodec encode/decode/info` plumbing, against a small stand-in codec.

The stand-in follows the `neurcodec.load(...) -> Codec` contract and really round-trips pixels
(RGB stored as PNG inside a tagged blob) through `media.prepare/restore`, so these tests check
the shell side: paths, `-`, batches, overwrite policy, atomic writes, exit codes, JSON lines.
The real tiny model is exercised in test_cli_codec_real.py.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import neurcodec
from neurcodec import media
from neurcodec.cli import app, codec_cmd
from neurcodec.errors import (
    CorruptFileError,
    InputError,
    OutputExistsError,
    UsageError,
)

MAGIC = b"FAKEDAE1"
TESTS_DIR = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------- the stand-in codec


def _pack(header: dict, rgb: Image.Image, alpha_png: bytes | None) -> bytes:
    buffer = io.BytesIO()
    rgb.save(buffer, "PNG")
    parts = [json.dumps(header).encode(), buffer.getvalue(), alpha_png or b""]
    return MAGIC + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _unpack(data: bytes) -> tuple[dict, bytes, bytes]:
    if not data.startswith(MAGIC):
        raise CorruptFileError(f"not a .dae file (starts with {data[:8]!r})")
    parts, pos = [], len(MAGIC)
    for _ in range(3):
        if pos + 4 > len(data):
            raise CorruptFileError("file ends early")
        n = int.from_bytes(data[pos:pos + 4], "big")
        parts.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return json.loads(parts[0]), parts[1], parts[2]


def fake_describe(data: bytes) -> dict:
    header, _, alpha = _unpack(data)
    return {**header, "alpha": bool(alpha)}


def fake_check_latent(data: bytes) -> None:
    _unpack(data)  # the stand-in's files store pixels, not a latent: being readable is all


class FakeCodec:
    """Stores RGB losslessly; `delay` makes encode/decode slow enough to be killed midway."""

    def __init__(self, name: str, delay: float = 0.0) -> None:
        self.name, self.delay = name, delay

    def _work(self, seconds: float) -> None:
        if seconds:
            print("fake codec: working", file=sys.stderr, flush=True)
            time.sleep(seconds)

    def encode(self, image, *, quality=None, bpp=None, seed=None, steps=None, guidance=None,
               sampler=None, search_steps=0, progress=None) -> bytes:
        self._work(self.delay)
        rgb, meta = media.prepare(image)
        header = {"model": self.name, "width": meta.size[0], "height": meta.size[1],
                  "mode": meta.mode, "quality": quality,
                  "defaults": {"steps": steps or 10, "seed": seed or 0}}
        return _pack(header, rgb, meta.alpha_png)

    def decode(self, data, *, steps=None, guidance=None, sampler=None, seed=None, progress=None):
        header, png, alpha = _unpack(data)
        if header["model"] != self.name:
            raise AssertionError("CLI asked the wrong model")
        total = steps or header["defaults"]["steps"]
        for i in range(total):
            self._work(self.delay / total)
            if progress:
                progress(i + 1, total)
        meta = media.ImageMeta((header["width"], header["height"]), header["mode"], header["mode"])
        return media.restore(Image.open(io.BytesIO(png)), meta, alpha or None)


def install_fake(monkeypatch=None, delay: float = 0.0) -> list[tuple]:
    """Route `neurcodec.load` and the CLI's file readers to the stand-in; returns the list of load calls."""
    calls: list[tuple] = []

    def load(name="tiny", *, device="cpu", dtype=None, pretrained=True, autocast=None):
        calls.append((name, device, dtype, autocast))
        return FakeCodec(name, delay)

    if monkeypatch is None:  # in a subprocess
        neurcodec.load, codec_cmd.describe, codec_cmd.check_image_latent = load, fake_describe, fake_check_latent
    else:
        monkeypatch.setattr(neurcodec, "load", load)
        monkeypatch.setattr(codec_cmd, "describe", fake_describe)
        monkeypatch.setattr(codec_cmd, "check_image_latent", fake_check_latent)
    return calls


@pytest.fixture
def fake(monkeypatch):
    return install_fake(monkeypatch)


def run(*args: str):
    """In-process run; typed errors surface as `result.exception`."""
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def cli(*args: str, stdin: bytes | None = None, delay: float = 0.0,
        check: bool = False) -> subprocess.CompletedProcess:
    """The real entry point (`neurcodec.cli.main`) in a subprocess, with the stand-in codec."""
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r}); "
        f"import test_cli_codec as t; t.install_fake(delay={delay}); "
        "sys.argv[0] = 'neurcodec'; from neurcodec.cli import main; main()"
    )
    return subprocess.run([sys.executable, "-c", script, *args], input=stdin,
                          capture_output=True, timeout=120, check=check)


def _image(tmp_path: Path, name="x.png", size=(7, 3), mode="RGB", fmt=None) -> Path:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    path = tmp_path / name
    Image.fromarray(pixels).convert(mode).save(path, fmt)
    return path


# ---------------------------------------------------------------------------- encode / decode


def test_encode_then_decode_by_default_names(tmp_path, fake):
    src = _image(tmp_path)
    assert run("encode", str(src)).exit_code == 0
    assert (tmp_path / "x.dae").exists()
    src.rename(tmp_path / "orig.png")
    assert run("decode", str(tmp_path / "x.dae")).exit_code == 0
    out = Image.open(tmp_path / "x.png")
    assert out.tobytes() == Image.open(tmp_path / "orig.png").tobytes()
    from neurcodec.zoo import default_family

    assert fake == [(default_family(), "cpu", None, None)] * 2  # the default model, then the file's


def test_decode_uses_the_model_named_in_the_file_and_passes_options(tmp_path, fake):
    src = _image(tmp_path)
    dae = tmp_path / "x.dae"
    assert run("encode", str(src), "-o", str(dae), "--model", "other", "--dtype", "bfloat16",
               "--threads", "1").exit_code == 0
    assert fake[-1] == ("other", "cpu", None, "bfloat16")  # on CPU: bf16 autocast, fp32 weights
    result = run("decode", str(dae), "-o", str(tmp_path / "y.webp"), "--steps", "3")
    assert result.exit_code == 0, result.output
    assert fake[-1][0] == "other"
    assert Image.open(tmp_path / "y.webp").format == "WEBP"


def test_batch_needs_outdir_and_writes_one_json_line_per_file(tmp_path, fake):
    a, b = _image(tmp_path, "a.png"), _image(tmp_path, "b.jpg", fmt="JPEG")
    result = run("encode", str(a), str(b))
    assert isinstance(result.exception, UsageError)

    result = run("encode", str(a), str(b), "-O", str(tmp_path / "dae"), "--json", "--quiet")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["output"]).name for r in lines] == ["a.dae", "b.dae"]
    for r in lines:
        assert set(r) >= {"file", "output", "bytes", "bpp", "width", "height", "seconds"}
        assert r["bytes"] == Path(r["output"]).stat().st_size
        assert r["bpp"] == pytest.approx(8 * r["bytes"] / 21)
    assert len(fake) == 1  # the model is loaded once for the batch

    result = run("decode", *map(str, sorted((tmp_path / "dae").iterdir())),
                 "-O", str(tmp_path / "png"), "--format", "tiff", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["a.tiff", "b.tiff"]


def test_batch_keeps_going_past_a_bad_file_and_fails_with_its_code(tmp_path, fake):
    good = _image(tmp_path, "good.png")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    result = run("encode", str(bad), str(good), "-O", str(tmp_path / "out"))
    assert isinstance(result.exception, InputError)
    assert "1 of 2 files failed" in str(result.exception)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.dae"]


def test_existing_output_is_refused_before_any_work_and_left_untouched(tmp_path, fake):
    src = _image(tmp_path)
    out = tmp_path / "x.dae"
    out.write_bytes(b"precious")
    result = run("encode", str(src), "-o", str(out))
    assert isinstance(result.exception, OutputExistsError)
    assert out.read_bytes() == b"precious"
    assert fake == []  # refused before loading the model
    assert run("encode", str(src), "-o", str(out), "-y").exit_code == 0
    assert out.read_bytes().startswith(MAGIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dae", "x.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["encode", "{src}", "-q", "10", "--bpp", "0.1"], "either -q or --bpp"),
        (["encode", "{src}", "--bpp", "0"], "--bpp must be positive"),
        (["encode", "{src}", "-o", "a.dae", "-O", "d"], "either -o FILE or -O DIR"),
        (["encode", "-", "-", "-O", "d"], "only once"),
        (["encode", "-", "-O", "d"], "has no name"),
        (["encode", "{src}", "-o", "-", "--json"], "--json"),
        (["decode", "{src}", "-o", "{src}"], "overwrite its input"),
        (["decode", "x.dae", "-o", "x.unknown"], "--format"),
        (["decode", "x.dae", "--format", "gif"], "unknown output format"),
    ],
)
def test_usage_errors(tmp_path, fake, args, message):
    src = _image(tmp_path)
    result = run(*[a.format(src=src) for a in args])
    assert isinstance(result.exception, UsageError), result.output
    assert message in str(result.exception)


def test_decode_refuses_formats_that_would_lose_alpha_or_depth_before_decoding(tmp_path, fake):
    rgba = _image(tmp_path, "a.png", mode="RGBA")
    assert run("encode", str(rgba)).exit_code == 0
    result = run("decode", str(tmp_path / "a.dae"), "-o", str(tmp_path / "a.jpg"))
    assert isinstance(result.exception, UsageError) and "transparency" in str(result.exception)
    assert not (tmp_path / "a.jpg").exists()

    gray16 = tmp_path / "g.png"
    Image.fromarray(np.full((3, 7), 40000, dtype=np.uint16)).save(gray16)
    assert run("encode", str(gray16)).exit_code == 0
    result = run("decode", str(tmp_path / "g.dae"), "-o", str(tmp_path / "g.webp"))
    assert isinstance(result.exception, UsageError) and "16-bit" in str(result.exception)
    assert run("decode", str(tmp_path / "g.dae"), "-o", str(tmp_path / "g.tiff")).exit_code == 0
    assert Image.open(tmp_path / "g.tiff").mode == "I;16"


def test_info_human_and_json(tmp_path, fake):
    src = _image(tmp_path)
    assert run("encode", str(src), "-q", "42").exit_code == 0
    dae = tmp_path / "x.dae"
    result = run("info", str(dae), "--json")
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["bytes"] == dae.stat().st_size
    from neurcodec.zoo import default_family

    assert described["model"] == default_family() and described["quality"] == 42
    human = run("info", str(dae))
    assert human.exit_code == 0
    assert "defaults.steps" in human.stdout and default_family() in human.stdout


# ---------------------------------------------------------------------------- the real entry point


class _Stdio:
    """A non-terminal stdin/stdout with a binary buffer, as in a shell pipeline."""

    def __init__(self, data: bytes = b"", tty: bool = False) -> None:
        self.buffer, self.tty = io.BytesIO(data), tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        return self.buffer.write(text.encode())

    def flush(self) -> None:
        pass


def entry(capsys, *args: str, stdin: bytes = b"", tty_stdout: bool = False):
    """`neurcodec.cli.main` in-process: (exit code, stdout bytes, stderr text)."""
    from neurcodec.cli import main

    out = _Stdio(tty=tty_stdout)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["neurcodec", *args])
        patch.setattr(sys, "stdin", _Stdio(stdin))
        patch.setattr(sys, "stdout", out)
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    return code, out.buffer.getvalue(), capsys.readouterr().err


def test_python_m_neurcodec_help():
    done = subprocess.run([sys.executable, "-m", "neurcodec", "--help"], capture_output=True,
                          timeout=120)
    assert done.returncode == 0
    for command in ("encode", "decode", "info"):
        assert command in done.stdout.decode()


def test_help_teaches_with_examples():
    for command in ("encode", "decode", "info"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Examples" in result.stdout
    assert "encode - -o -" in run("encode", "--help").stdout


def test_stdin_stdout_pipeline_gives_the_same_bytes_as_paths(tmp_path, fake, monkeypatch, capsys):
    src = _image(tmp_path, size=(9, 5))
    assert entry(capsys, "encode", str(src), "-o", str(tmp_path / "x.dae"))[0] == 0
    assert entry(capsys, "decode", str(tmp_path / "x.dae"),
                 "-o", str(tmp_path / "by_path.png"))[0] == 0
    code, encoded, _ = entry(capsys, "encode", "-", "-o", "-", stdin=src.read_bytes())
    assert code == 0 and encoded == (tmp_path / "x.dae").read_bytes()
    code, decoded, _ = entry(capsys, "decode", "-", stdin=encoded)  # -> stdout
    assert code == 0 and decoded == (tmp_path / "by_path.png").read_bytes()
    assert decoded.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["encode", "{d}/missing.png"], InputError.exit_code),
        (["encode", "{d}/notes.txt", "-o", "{d}/n.dae"], InputError.exit_code),
        (["decode", "{d}/notes.txt", "-o", "{d}/n.png"], CorruptFileError.exit_code),
        (["decode", "{d}/missing.dae"], InputError.exit_code),
        (["encode", "{d}/x.png", "-o", "{d}/notes.txt"], OutputExistsError.exit_code),
        (["encode", "{d}/x.png", "-o", "-"], UsageError.exit_code),  # stdout is a terminal
        (["encode", "{d}/x.png", "-q", "101"], UsageError.exit_code),
        (["decode", "{d}/x.png", "--sampler", "euler"], UsageError.exit_code),
    ],
)
def test_exit_codes_and_one_line_errors(tmp_path, fake, monkeypatch, capsys, args, code):
    (tmp_path / "notes.txt").write_text("hello")
    _image(tmp_path)
    got, _, err = entry(capsys, *[a.format(d=tmp_path) for a in args],
                        tty_stdout=True)
    assert got == code, err
    assert "Traceback" not in err
    if code != UsageError.exit_code:
        assert err.startswith("neurcodec: ") and err.count("\n") == 1


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_killing_midway_leaves_no_output(tmp_path, command):
    src = _image(tmp_path)
    dae = tmp_path / "x.dae"
    dae.write_bytes(FakeCodec("tiny").encode(Image.open(src)))
    source, target = (src, tmp_path / "out.dae") if command == "encode" else (dae, tmp_path / "out.png")
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r}); "
        "import test_cli_codec as t; t.install_fake(delay=60); "
        "from neurcodec.cli import main; main()"
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.Popen([sys.executable, "-c", script, command, str(source), "-o", str(target)],
                            stderr=subprocess.PIPE)
    try:
        while b"fake codec: working" not in proc.stderr.readline():  # midway through the work
            assert proc.poll() is None, "the command ended before it was killed"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == before
