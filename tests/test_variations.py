"""Several plausible decodes of one file, and pictures in between two files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from neurcodec.cli import app
from neurcodec.errors import OutputExistsError, UsageError, WrongModelError


def _photo(seed: int, width: int = 128, height: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def test_variations_differ_and_the_first_is_the_plain_decode(random_codec):
    data = random_codec.encode(_photo(0), quality=40)
    variations = list(random_codec.variations(data, 4, steps=3))
    assert [v.size for v in variations] == [(128, 96)] * 4 and {v.mode for v in variations} == {"RGB"}
    assert np.array_equal(_pixels(variations[0]), _pixels(random_codec.decode(data, steps=3)))
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(_pixels(variations[i]) - _pixels(variations[j])).mean() > 0.5
    again = list(random_codec.variations(data, 4, steps=3))
    assert all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(variations, again))  # same seeds, same pictures
    assert np.array_equal(_pixels(variations[2]), _pixels(random_codec.decode(data, steps=3, seed=2)))


def test_a_one_step_decode_has_no_variations(random_codec):
    data = random_codec.encode(_photo(0), quality=40)
    with pytest.raises(UsageError, match="single best estimate"):
        next(random_codec.variations(data, 3, steps=1))


def test_interpolation_ends_are_the_plain_decodes(random_codec):
    a = random_codec.encode(_photo(1), quality=40, seed=0, steps=3)
    b = random_codec.encode(_photo(2), quality=40, seed=9, steps=3)
    mix = list(random_codec.interpolate(a, b, 4))
    assert len(mix) == 4 and all(m.size == (128, 96) for m in mix)
    assert np.array_equal(_pixels(mix[0]), _pixels(random_codec.decode(a)))
    assert np.array_equal(_pixels(mix[-1]), _pixels(random_codec.decode(b)))
    middle = _pixels(mix[1])
    assert np.abs(middle - _pixels(mix[0])).mean() > 0.5 and np.abs(middle - _pixels(mix[-1])).mean() > 0.5


def test_interpolation_refuses_other_sizes_and_other_models(random_codec, random_codec_f8):
    a = random_codec.encode(_photo(1), quality=40)
    with pytest.raises(UsageError, match="sizes must match"):
        next(random_codec.interpolate(a, random_codec.encode(_photo(2, width=160), quality=40), 3))
    other = random_codec_f8.encode(_photo(2), quality=40)
    with pytest.raises(WrongModelError, match="tiny2"):
        next(random_codec.interpolate(a, other, 3))


def test_cli_writes_numbered_variations_and_interpolations(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for name, seed in (("a", 1), ("b", 2)):
        _photo(seed).save(f"{name}.png")
        assert runner.invoke(app, ["encode", f"{name}.png", "-o", f"{name}.dae", "--seed", str(seed)]).exit_code == 0

    result = runner.invoke(app, ["decode", "a.dae", "--variations", "3", "--steps", "2", "-o", "v_%02d.png"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in sorted(tmp_path.glob("v_*.png"))] == ["v_00.png", "v_01.png", "v_02.png"]
    again = runner.invoke(app, ["decode", "a.dae", "--variations", "3", "--steps", "2", "-o", "v_%02d.png"])
    assert isinstance(again.exception, OutputExistsError)  # nothing overwritten without -y
    for bad in ("v.png", "v_%02d_%d.png", "v%%_02.png"):
        refused = runner.invoke(app, ["decode", "a.dae", "--variations", "2", "--steps", "2", "-o", bad])
        assert isinstance(refused.exception, UsageError) and "number field" in str(refused.exception)

    result = runner.invoke(app, ["interpolate", "a.dae", "b.dae", "-n", "3", "-o", "mix_%d.png"])
    assert result.exit_code == 0, result.output
    for end, name in ((0, "a"), (2, "b")):
        assert runner.invoke(app, ["decode", f"{name}.dae", "-o", f"{name}_plain.png"]).exit_code == 0
        assert np.array_equal(_pixels(Image.open(f"mix_{end}.png")), _pixels(Image.open(f"{name}_plain.png")))
