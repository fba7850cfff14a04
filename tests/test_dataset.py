"""`neurcodec dataset encode|decode|info` in this process, and reading the shards back.

Real bundled model, real files, the installed CLI in a subprocess: a collection of 40 small
images with 3 bad ones (`_dataset_data`). The Ray engine has its own tests
(test_dataset_ray.py); both run the same batch functions.
"""

from __future__ import annotations

import json
import signal
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _dataset_data import BAD_KEYS, GOOD, cli, failures, key_of, rows, start_job, wait_for_records


def test_every_good_image_once_bad_ones_listed_with_reasons(photo_collection, encoded_collection):
    found = rows(encoded_collection)
    keys = [r["key"] for r in found]
    expected = sorted(key_of(p, photo_collection) for p in photo_collection.rglob("img*"))
    assert sorted(keys) == expected and len(keys) == GOOD
    failed = {f["key"]: f for f in failures(encoded_collection)}
    assert set(failed) == BAD_KEYS
    assert "truncated" in failed["broken"]["error"] or "cannot decode" in failed["broken"]["error"]
    assert "not an image" in failed["notes"]["error"]
    assert "--max-pixels" in failed["sub/bomb"]["error"] and failed["sub/bomb"]["exit_code"] == 8
    for row in found:
        source = Path(row["source"])
        assert (row["width"], row["height"], row["mode"]) == (64, 48, "RGB")
        assert row["bpp"] == pytest.approx(8 * len(row["dae"]) / (64 * 48))
        import hashlib

        assert row["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    manifest = json.loads((encoded_collection / "manifest.json").read_text())
    assert manifest["totals"]["done"] == GOOD and manifest["totals"]["failed"] == 3
    assert manifest["model"]["name"] == "tiny2" and len(manifest["model"]["digest"]) == 8
    assert [s["file"] for s in manifest["shards"]] == sorted(p.name for p in encoded_collection.glob("shard-*.parquet"))


def test_each_dae_is_byte_identical_to_neurcodec_encode(photo_collection, encoded_collection, tmp_path):
    found = {Path(r["source"]).name: r["dae"] for r in rows(encoded_collection)}
    paths = sorted(photo_collection.rglob("img*"))
    result = cli("encode", *map(str, paths), "-O", str(tmp_path), "--quiet")
    assert result.returncode == 0, result.stderr
    for path in paths:
        assert (tmp_path / path.with_suffix(".dae").name).read_bytes() == found[path.name], path.name


def test_finished_job_exit_code_and_one_line_summary(photo_collection, encoded_collection):
    result = cli("dataset", "encode", str(photo_collection), "-o", str(encoded_collection), "--shard-size", "6", "--json")
    assert result.returncode == 10
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "40 of 43 images encoded in 8 shards (0 run now" in lines[0]
    assert lines[1] == f"neurcodec: 3 of 43 images failed (reasons in {encoded_collection}/failures.jsonl)"
    done = json.loads(result.stdout.strip().splitlines()[-1])
    assert done["event"] == "done" and done["shards_run"] == 0 and done["done"] == GOOD


def test_resume_runs_only_missing_shards_and_clears_leftovers(photo_collection, encoded_collection, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(encoded_collection, out)
    (out / "shard-00002.parquet").unlink()
    (out / "_neurcodec" / "shards" / "shard-00004.json").unlink()
    (out / "_neurcodec" / "tmp" / "shard-00005.parquet.dead.tmp").write_bytes(b"half a shard")
    result = cli("dataset", "encode", str(photo_collection), "-o", str(out), "--shard-size", "6", "--json")
    assert result.returncode == 10, result.stderr
    run_now = [json.loads(line)["name"] for line in result.stdout.splitlines() if json.loads(line)["event"] == "shard"]
    assert sorted(run_now) == ["shard-00002", "shard-00004"]
    assert not list((out / "_neurcodec" / "tmp").iterdir())
    assert rows(out) == rows(encoded_collection)


def test_a_different_job_is_refused_and_y_starts_over(photo_collection, encoded_collection, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(encoded_collection, out)
    result = cli("dataset", "encode", str(photo_collection), "-o", str(out), "--shard-size", "6", "-q", "20")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"neurcodec: {out}: holds a different job (settings differ: quality None → 20); use another folder, or -y to start over"]
    result = cli("dataset", "encode", str(photo_collection), "-o", str(out), "--shard-size", "10", "-q", "20", "-y", "--quiet")
    assert result.returncode == 10
    assert len(list(out.glob("shard-*.parquet"))) == 5
    assert sorted(r["key"] for r in rows(out)) == sorted(r["key"] for r in rows(encoded_collection))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    result = cli("dataset", "encode", str(photo_collection), "-o", str(tmp_path / "mine"), "-y")
    assert result.returncode == 2 and "not a neurcodec dataset folder" in result.stderr
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_ctrl_c_then_the_same_command_resumes_to_the_same_output(photo_collection, encoded_collection, tmp_path):
    out = tmp_path / "out"
    args = ("dataset", "encode", str(photo_collection), "-o", str(out), "--shard-size", "1")
    proc = start_job(*args)
    wait_for_records(out, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and stderr.strip().splitlines()[-1] == "neurcodec: interrupted"
    done = {p.stem for p in out.glob("shard-*.parquet")}
    assert 3 <= len(done) < 43 and not (out / "manifest.json").exists()
    assert done <= {p.stem for p in (out / "_neurcodec" / "shards").glob("*.json")}  # every visible shard is whole
    result = cli(*args, "--quiet")
    assert result.returncode == 10, result.stderr
    assert sorted(rows(out), key=lambda r: r["key"]) == sorted(rows(encoded_collection), key=lambda r: r["key"])


def test_webdataset_out_and_back_in(photo_collection, encoded_collection, tmp_path):
    out = tmp_path / "wds"
    result = cli("dataset", "encode", str(photo_collection), "-o", str(out), "--shard-size", "6", "--format", "webdataset", "--quiet")
    assert result.returncode == 10, result.stderr
    with tarfile.open(out / "shard-00000.tar") as tar:
        names = tar.getnames()
    assert names[:2] == ["img00.dae", "img00.json"]
    assert rows(out) == rows(encoded_collection)
    # A WebDataset of source images (what people hand in): members KEY.jpg + KEY.cls.
    shard = tmp_path / "train-000.tar"
    with tarfile.open(shard, "w") as tar:
        for path in sorted(photo_collection.rglob("img*"))[:5]:
            tar.add(path, arcname=f"s/{path.stem}.{path.suffix.lstrip('.')}")
            cls = tmp_path / "label.cls"
            cls.write_text("3")
            tar.add(cls, arcname=f"s/{path.stem}.cls")
    result = cli("dataset", "encode", str(shard), "-o", str(tmp_path / "from_wds"), "--quiet")
    assert result.returncode == 0, result.stderr
    got = rows(tmp_path / "from_wds")
    assert [r["key"] for r in got] == [f"s/{p.stem}" for p in sorted(photo_collection.rglob("img*"))[:5]]
    assert got[0]["source"] == f"{shard}#s/{got[0]['key'].split('/')[1]}"


def test_parquet_source_with_named_columns_and_a_list_file(photo_collection, encoded_collection, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted(photo_collection.rglob("img*"))[:6]
    table = pa.table({"id": [p.stem for p in paths], "jpeg": [p.read_bytes() for p in paths]})
    pq.write_table(table, tmp_path / "photos.parquet", row_group_size=4)
    result = cli("dataset", "encode", str(tmp_path / "photos.parquet"), "-o", str(tmp_path / "a"), "--column", "jpeg", "--key-column", "id", "--quiet")
    assert result.returncode == 0, result.stderr
    by_name = {Path(r["source"]).name: r["dae"] for r in rows(encoded_collection)}
    got = rows(tmp_path / "a")
    assert [r["key"] for r in got] == [p.stem for p in paths] and len(list((tmp_path / "a").glob("*.parquet"))) == 2
    assert [r["dae"] for r in got] == [by_name[p.name] for p in paths]
    result = cli("dataset", "encode", str(tmp_path / "photos.parquet"), "-o", str(tmp_path / "b"), "--column", "pixels")
    assert result.returncode == 2 and "no column 'pixels' (has id, jpeg); name it with --column" in result.stderr
    listing = tmp_path / "some.txt"
    listing.write_text("# two photos and a file that is gone\n" + "\n".join(str(p) for p in paths[:2]) + f"\n{photo_collection / 'gone.png'}\n")
    result = cli("dataset", "encode", str(listing), "-o", str(tmp_path / "c"), "--quiet")
    assert result.returncode == 10
    got = rows(tmp_path / "c")
    assert [r["key"] for r in got] == [key_of(p, photo_collection) for p in paths[:2]]  # below the entries' common folder
    assert [r["dae"] for r in got] == [by_name[p.name] for p in paths[:2]]
    assert [f["key"] for f in failures(tmp_path / "c")] == ["gone"]


def test_decode_gives_what_neurcodec_decode_gives(encoded_collection, tmp_path):
    out = tmp_path / "images"
    result = cli("dataset", "decode", str(encoded_collection), "-o", str(out), "--steps", "2", "--seed", "5", "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(list(out.rglob("*.png"))) == GOOD
    sample = rows(encoded_collection)[::13]
    for i, row in enumerate(sample):
        (tmp_path / f"{i}.dae").write_bytes(row["dae"])
    result = cli("decode", *[str(tmp_path / f"{i}.dae") for i in range(len(sample))], "-O", str(tmp_path / "one"), "--steps", "2", "--seed", "5", "--quiet")
    assert result.returncode == 0, result.stderr
    for i, row in enumerate(sample):
        assert (tmp_path / "one" / f"{i}.png").read_bytes() == (out / f"{row['key']}.png").read_bytes()


def test_iterable_dataset_gives_latents_and_images_once_across_workers(encoded_collection, tmp_path):
    import torch
    from torch.utils.data import DataLoader

    import neurcodec
    from neurcodec.dataset import DaeDataset

    latents = list(DataLoader(DaeDataset(str(encoded_collection)), batch_size=None, num_workers=2))
    assert sorted(item["key"] for item in latents) == sorted(r["key"] for r in rows(encoded_collection))
    codec = neurcodec.load()
    by_key = {r["key"]: r for r in rows(encoded_collection)}
    for item in latents[::9]:
        expected = codec._latent(by_key[item["key"]]["dae"])[1][0]
        assert item["latent"].dtype == torch.float32 and torch.equal(item["latent"], expected)
    first = next(iter(DaeDataset(str(encoded_collection), output="image", steps=2, seed=5)))
    (tmp_path / "x.dae").write_bytes(by_key[first["key"]]["dae"])
    result = cli("decode", str(tmp_path / "x.dae"), "-o", str(tmp_path / "x.png"), "--steps", "2", "--seed", "5", "--quiet")
    assert result.returncode == 0
    assert np.array_equal(first["image"].permute(1, 2, 0).numpy(), np.asarray(Image.open(tmp_path / "x.png")))
    halves = [list(DaeDataset(str(encoded_collection), output="dae", rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(i["key"] for h in halves for i in h) == sorted(by_key) and all(halves)


def test_info_reports_and_verify_catches_a_changed_shard(encoded_collection, tmp_path):
    import shutil

    result = cli("dataset", "info", str(encoded_collection), "--json", "--verify")
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert described["complete"] and described["verified"] and described["totals"]["done"] == GOOD
    assert described["bpp"] == pytest.approx(8 * described["totals"]["dae_bytes"] / described["totals"]["pixels"])
    out = tmp_path / "out"
    shutil.copytree(encoded_collection, out)
    shard = out / "shard-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    result = cli("dataset", "info", str(out), "--verify")
    assert result.returncode == 5
    assert result.stderr.strip() == "neurcodec: 1 shard(s) do not match the manifest: shard-00001.parquet"
    result = cli("dataset", "info", str(tmp_path))
    assert result.returncode == 3 and result.stderr.strip() == f"neurcodec: {tmp_path}: not a neurcodec dataset (no manifest.json)"


def test_usage_errors_come_before_any_work(photo_collection, tmp_path):
    result = cli("dataset", "encode", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o"))
    assert result.returncode == 3 and result.stderr.strip() == f"neurcodec: {tmp_path / 'nowhere'}: no such file or folder"
    result = cli("dataset", "encode", str(photo_collection), "-o", str(tmp_path / "o"), "--workers", "2")
    assert result.returncode == 2 and "apply with --ray" in result.stderr
    result = cli("dataset", "decode", str(photo_collection), "-o", str(tmp_path / "o"))
    assert result.returncode == 3 and "not a neurcodec dataset" in result.stderr
    assert not (tmp_path / "o").exists()


def test_folder_keys_are_unique_and_dot_free():
    from neurcodec.dataset.sources import unique_keys

    assert unique_keys(["a.png", "a.jpg", "b.v2.png", "sub/a.png", "./c.png"]) == ["a", "a_jpg", "b_v2", "sub/a", "c"]


def test_missing_weights_stop_the_job_and_leave_nothing_marked_done(photo_collection, tmp_path):
    # A job-level error is not 43 image failures: a later run with the weights must redo it all.
    out = tmp_path / "out"
    result = cli("dataset", "encode", str(photo_collection), "-o", str(out), "--model", "stable-cascade-lite", env={"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 7
    assert result.stderr.count("\n") == 1 and "run `neurcodec pull stable-cascade-lite`" in result.stderr
    assert not list(out.glob("shard-*")) and not list((out / "_neurcodec" / "shards").iterdir())


def test_a_worker_with_other_weights_than_the_driver_refuses(tmp_path):
    # A cluster node with another neurcodec version would write files the manifest does not describe.
    from neurcodec.dataset import EncodeSettings, Placement, work
    from neurcodec.errors import WeightsError

    from neurcodec.zoo import weights_digest

    worker = work.EncodeWorker(str(tmp_path), EncodeSettings(model="tiny2", model_digest="00000000"), Placement())
    with pytest.raises(WeightsError, match=f"weights digest {weights_digest('tiny2').hex()}, the job's is 00000000"):
        worker.codec("tiny2")
