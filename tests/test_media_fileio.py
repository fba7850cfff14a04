"""fileio.py: all-or-nothing writes, the overwrite policy, and `-` for stdin/stdout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from neurcodec import fileio
from neurcodec.errors import InputError, OutputExistsError, UsageError


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_writes_bytes_or_a_writer_and_leaves_no_temp(tmp_path):
    fileio.atomic_write(tmp_path / "a.bin", b"abc")
    fileio.atomic_write(tmp_path / "b.bin", lambda f: f.write(b"xyz"))
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    assert (tmp_path / "b.bin").read_bytes() == b"xyz"
    assert _listing(tmp_path) == ["a.bin", "b.bin"]


def test_atomic_write_uses_normal_permissions(tmp_path):
    fileio.atomic_write(tmp_path / "a.bin", b"abc")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_a_failure_midway_leaves_nothing_and_the_old_file_untouched(tmp_path, failure):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def writer(handle):
        handle.write(b"new partial data")
        raise failure

    with pytest.raises(type(failure)):
        fileio.atomic_write(target, writer)
    assert target.read_bytes() == b"old"
    assert _listing(tmp_path) == ["out.png"]

    with pytest.raises(type(failure)):
        fileio.atomic_write(tmp_path / "fresh.png", writer)
    assert _listing(tmp_path) == ["out.png"]


def test_no_overwrite_refuses_an_output_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "out.dae"
    target.write_bytes(b"theirs")
    with pytest.raises(OutputExistsError, match="out.dae exists"):
        fileio.atomic_write(target, b"mine", overwrite=False)
    assert target.read_bytes() == b"theirs"
    assert _listing(tmp_path) == ["out.dae"]
    fileio.atomic_write(tmp_path / "new.dae", b"mine", overwrite=False)
    assert (tmp_path / "new.dae").read_bytes() == b"mine"


def test_check_output(tmp_path):
    existing = tmp_path / "x.png"
    existing.write_bytes(b"1")
    fileio.check_output(tmp_path / "y.png", overwrite=False)
    fileio.check_output(existing, overwrite=True)
    with pytest.raises(OutputExistsError, match="-y"):
        fileio.check_output(existing, overwrite=False)
    with pytest.raises(UsageError, match="does not exist"):
        fileio.check_output(tmp_path / "nope" / "y.png", overwrite=False)
    with pytest.raises(UsageError, match="directory"):
        fileio.check_output(tmp_path, overwrite=True)


def test_read_input_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="missing.dae: no such file"):
        fileio.read_input(tmp_path / "missing.dae")
    with pytest.raises(InputError, match="is a directory"):
        fileio.read_input(tmp_path)
    (tmp_path / "ok").write_bytes(b"\x00\x01")
    assert fileio.read_input(tmp_path / "ok") == b"\x00\x01"


class _Terminal:
    def isatty(self) -> bool:
        return True


def test_binary_data_never_goes_to_or_comes_from_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stdout", _Terminal())
    with pytest.raises(UsageError, match="terminal"):
        fileio.check_output("-", overwrite=False)
    with pytest.raises(UsageError, match="terminal"):
        fileio.atomic_write("-", b"\x89PNG")
    monkeypatch.setattr(sys, "stdin", _Terminal())
    with pytest.raises(UsageError, match="terminal"):
        fileio.read_input("-")


def test_dash_reads_stdin_and_writes_stdout():
    script = "from neurcodec import fileio; fileio.atomic_write('-', fileio.read_input('-')[::-1])"
    done = subprocess.run([sys.executable, "-c", script], input=b"\x00abc\xff",
                          capture_output=True, check=True, timeout=60)
    assert done.stdout == b"\xffcba\x00"


_SLOW_WRITER = textwrap.dedent(
    """
    import signal, sys, time
    from neurcodec import fileio

    # A shell that starts a job in the background hands it SIGINT ignored: restore Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def slow(handle):
        handle.write(b"partial")
        handle.flush()
        print("writing", file=sys.stderr, flush=True)
        time.sleep(60)

    with fileio.sigterm_raises():
        fileio.atomic_write(sys.argv[1], slow)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_killing_a_write_midway_leaves_no_output(tmp_path, sig):
    target = tmp_path / "out.dae"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)],
                            stderr=subprocess.PIPE)
    try:
        assert proc.stderr.readline().strip() == b"writing"
        assert any(name.endswith(".tmp") for name in _listing(tmp_path))  # really midway
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert not target.exists()
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM
    if sig != signal.SIGKILL:  # cleanup ran; SIGKILL can only leave the hidden temp file
        assert _listing(tmp_path) == []


def test_sigterm_handler_is_restored(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with fileio.sigterm_raises():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
