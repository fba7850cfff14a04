"""Files and options a hostile or careless user hands the CLI: one line on stderr, the right exit
code, no traceback, and no model loaded or work done first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from neurcodec.bitstream import FrameGroup, ImageHeader, VideoHeader, encode_latent, write_image, write_video
from neurcodec.bitstream.container import MODEL_CODES, DecodeSettings
from neurcodec.errors import CorruptFileError, UsageError


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


# ------------------------------------------------------------------ resource limits
_PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _cli_peak(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI in a child of a fresh wrapper process: its peak RSS alone, in GiB."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _PEAK_RSS, sys.executable, "-m", "neurcodec", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "200", **(env or {})},
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI too, not just the wrapper
        proc.communicate()
        raise
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    *lines, peak_kib = result.stderr.strip().splitlines()
    result.stderr = "\n".join(lines)
    return result, int(peak_kib) / 2**20


def _tiny2_header(cls, **fields):
    from neurcodec.zoo.load import weights_digest

    return cls(model="tiny2", weights_digest=weights_digest("tiny2"), step_index=40, **fields)


def test_a_61_byte_file_declaring_16384_squared_is_refused_from_its_header(tmp_path):
    header = _tiny2_header(ImageHeader, width=16384, height=16384, latent_shape=(16, 512, 512))
    (tmp_path / "big.dae").write_bytes(write_image(header, _latent()))
    assert (tmp_path / "big.dae").stat().st_size < 100
    result, peak = _cli_peak("decode", str(tmp_path / "big.dae"), "-o", str(tmp_path / "big.png"))
    _one_line_error(result, 8, "268,435,456 pixels, above the limit of 40,000,000")
    assert "--max-pixels" in result.stderr and "NEURCODEC_MAX_PIXELS" in result.stderr
    assert peak < 3.0
    assert not (tmp_path / "big.png").exists()


@pytest.mark.slow
def test_a_68_byte_video_of_one_4096_squared_frame_decodes_in_tiles_within_3_gib(tmp_path):
    # ~2.5 min on 2 cores: the one test here that does the work a small file may ask for.
    header = _tiny2_header(VideoHeader, width=4096, height=4096, latent_shape=(16, 128, 128), frame_count=1)
    (tmp_path / "v.dae").write_bytes(write_video(header, [FrameGroup((encode_latent(np.zeros((16, 128, 128), dtype=np.int32)),))]))
    assert (tmp_path / "v.dae").stat().st_size < 100
    result, peak = _cli_peak("decode", str(tmp_path / "v.dae"), "-o", str(tmp_path / "v.mkv"), "--steps", "1")
    assert result.returncode == 0, result.stderr
    assert peak < 3.0, f"peak RSS {peak:.2f} GiB"


def test_a_13000_squared_png_is_refused_before_its_pixels_are_decoded(tmp_path):
    from PIL import Image

    Image.new("1", (13000, 13000)).save(tmp_path / "bomb.png")  # ~20 KB on disk, 507 MB as RGB
    result, peak = _cli_peak("encode", str(tmp_path / "bomb.png"), "-o", str(tmp_path / "bomb.dae"))
    _one_line_error(result, 8, "13000×13000 = 169,000,000 pixels, above the limit")  # Pillow's warning not printed
    assert peak < 4.0
    assert not (tmp_path / "bomb.dae").exists()


def test_the_pixel_limit_is_set_by_environment_or_flag(tmp_path):
    header = _tiny2_header(ImageHeader, width=128, height=128, latent_shape=(16, 4, 4))
    (tmp_path / "x.dae").write_bytes(write_image(header, encode_latent(np.zeros((16, 4, 4), dtype=np.int32))))
    lowered, _ = _cli_peak("decode", str(tmp_path / "x.dae"), "-o", str(tmp_path / "x.png"), env={"NEURCODEC_MAX_PIXELS": "10000"})
    _one_line_error(lowered, 8, "16,384 pixels, above the limit of 10,000")
    raised, _ = _cli_peak("decode", str(tmp_path / "x.dae"), "-o", str(tmp_path / "x.png"), "--max-pixels", "20000",
                          env={"NEURCODEC_MAX_PIXELS": "10000"})  # the flag wins for its run
    assert raised.returncode == 0, raised.stderr
    assert (tmp_path / "x.png").exists()


def test_a_video_declaring_more_frames_than_the_limit_is_refused_before_decoding(tmp_path):
    header = _tiny2_header(VideoHeader, width=128, height=128, latent_shape=(16, 4, 4), frame_count=51_200)
    latent = encode_latent(np.zeros((16, 4, 4), dtype=np.int32))
    (tmp_path / "long.dae").write_bytes(write_video(header, [FrameGroup((latent,))]))
    result = _cli("decode", str(tmp_path / "long.dae"), "-o", str(tmp_path / "long.mkv"), "--max-frames", "50000")
    _one_line_error(result, 8, "51,200 frames, above the limit of 50,000")
    assert not (tmp_path / "long.mkv").exists()


def test_steps_a_file_asks_for_are_capped_but_the_users_own_are_not(tmp_path):
    header = _tiny2_header(ImageHeader, width=128, height=128, latent_shape=(16, 4, 4), decode=DecodeSettings(steps=5000))
    (tmp_path / "slow.dae").write_bytes(write_image(header, encode_latent(np.zeros((16, 4, 4), dtype=np.int32))))
    _one_line_error(_cli("decode", str(tmp_path / "slow.dae"), "-o", str(tmp_path / "a.png")), 8, "5,000 sampling steps")
    assert _cli("decode", str(tmp_path / "slow.dae"), "-o", str(tmp_path / "b.png"), "--steps", "1").returncode == 0
    assert (tmp_path / "b.png").exists()


# ------------------------------------------------------------------ no reads outside the file
def test_an_audio_chunk_holding_an_ffconcat_script_is_refused_not_followed(tmp_path):
    import io

    from neurcodec.bitstream import CHUNK_AUDIO, DaeStreamWriter

    (tmp_path / "secret.wav").write_bytes(b"RIFF" + b"\0" * 64)  # what the script points at
    script = b"ffconcat version 1.0\nfile secret.wav\n"
    header = _tiny2_header(VideoHeader, width=128, height=128, latent_shape=(16, 4, 4), frame_count=1)
    buf = io.BytesIO()
    with DaeStreamWriter(buf, header) as writer:
        writer.write_chunk(CHUNK_AUDIO, script)
        writer.write_group(FrameGroup((encode_latent(np.zeros((16, 4, 4), dtype=np.int32)),)))
    (tmp_path / "v.dae").write_bytes(buf.getvalue())
    result = _cli("decode", "v.dae", "-o", "v.mkv", "--steps", "1", cwd=tmp_path)
    _one_line_error(result, 5, "audio chunk is not a Matroska audio stream")
    assert not (tmp_path / "v.mkv").exists()


def test_an_input_clip_that_is_a_playlist_of_other_files_is_refused(tmp_path):
    (tmp_path / "part.y4m").write_bytes(b"YUV4MPEG2 W16 H16 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 384)
    (tmp_path / "list.mp4").write_bytes(b"ffconcat version 1.0\nfile part.y4m\n")
    result = _cli("encode", "list.mp4", "-o", "x.dae", cwd=tmp_path)
    _one_line_error(result, 3, "not a video in a container neurcodec reads")
    assert not (tmp_path / "x.dae").exists()


# ------------------------------------------------------------------ frame-sequence outputs
def _two_frame_video(path):
    header = _tiny2_header(VideoHeader, width=128, height=128, latent_shape=(16, 4, 4), frame_count=2)
    latent = encode_latent(np.zeros((16, 4, 4), dtype=np.int32))
    path.write_bytes(write_video(header, [FrameGroup((latent, latent))]))


def test_a_png_sequence_does_not_replace_existing_frames_without_y(tmp_path):
    _two_frame_video(tmp_path / "v.dae")
    (tmp_path / "f_0002.png").write_bytes(b"keep me")
    refused = _cli("decode", "v.dae", "-o", "f_%04d.png", "--steps", "1", cwd=tmp_path)
    _one_line_error(refused, 4, "f_0002.png exists")
    assert (tmp_path / "f_0002.png").read_bytes() == b"keep me" and not (tmp_path / "f_0001.png").exists()
    replaced = _cli("decode", "v.dae", "-o", "f_%04d.png", "--steps", "1", "-y", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert (tmp_path / "f_0002.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "written"), [
    (("we%d.dae", "-f", "png"), ["we%d_0001.png", "we%d_0002.png"]),  # a % in the input's name stays literal
    (("we%d.dae", "-o", "x%(a)s_%d.png"), ["x%(a)s_1.png", "x%(a)s_2.png"]),  # only %d is the number
    (("we%d.dae", "-o", "100%%_%02d.png"), ["100%_01.png", "100%_02.png"]),  # %% is a literal %, as in ffmpeg
])
def test_percent_signs_in_sequence_names(tmp_path, args, written):
    _two_frame_video(tmp_path / "we%d.dae")
    result = _cli("decode", *args, "--steps", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == written


def test_a_sequence_name_without_one_number_field_is_a_usage_error(tmp_path):
    _two_frame_video(tmp_path / "v.dae")
    _one_line_error(_cli("decode", "v.dae", "-o", "f_%d_%d.png", cwd=tmp_path), 2, "one number field")


def test_a_batch_names_each_failed_file_on_one_unwrapped_line_and_in_its_json(tmp_path):
    import json

    header = _tiny2_header(ImageHeader, width=128, height=128, latent_shape=(16, 4, 4))
    good = write_image(header, encode_latent(np.zeros((16, 4, 4), dtype=np.int32)))
    long_name = "a_rather_long_file_name_that_would_wrap_at_eighty_columns_in_a_pipe_" + "x" * 40 + ".dae"
    (tmp_path / "good.dae").write_bytes(good)
    (tmp_path / long_name).write_bytes(b"not a dae at all" * 4)
    result = subprocess.run(
        [sys.executable, "-m", "neurcodec", "decode", "good.dae", long_name, "-O", "out", "--steps", "1", "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 5 and "Traceback" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if long_name in line]
    assert len(failed) == 1 and failed[0].startswith(f"neurcodec: {long_name}: ")  # whole, on one line
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == ["good.dae", long_name]
    assert lines[1]["exit_code"] == 5 and "error" in lines[1] and "output" in lines[0]


# ------------------------------------------------------------------ outputs that cannot be written
@pytest.fixture
def immutable_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here (needs CAP_LINUX_IMMUTABLE)")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path, immutable_folder):
    header = _tiny2_header(ImageHeader, width=128, height=128, latent_shape=(16, 4, 4))
    (tmp_path / "x.dae").write_bytes(write_image(header, encode_latent(np.zeros((16, 4, 4), dtype=np.int32))))
    result = _cli("decode", str(tmp_path / "x.dae"), "-o", str(immutable_folder / "x.png"))
    _one_line_error(result, 9, f"cannot write in {immutable_folder}")


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    import errno

    from neurcodec import fileio
    from neurcodec.cli import main

    def disk_full(handle, data):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "_write", disk_full)  # a full disk cannot be made here without privileges
    header = _tiny2_header(ImageHeader, width=128, height=128, latent_shape=(16, 4, 4))
    (tmp_path / "x.dae").write_bytes(write_image(header, encode_latent(np.zeros((16, 4, 4), dtype=np.int32))))
    monkeypatch.setattr(sys, "argv", ["neurcodec", "decode", str(tmp_path / "x.dae"), "-o", str(tmp_path / "x.png"), "--steps", "1"])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 9 and len(err.splitlines()) == 1 and "No space left on device" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "x.dae"]  # neither the output nor its temporary file


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path):
    result = _cli("decode", str(tmp_path / "missing.dae"), "-o", str(tmp_path / "x.png"), "--debug")
    assert result.returncode == 3 and "Traceback" in result.stderr and "no such file" in result.stderr


def test_the_summary_of_a_file_written_to_stdout_says_stdout(tmp_path):
    from PIL import Image

    Image.new("RGB", (128, 128), (200, 40, 30)).save(tmp_path / "red.png")
    result = subprocess.run([sys.executable, "-m", "neurcodec", "encode", "red.png", "-o", "-"], capture_output=True,
                            timeout=120, cwd=tmp_path, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and result.stdout[:4] != b""
    assert b"red.png -> <stdout>:" in result.stderr


# ------------------------------------------------------------------ the latent payload's own check
def _forged_latent(payload: bytes, check_bits: int) -> bytes:
    # method ANS, static, the widest Gaussian table for all 16 channels, then the payload
    return bytes([1 | {0: 0, 16: 1, 32: 2}[check_bits] << 5] + [63] * 16) + payload


@pytest.mark.parametrize("check_bits", [32, 0])  # 0: the layout of files written before checks
def test_64_random_payload_bytes_under_a_valid_crc_are_not_decoded_as_a_4096_squared_image(tmp_path, check_bits):
    header = _tiny2_header(ImageHeader, width=4096, height=4096, latent_shape=(16, 128, 128),
                           latent_checks=bool(check_bits))
    latent = _forged_latent(np.random.default_rng(64).bytes(64), check_bits)
    (tmp_path / "x.dae").write_bytes(write_image(header, latent))  # every CRC holds
    _one_line_error(_cli("decode", str(tmp_path / "x.dae"), "-o", str(tmp_path / "x.png")), 5, "latent payload")
    assert not (tmp_path / "x.png").exists()


def test_a_damaged_image_latent_is_refused_before_any_model_is_looked_up(tmp_path):
    header = _tiny2_header(ImageHeader, width=128, height=128, latent_shape=(16, 4, 4))
    (tmp_path / "x.dae").write_bytes(write_image(header, _forged_latent(np.random.default_rng(4).bytes(64), 32)))
    # A model that does not exist would be exit 7 once looked up: the payload is judged first.
    result = _cli("decode", str(tmp_path / "x.dae"), "-o", str(tmp_path / "x.png"), "--model", "no-such-model")
    _one_line_error(result, 5, "latent payload")


@pytest.mark.parametrize("kind", ["image", "video"])
def test_a_file_promising_checked_latents_refuses_an_unchecked_one(tmp_path, kind):
    # The promise sits in the CRC-covered header: a damaged blob flag cannot switch the check off.
    unchecked = encode_latent(np.zeros((16, 4, 4), dtype=np.int32), check_bits=0)
    if kind == "image":
        data = write_image(_tiny2_header(ImageHeader, width=128, height=128, latent_shape=(16, 4, 4)), unchecked)
    else:
        header = _tiny2_header(VideoHeader, width=128, height=128, latent_shape=(16, 4, 4))
        data = write_video(header, [FrameGroup((encode_latent(np.zeros((16, 4, 4), dtype=np.int32)), unchecked))])
    (tmp_path / "x.dae").write_bytes(data)
    out = tmp_path / ("x.png" if kind == "image" else "x.mkv")
    _one_line_error(_cli("decode", str(tmp_path / "x.dae"), "-o", str(out)), 5, "a latent blob has no check")
    assert not out.exists()


def test_bit_flips_in_a_latent_payload_are_refused_even_with_the_crc_fixed(tmp_path):
    from neurcodec.bitstream import blob_sizes, decode_latent, read_image

    rng = np.random.default_rng(12)
    symbols = np.rint(rng.laplace(size=(16, 16, 24)) * 2).astype(np.int32)  # a 768×512 image's latent
    header = _tiny2_header(ImageHeader, width=768, height=512, latent_shape=symbols.shape)
    blob = encode_latent(symbols)
    start = len(blob) - blob_sizes(blob, 16)[1]
    for _ in range(100):
        flipped = bytearray(blob)
        flipped[rng.integers(start, len(blob))] ^= 1 << int(rng.integers(8))
        image = read_image(write_image(header, bytes(flipped)))  # the chunk CRC re-computed: it holds
        with pytest.raises(CorruptFileError, match="latent payload"):
            decode_latent(image.latent, header.latent_shape)


# ------------------------------------------------------------------ the CRC before the header's word
MODEL_CODE_BYTE = 5  # after magic + version (4) and flags (1): the model code, one varint byte


@pytest.mark.parametrize("kind", ["image", "video"])
def test_a_flipped_model_code_bit_is_corrupt_not_unsupported(tmp_path, kind):
    if kind == "image":
        header = _tiny2_header(ImageHeader, width=128, height=128, latent_shape=(16, 4, 4))
        data = bytearray(write_image(header, _latent()))
    else:
        header = _tiny2_header(VideoHeader, width=128, height=128, latent_shape=(16, 4, 4))
        data = bytearray(write_video(header, [FrameGroup((_latent(),))]))
    data[MODEL_CODE_BYTE] ^= 0x20  # model code 4 → 36, which no build knows
    (tmp_path / "x.dae").write_bytes(bytes(data))
    out = tmp_path / ("x.png" if kind == "image" else "x.mkv")
    for command in (("info", str(tmp_path / "x.dae")), ("decode", str(tmp_path / "x.dae"), "-o", str(out))):
        _one_line_error(_cli(*command), 5, "checksum mismatch")


def test_a_video_with_bytes_after_its_end_chunk_is_corrupt_as_an_image_is(tmp_path):
    header = _tiny2_header(VideoHeader, width=128, height=128, latent_shape=(16, 4, 4))
    (tmp_path / "v.dae").write_bytes(write_video(header, [FrameGroup((_latent(),))]) + b"trailing")
    _one_line_error(_cli("info", str(tmp_path / "v.dae")), 5, "data after the END chunk")


@pytest.mark.parametrize("alpha", ["jpeg", "wrong size"])
def test_an_alpha_chunk_is_read_as_a_png_of_the_image_size_or_refused(tmp_path, alpha):
    import io

    from PIL import Image

    from neurcodec.bitstream import CHUNK_ALPHA

    buf = io.BytesIO()
    if alpha == "jpeg":
        Image.new("L", (128, 128), 200).save(buf, format="JPEG")
    else:
        Image.new("L", (64, 64), 200).save(buf, format="PNG")
    header = _tiny2_header(ImageHeader, width=128, height=128, latent_shape=(16, 4, 4), mode="RGBA")
    blob = write_image(header, encode_latent(np.zeros((16, 4, 4), dtype=np.int32)), [(CHUNK_ALPHA, buf.getvalue())])
    (tmp_path / "x.dae").write_bytes(blob)
    result = _cli("decode", str(tmp_path / "x.dae"), "-o", str(tmp_path / "x.png"))
    _one_line_error(result, 5, "alpha chunk")


def test_limit_flags_last_for_their_own_command_only(monkeypatch):
    from neurcodec import limits

    monkeypatch.delenv("NEURCODEC_MAX_PIXELS", raising=False)
    limits.configure(max_pixels=5)
    assert limits.current().max_pixels == 5
    limits.configure()  # the next command, without the flag
    assert limits.current().max_pixels == limits.Limits().max_pixels
    monkeypatch.setenv("NEURCODEC_MAX_PIXELS", "lots")
    with pytest.raises(UsageError):
        limits.current()
