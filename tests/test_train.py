"""`neurcodec train` on the micro config: phases, stop + resume, export, continuing from an export."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from neurcodec import pipeline
from neurcodec.cli import app
from neurcodec.errors import UsageError
from neurcodec.train import Trainer, TrainConfig


@pytest.fixture
def photos(tmp_path):
    """A handful of small smooth colour images, big enough for the micro config's 64² crops."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        coarse = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((112, 96), Image.BICUBIC).save(folder / f"img{i}.png")
    return folder


class _StopAt:
    """A progress callback that interrupts training like Ctrl-C at a given (phase, step)."""

    def __init__(self, phase: str, step: int) -> None:
        self.at = (phase, step)

    def __call__(self, phase: str, step: int, total: int, stats: dict) -> None:
        if (phase, step) == self.at:
            raise KeyboardInterrupt


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{k}": v.clone()
        for name in ("stage_a", "encoder", "stage_b", "ema_stage_b")
        for k, v in getattr(trainer, name).state_dict().items()
    }


def test_interrupted_training_resumes_from_its_checkpoint_and_finishes(photos, tmp_path):
    config = TrainConfig.load("micro")
    out = tmp_path / "run"
    first = Trainer(config, photos, out, log=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        first.run(progress=_StopAt("joint", 2))
    assert first.checkpoint_path.is_file()
    saved = _weights(first)

    second = Trainer(config, photos, out, seed=1, log=lambda m: None)
    second.load_checkpoint()
    assert (second.phase, second.step) == ("joint", 2)
    assert second.latent_scale == first.latent_scale and second.latent_scale > 0
    resumed = _weights(second)
    assert all(torch.equal(saved[k], resumed[k]) for k in saved)

    assert second.run() is True
    assert second.phase == "done"
    trained = _weights(second)
    assert any(not torch.equal(saved[k], trained[k]) for k in saved if k.startswith("stage_b."))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(entry["loss"]) for entry in log)


def test_train_cli_exports_a_model_that_can_be_continued(photos, tmp_path):
    runner = CliRunner()
    model = tmp_path / "micro.safetensors"
    result = runner.invoke(app, ["train", str(photos), "-c", "micro", "-o", str(tmp_path / "a"), "--export", str(model)])
    assert result.exit_code == 0, result.output
    from safetensors import safe_open

    with safe_open(str(model), framework="pt") as f:
        record = json.loads(f.metadata()["neurcodec"])["training"]
    assert (record["stage_a_steps"], record["joint_steps"], record["phase"]) == (4, 4, "done")

    again = runner.invoke(app, ["train", str(photos), "-c", "micro", "-o", str(tmp_path / "a")])
    assert isinstance(again.exception, UsageError) and "--resume" in str(again.exception)  # never overwritten

    longer = tmp_path / "micro2.safetensors"
    result = runner.invoke(
        app,
        ["train", str(photos), "-c", "micro", "-o", str(tmp_path / "b"), "--init", str(model),
         "--joint-steps", "3", "--export", str(longer)],
    )
    assert result.exit_code == 0, result.output
    with safe_open(str(longer), framework="pt") as f:
        record = json.loads(f.metadata()["neurcodec"])["training"]
    assert record["joint_steps"] == 4 + 3  # the exported model counts the steps it started from


def test_init_refuses_a_model_of_another_config(photos, tmp_path):
    micro = TrainConfig.load("micro")
    donor = Trainer(micro, photos, tmp_path / "donor", log=lambda m: None)
    donor.run()
    path = tmp_path / "micro.safetensors"
    donor.export(path)
    tiny = Trainer(TrainConfig.load("tiny"), photos, tmp_path / "t", log=lambda m: None)
    with pytest.raises(UsageError, match="other model shapes"):
        tiny.init_from_bundle(path)


def test_one_step_loss_trains_encoder_and_stage_b_through_frozen_stage_a(photos, tmp_path):
    trainer = Trainer(TrainConfig.load("micro"), photos, tmp_path / "run", log=lambda m: None)
    assert trainer.run() is True
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    joint = [entry for entry in log if entry["phase"] == "joint"]
    assert joint and all(0.0 <= entry["ms_ssim_1step"] <= 1.0 for entry in joint)

    from neurcodec.losses import ms_ssim_l1
    from neurcodec.models.effnet import effnet_preprocess
    from neurcodec.train import CropDataset, Draws

    crops = CropDataset(trainer.images, 64, 4, seed=0)
    x = torch.stack([crops[0]["pixels"], crops[1]["pixels"]])
    latent = trainer.encoder(effnet_preprocess(x))
    decoded, real = trainer.joint_model.one_step_decode(latent, x, Draws(0, 0, 2, [0, 1], torch.device("cpu")))
    loss, score = ms_ssim_l1(decoded, real)
    loss.backward()
    assert 0.0 <= score <= 1.0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.stage_b.parameters())
    assert all(p.grad is None for p in trainer.stage_a.parameters())  # stage A stays frozen


def test_a_model_without_a_direct_head_can_be_continued_with_one(photos, tmp_path):
    from dataclasses import replace

    micro = TrainConfig.load("micro")
    headless = replace(micro, stage_b=replace(micro.stage_b, c_direct=()))
    donor = Trainer(headless, photos, tmp_path / "donor", log=lambda m: None)
    donor.run()
    path = tmp_path / "headless.safetensors"
    donor.export(path, dtype=torch.float32)

    trainer = Trainer(micro, photos, tmp_path / "run", log=lambda m: None)
    trainer.init_from_bundle(path)
    for key, value in donor.ema_stage_b.state_dict().items():
        assert torch.equal(trainer.stage_b.state_dict()[key], value)
    latent = torch.randn(1, 16, 2, 2)
    assert trainer.stage_b.direct_estimate(latent, (16, 16)).abs().max() == 0  # the head starts as a no-op


def test_a_head_grows_refine_blocks_without_changing_what_it_computes(photos, tmp_path):
    from dataclasses import replace

    micro = TrainConfig.load("micro")
    donor = Trainer(micro, photos, tmp_path / "donor", log=lambda m: None)
    donor.run()
    path = tmp_path / "micro.safetensors"
    donor.export(path, dtype=torch.float32)

    grown = replace(micro, stage_b=replace(micro.stage_b, direct_refine=2))
    trainer = Trainer(grown, photos, tmp_path / "run", log=lambda m: None)
    trainer.init_from_bundle(path)
    latent = torch.randn(1, 16, 2, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = donor.ema_stage_b.direct_estimate(latent, (16, 16))
        after = trainer.stage_b.direct_estimate(latent, (16, 16))
    assert before.abs().max() > 0 and torch.equal(before, after)
    assert len(trainer.stage_b.direct_head.refine) == 2


def test_the_adversarial_term_trains_a_critic_that_resumes_with_the_run(photos, tmp_path):
    from dataclasses import replace

    micro = TrainConfig.load("micro")
    config = replace(micro, losses={**micro.losses, "adversarial": 0.1}, adversarial_start=1, disc_widths=(8, 16))
    out = tmp_path / "run"
    first = Trainer(config, photos, out, log=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        first.run(progress=_StopAt("joint", 3))
    critic = {k: v.clone() for k, v in first.disc.state_dict().items()}
    second = Trainer(config, photos, out, log=lambda m: None)
    second.load_checkpoint()
    assert all(torch.equal(critic[k], v) for k, v in second.disc.state_dict().items())
    assert second.run() is True
    joint = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"joint"' in line]
    assert joint and all(np.isfinite(e["d_loss"]) and np.isfinite(e["g_adv"]) for e in joint)
    with pytest.raises(UsageError, match="needs the one-step loss"):
        replace(config, losses={"diffusion": 1.0, "adversarial": 0.1})


def test_lr_override_applies_to_a_continuation(photos, tmp_path):
    runner = CliRunner()
    model, frozen = tmp_path / "micro.safetensors", tmp_path / "same.safetensors"
    assert runner.invoke(app, ["train", str(photos), "-c", "micro", "-o", str(tmp_path / "a"), "--export", str(model)]).exit_code == 0
    result = runner.invoke(
        app,
        ["train", str(photos), "-c", "micro", "-o", str(tmp_path / "b"), "--init", str(model),
         "--joint-steps", "2", "--lr", "0", "--export", str(frozen)],
    )
    assert result.exit_code == 0, result.output
    from safetensors.torch import load_file

    before, after = load_file(str(model)), load_file(str(frozen))
    stage_b = [k for k in before if k.startswith("stage_b.")]
    assert stage_b and all(torch.equal(before[k], after[k]) for k in stage_b)  # a zero rate moves nothing


def test_one_step_samples_can_use_larger_crops_than_the_diffusion_batch(photos, tmp_path):
    from dataclasses import replace

    micro = TrainConfig.load("micro")
    config = replace(micro, one_step_crop=2 * micro.joint_phase.crop)  # 128² from 112×96 photos
    trainer = Trainer(config, photos, tmp_path / "run", log=lambda m: None)
    assert trainer.run() is True
    assert min(min(img.shape[1:]) for img in trainer.images) >= 128  # small photos are upscaled to fit
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    joint = [entry for entry in log if entry["phase"] == "joint"]
    assert joint and all(0.0 <= entry["ms_ssim_1step"] <= 1.0 for entry in joint)


@pytest.fixture
def taesd_folder(tmp_path):
    """A TAESD-style checkpoint pair of micro2's stage A shape, as published (.pth state dicts)."""
    from neurcodec.models.taesd import TinyAutoencoder

    cfg = TrainConfig.load("micro2").stage_a
    model = TinyAutoencoder(cfg.c_hidden, cfg.c_latent, cfg.levels)
    folder = tmp_path / "taesd"
    folder.mkdir()
    torch.save(model.encoder.half().state_dict(), folder / "taesd_encoder.pth")
    torch.save(model.decoder.half().state_dict(), folder / "taesd_decoder.pth")
    return folder


def test_a_pretrained_stage_a_is_required_loaded_and_kept(photos, taesd_folder, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["train", str(photos), "-c", "micro2", "-o", str(tmp_path / "none")])
    assert isinstance(missing.exception, UsageError) and "--stage-a" in str(missing.exception)

    model = tmp_path / "m.safetensors"
    result = runner.invoke(
        app, ["train", str(photos), "-c", "micro2", "--stage-a", str(taesd_folder), "-o", str(tmp_path / "a"), "--export", str(model)]
    )
    assert result.exit_code == 0, result.output
    from safetensors.torch import load_file

    exported = load_file(str(model))
    published = torch.load(taesd_folder / "taesd_decoder.pth", weights_only=True)
    assert all(torch.equal(exported[f"stage_a.decoder.{k}"], v) for k, v in published.items())  # frozen, shipped as is

    # An exported model is itself a valid --stage-a source for a new run.
    again = runner.invoke(app, ["train", str(photos), "-c", "micro2", "--stage-a", str(model), "-o", str(tmp_path / "b")])
    assert again.exit_code == 0, again.output


def test_a_resumed_run_reuses_its_cached_stage_a_latents(photos, taesd_folder, tmp_path):
    config = TrainConfig.load("micro2")
    messages: list[str] = []
    first = Trainer(config, photos, tmp_path / "run", log=messages.append)
    first.load_stage_a(taesd_folder)
    with pytest.raises(KeyboardInterrupt):
        first.run(progress=_StopAt("joint", 2))
    assert any("caching" in m for m in messages)

    messages.clear()
    second = Trainer(config, photos, tmp_path / "run", log=messages.append)
    second.load_checkpoint()
    assert second.run() is True
    assert not any("caching" in m for m in messages)
    assert all(torch.equal(a, b) for a, b in zip(first.latent_cache, second.latent_cache))


@pytest.mark.parametrize("native_bf16", [True, False])
def test_bf16_autocast_is_used_only_where_the_cpu_does_bf16_natively(photos, tmp_path, monkeypatch, native_bf16):
    # Emulated bf16 made a joint step 14× slower than fp32 on an AVX2-only CPU.
    monkeypatch.setattr(pipeline, "_cpu_has_bf16", lambda: native_bf16)
    config = dataclasses.replace(TrainConfig.load("micro"), autocast="bfloat16")
    said: list[str] = []
    trainer = Trainer(config, photos, tmp_path / "run", log=said.append)
    with trainer.autocast():
        assert torch.is_autocast_enabled("cpu") is native_bf16
    assert any("float32" in line for line in said) is not native_bf16


def test_a_one_step_window_decodes_and_scores_a_block_aligned_part_of_each_crop(photos, taesd_folder, tmp_path):
    micro2 = TrainConfig.load("micro2")
    cfg = dataclasses.replace(micro2, one_step_window=64, losses={**micro2.losses, "adversarial": 0.1})
    trainer = Trainer(cfg, photos, tmp_path / "run", log=lambda m: None)
    trainer.load_stage_a(taesd_folder)
    assert trainer.run() is True  # the critic sees the same windows as the pixel loss

    x = torch.rand(2, 3, 128, 128)  # micro2's two one-step samples
    z0 = torch.randn(2, cfg.stage_a.c_latent, 16, 16)
    latent = torch.randn(2, cfg.encoder.c_latent, 4, 4)
    from neurcodec.losses import ms_ssim_l1
    from neurcodec.train import Draws

    draws = Draws(0, 0, 2, [0, 1], torch.device("cpu"))
    decoded, real = trainer.joint_model.decode_windows(z0.requires_grad_(), latent, x, None, draws)
    loss, score = ms_ssim_l1(decoded, real)
    assert decoded.shape == real.shape == (2, 3, 64, 64)
    for window, crop in zip(real, x):
        offsets = [(t, l) for t in range(0, 65, 32) for l in range(0, 65, 32) if torch.equal(crop[:, t : t + 64, l : l + 64], window)]
        assert len(offsets) == 1  # a window on the thumbnail's 32-px grid
    loss.backward()
    assert z0.grad is not None and z0.grad.abs().sum() > 0 and 0.0 <= score <= 1.0

    odd = Trainer(dataclasses.replace(cfg, one_step_window=48), photos, tmp_path / "odd", log=lambda m: None)
    with pytest.raises(UsageError, match="multiple of 32"):
        odd.joint_model.decode_windows(z0.detach(), latent, x, None, draws)
