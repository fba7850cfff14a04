"""The diffusion core against the Stable Cascade reference fixtures (FIXTURES.md §4 and §6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from neurcodec.diffusion import (
    COSINE_LIMITS,
    GDF,
    SamplingGrid,
    build_gdf,
    cfg_batch,
    cfg_combine,
    make_denoiser,
    sample,
    sample_ddim,
)

# FIXTURES.md: tables and single steps atol 1e-5; x0 at t = 1 is ~100× its inputs, so relative.
ATOL, RTOL = 1e-5, 1e-5


@pytest.fixture(scope="module")
def gdf_io(fixtures_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(fixtures_dir / "gdf_io.safetensors")


@pytest.fixture(scope="module")
def gdf() -> GDF:
    return build_gdf("eps_p2")


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL, rtol: float = RTOL) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


@pytest.mark.parametrize("shift", [1, 2, 4])
def test_schedule_tables(gdf: GDF, gdf_io, shift: int) -> None:
    log_snr = gdf.schedule(gdf_io["t"], shift=shift)
    close(log_snr, gdf_io[f"shift{shift}_logSNR"])
    a, b = gdf.input_scaler(log_snr)
    close(a, gdf_io[f"shift{shift}_a"])
    close(b, gdf_io[f"shift{shift}_b"])
    close(gdf.noise_cond(log_snr), gdf_io[f"shift{shift}_noise_cond"])


def test_schedule_limits_match_json(gdf: GDF, fixtures_dir: Path) -> None:
    table = json.loads((fixtures_dir / "gdf_schedule_table.json").read_text())
    assert list(COSINE_LIMITS) == table["limits_shift1"]
    t = torch.tensor(table["t"])
    for shift in (1, 2, 4):
        close(gdf.schedule(t, shift=shift), torch.tensor(table[f"shift{shift}"]["logSNR"]))
    # The low end stays clamped for every shift; the high end drops with shift (2·ln shift).
    assert gdf.schedule(torch.tensor(1.0), shift=4).item() == COSINE_LIMITS[0]
    assert gdf.schedule(torch.tensor(0.0), shift=4).item() == pytest.approx(6.4375, abs=1e-4)


def test_ten_step_grid(gdf: GDF, gdf_io) -> None:
    grid = SamplingGrid.build(gdf, 10)
    close(grid.t, gdf_io["grid10_t"], atol=0, rtol=0)
    close(grid.log_snr, gdf_io["grid10_logSNR"])
    close(grid.r, gdf_io["grid10_noise_cond"])
    # r is not t at the clamped ends: the network sees 0.993583 at t = 1.
    assert grid.r[0].item() == pytest.approx(0.993583, abs=1e-6)


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_single_ddim_and_ddpm_steps(gdf: GDF, gdf_io, case: str) -> None:
    t = gdf_io[f"step{case}_t"]
    log_snr = gdf.schedule(t)
    close(log_snr, gdf_io[f"step{case}_logSNR"])
    x, pred = gdf_io["step_x"], gdf_io["step_pred_eps"]
    x0, eps = gdf.undiffuse(x, log_snr[:1], pred)
    close(x0, gdf_io[f"step{case}_x0"])
    close(eps, gdf_io[f"step{case}_eps"])

    grid = SamplingGrid(t, log_snr, *gdf.input_scaler(log_snr), gdf.noise_cond(log_snr))
    denoise = make_denoiser(lambda x_, r_: pred, gdf, grid, batch=1)
    z = gdf_io[f"step{case}_ddpm_noise"]
    for eta, key in ((0.0, "ddim"), (1.0, "ddpm")):
        last_x0, x_next = sample_ddim(denoise, x, grid, eta=eta, noise_fn=lambda i, like: z)
        close(last_x0, gdf_io[f"step{case}_x0"])
        close(x_next, gdf_io[f"step{case}_{key}"])


def test_cfg_lerp_and_global_std_rescale(gdf_io) -> None:
    cond, uncond = gdf_io["cfg_pred_cond"], gdf_io["cfg_pred_uncond"]
    close(cfg_combine(cond, uncond, 1.1, rho=0.0), gdf_io["cfg_lerp"])
    close(cfg_combine(cond, uncond, 1.1, rho=0.7), gdf_io["cfg_rescaled_rho07"])
    # A per-sample std would give a different answer: the reference rescales globally.
    per_sample = torch.lerp(uncond, cond, 1.1)
    per_sample = 0.7 * per_sample * cond.flatten(1).std(1).view(-1, 1, 1, 1) / per_sample.flatten(1).std(1).view(
        -1, 1, 1, 1
    ) + 0.3 * per_sample
    assert not torch.allclose(per_sample, gdf_io["cfg_rescaled_rho07"], atol=1e-5)


def test_forward_diffusion(gdf: GDF, gdf_io) -> None:
    out = gdf.diffuse(gdf_io["diffuse_x0"], t=gdf_io["diffuse_t"], noise=gdf_io["diffuse_eps"])
    close(out.x_t, gdf_io["diffuse_noised"])
    close(out.log_snr, gdf_io["diffuse_logSNR"])
    close(out.noise_cond, gdf_io["diffuse_noise_cond"])
    assert out.noise is gdf_io["diffuse_eps"]
    assert out.target is gdf_io["diffuse_eps"]  # ε target


# --------------------------------------------------------------------- end-to-end (FIXTURES §4)


@pytest.fixture(scope="module")
def stage_b_sampling(fixtures_dir: Path):
    try:
        from neurcodec.models import StageB
    except ImportError:  # written by another helper; absent on an older checkout
        pytest.skip("neurcodec.models.StageB is not available")
    weights_path = fixtures_dir / "stage_b_small_weights.safetensors"
    with safe_open(str(weights_path), "pt") as f:
        config = json.loads(f.metadata()["config"])
    net = StageB(**config)
    net.load_state_dict(load_file(weights_path), strict=True)
    net.eval()
    io = load_file(fixtures_dir / "stage_b_small_sampling_io.safetensors")
    with safe_open(str(fixtures_dir / "stage_b_small_sampling_io.safetensors"), "pt") as f:
        settings = json.loads(f.metadata()["config"])
    kw = cfg_batch(
        {"effnet": io["cond_effnet"], "clip": io["cond_clip"]},
        {"effnet": io["uncond_effnet"], "clip": io["uncond_clip"]},
    )

    def model(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return net(x, r, kw["effnet"], kw["clip"], pixels=None)

    return model, io, settings


def test_stage_b_sampling_teacher_forced(stage_b_sampling, gdf: GDF) -> None:
    model, io, settings = stage_b_sampling
    assert settings["timesteps"] == 4 and settings["cfg"] == 1.1 and settings["cfg_rho"] == 0.7
    grid = SamplingGrid.build(gdf, 4, t_start=settings["t_start"], t_end=settings["t_end"], shift=settings["shift"])
    denoise = make_denoiser(model, gdf, grid, batch=1, cfg=settings["cfg"], cfg_rho=settings["cfg_rho"])
    with torch.no_grad():
        for i in range(4):
            x_in = io["x_init"] if i == 0 else io[f"step{i - 1}_x"]
            x0, x = sample_ddim(
                lambda x_, _j, i=i: denoise(x_, i),
                x_in,
                grid.segment(i, i + 1),
                eta=1.0,
                noise_fn=lambda _j, like, i=i: io[f"step{i}_noise"],
            )
            torch.testing.assert_close(x0, io[f"step{i}_x0"], atol=1e-3, rtol=0)
            torch.testing.assert_close(x, io[f"step{i}_x"], atol=1e-3, rtol=0)


@pytest.mark.parametrize("noise", ["injected", "seeded_generator"])
def test_stage_b_sampling_free_running(stage_b_sampling, gdf: GDF, noise: str) -> None:
    model, io, settings = stage_b_sampling
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    if noise == "injected":
        noise_kw = {"noise_fn": lambda i, like: io[f"step{i}_noise"]}
    else:  # the reference drew its noises from the global RNG seeded 777; a CPU generator matches
        noise_kw = {"generator": torch.Generator().manual_seed(777)}
    result = sample(
        model,
        io["x_init"],
        gdf,
        steps=settings["timesteps"],
        sampler="ddpm",
        cfg=settings["cfg"],
        cfg_rho=settings["cfg_rho"],
        shift=settings["shift"],
        callback=lambda i, x0, x: seen.append((x0, x)),
        **noise_kw,
    )
    # The result is the last step's x0 estimate, not the final x.
    torch.testing.assert_close(result, io["result_x0_last"], atol=1e-2, rtol=0)
    assert len(seen) == 4
    for i, (x0, x) in enumerate(seen):
        torch.testing.assert_close(x0, io[f"step{i}_x0"], atol=1e-2, rtol=0)
        torch.testing.assert_close(x, io[f"step{i}_x"], atol=1e-2, rtol=0)
