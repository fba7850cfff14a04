"""`neurcodec dataset` on real Ray clusters started by the tests (the `scale` extra).

- `--ray local`: a private Ray instance with 2 CPUs;
- a two-node cluster on this machine (`ray start --head`, then `ray start --address=…`, one CPU
  each), the job submitted to its address; Ray's own actor records show where work ran;
- faults: a worker process killed by its PID mid-job, and Ctrl-C then the same command again.

Every run must equal the in-process reference run (`encoded_collection`): each good image
exactly once, byte-identical `.dae`, the same failures.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from _dataset_data import GOOD, cli, failures, rows, start_job, wait_for_records

ray = pytest.importorskip("ray", reason="the Ray tests need the scale extra: pip install -e '.[scale]'")
WORKER_CLASS = "MapWorker(MapBatches(NeurcodecWorker))"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _by_key(found: list[dict]) -> list[dict]:
    return sorted(found, key=lambda r: r["key"])


def _same_output(out: Path, reference: Path) -> None:
    got = _by_key(rows(out))
    assert [r["key"] for r in got] == sorted({r["key"] for r in got}) and len(got) == GOOD  # each once
    assert got == _by_key(rows(reference))
    assert sorted(f["key"] for f in failures(out)) == sorted(f["key"] for f in failures(reference))


@pytest.fixture(scope="module")
def ray_env(tmp_path_factory) -> dict:
    """Environment for Ray processes and drivers: a short private temp folder (socket paths are
    limited to 107 bytes) and a token shared by the nodes and the drivers of this test cluster."""
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield {"RAY_TMPDIR": folder, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def two_nodes(ray_env):
    """A head node and a worker node on this machine, one CPU each; yields the cluster address."""
    port = _free_port()
    env = {**os.environ, **ray_env}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", "--num-cpus", "1", "--port", str(port), "--node-ip-address", "127.0.0.1",
         "--dashboard-port", str(_free_port()), "--ray-client-server-port", str(_free_port()),
         "--dashboard-agent-listen-port", str(_free_port()), "--metrics-export-port", str(_free_port())],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    nodes = [head]
    try:
        _wait_nodes(address, 1, env)
        nodes.append(subprocess.Popen(
            [ray_cli, "start", "--block", "--address", address, "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
             "--dashboard-agent-listen-port", str(_free_port()), "--metrics-export-port", str(_free_port())],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        _wait_nodes(address, 2, env)
        yield address
    finally:
        for proc in reversed(nodes):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(nodes):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _wait_nodes(address: str, count: int, env: dict, timeout: float = 120) -> None:
    probe = f"import ray; ray.init(address={address!r}, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
        if result.returncode == 0 and int(result.stdout.strip().splitlines()[-1]) >= count:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {count} nodes")


def _worker_actors(address: str, env: dict) -> list[dict]:
    """Ray's own records (state API) of this job's model-holding actors: pid, node, state."""
    code = (
        "import json; from ray.util.state import list_actors\n"
        f"actors = list_actors(address={address!r}, filters=[('class_name', '=', {WORKER_CLASS!r})], detail=True, limit=1000)\n"
        "print(json.dumps([{'pid': a.pid, 'node_id': a.node_id, 'state': a.state} for a in actors]))"
    )
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_local_ray_two_cpus_equals_in_process(photo_collection, encoded_collection, tmp_path, ray_env):
    out = tmp_path / "out"
    result = cli("dataset", "encode", str(photo_collection), "-o", str(out), "--shard-size", "6", "--ray", "local", "--workers", "2", env=ray_env)
    assert result.returncode == 10, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"neurcodec: 3 of 43 images failed (reasons in {out}/failures.jsonl)"
    _same_output(out, encoded_collection)
    assert sorted(p.name for p in out.glob("shard-*")) == sorted(p.name for p in encoded_collection.glob("shard-*"))
    pids = {json.loads(p.read_text())["worker"]["pid"] for p in (out / "_neurcodec" / "shards").glob("*.json")}
    assert len(pids) == 2  # two actors shared the shards


def test_two_nodes_job_runs_on_both_and_equals_in_process(photo_collection, encoded_collection, tmp_path, two_nodes, ray_env):
    out = tmp_path / "out"
    result = cli("dataset", "encode", str(photo_collection), "-o", str(out), "--shard-size", "6", "--ray", two_nodes, env=ray_env)
    assert result.returncode == 10, result.stderr
    _same_output(out, encoded_collection)
    node_of = {a["pid"]: a["node_id"] for a in _worker_actors(two_nodes, ray_env)}
    records = [json.loads(p.read_text()) for p in (out / "_neurcodec" / "shards").glob("*.json")]
    assert len({node_of[r["worker"]["pid"]] for r in records}) == 2, "shards ran on one node only"


def test_killed_worker_loses_and_duplicates_nothing(photo_collection, encoded_collection, tmp_path, two_nodes, ray_env):
    out = tmp_path / "out"
    job = start_job("dataset", "encode", str(photo_collection), "-o", str(out), "--shard-size", "1", "--ray", two_nodes, env=ray_env)
    wait_for_records(out, 4, job)
    done_before = {p.stem for p in (out / "_neurcodec" / "shards").glob("*.json")}
    alive = [a for a in _worker_actors(two_nodes, ray_env) if a["state"] == "ALIVE"]
    victim = next(a["pid"] for a in alive if a["pid"] in {json.loads(p.read_text())["worker"]["pid"] for p in (out / "_neurcodec" / "shards").glob("*.json")})
    os.kill(victim, signal.SIGKILL)
    _, stderr = job.communicate(timeout=600)
    assert job.returncode == 10, stderr
    assert len(done_before) < 43, "the job had finished before the kill"
    _same_output(out, encoded_collection)
    pids = {json.loads(p.read_text())["worker"]["pid"] for p in (out / "_neurcodec" / "shards").glob("*.json")}
    assert victim in pids  # the killed process had done shards: they stay, done once


def test_ctrl_c_on_ray_then_same_command_resumes(photo_collection, encoded_collection, tmp_path, ray_env):
    out = tmp_path / "out"
    args = ("dataset", "encode", str(photo_collection), "-o", str(out), "--shard-size", "1", "--ray", "local", "--workers", "2")
    job = start_job(*args, env=ray_env)
    wait_for_records(out, 3, job)
    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 130 and stderr.strip().splitlines()[-1] == "neurcodec: interrupted"
    assert not (out / "manifest.json").exists()
    assert {p.stem for p in out.glob("shard-*")} <= {p.stem for p in (out / "_neurcodec" / "shards").glob("*.json")}
    result = cli(*args, "--json", env=ray_env)
    assert result.returncode == 10, result.stderr
    done = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0 < done["shards_run"] < 43
    _same_output(out, encoded_collection)


def test_decode_on_ray_equals_in_process(encoded_collection, tmp_path, two_nodes, ray_env):
    # Same threads as each Ray actor (one CPU): float sums split over another thread count can
    # move a pixel by one level (measured: 14 pixels of 40 images, 2 threads against 1).
    here, there = tmp_path / "here", tmp_path / "there"
    result = cli("dataset", "decode", str(encoded_collection), "-o", str(here), "--steps", "2", "--threads", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    result = cli("dataset", "decode", str(encoded_collection), "-o", str(there), "--steps", "2", "--ray", two_nodes, "--quiet", env=ray_env)
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(here) for p in here.rglob("*.png"))
    assert len(files) == GOOD and files == sorted(p.relative_to(there) for p in there.rglob("*.png"))
    assert all((here / f).read_bytes() == (there / f).read_bytes() for f in files)


def test_a_workers_job_error_is_one_line_with_its_exit_code(photo_collection, tmp_path, ray_env):
    out = tmp_path / "out"
    env = {**ray_env, "HF_HOME": str(tmp_path / "hf")}
    result = cli("dataset", "encode", str(photo_collection), "-o", str(out), "--model", "stable-cascade-lite", "--ray", "local", "--workers", "1", env=env)
    assert result.returncode == 7
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("neurcodec: model 'stable-cascade-lite'")
    assert not list(out.glob("shard-*"))
