"""`neurcodec models` and `neurcodec pull`, run through the console-script entry point."""

from __future__ import annotations

import json
import sys

import pytest

from neurcodec import zoo
from neurcodec.cli import main
from neurcodec.errors import WeightsError


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["neurcodec", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def empty_hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf"


def test_models_json_lists_every_family(monkeypatch, capsys, empty_hf_home):
    code, out, _ = run_cli(monkeypatch, capsys, "models", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert list(rows) == [f.name for f in zoo.list_families()]
    lite = rows["stable-cascade-lite"]
    assert lite["where"] == "remote"  # empty cache
    assert "Non-Commercial" in lite["licence"]
    assert lite["parameters"] == zoo.parameter_count("stable-cascade-lite")
    assert rows["tiny2"]["default"] and rows["tiny2"]["where"] in {"bundled", "missing"}
    assert not rows["tiny"]["default"] and rows["tiny"]["where"] in {"bundled", "missing"}
    assert all(len(bytes.fromhex(r["digest"])) == 4 for r in rows.values())


def test_models_table_shows_licence_and_where(monkeypatch, capsys, empty_hf_home):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli(monkeypatch, capsys, "models")
    assert code == 0
    assert "stable-cascade-lite" in out and "Non-Commercial" in out and "remote" in out


def test_pull_offline_with_empty_cache_is_one_line_and_weights_exit_code(monkeypatch, capsys, empty_hf_home):
    code, out, err = run_cli(monkeypatch, capsys, "pull", "stable-cascade-lite")
    assert code == WeightsError.exit_code
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("neurcodec: ") and "stable-cascade-lite" in lines[0] and "offline" in lines[0]


def test_pull_unknown_model_names_the_known_ones(monkeypatch, capsys, empty_hf_home):
    code, _, err = run_cli(monkeypatch, capsys, "pull", "no-such-model")
    assert code == WeightsError.exit_code
    assert "no-such-model" in err and "stable-cascade" in err
