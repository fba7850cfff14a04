"""Behaviour of the diffusion core that does not need reference fixtures."""

from __future__ import annotations

import math

import pytest
import torch

from neurcodec.diffusion import (
    GDF,
    RECIPES,
    AdaptiveLossWeight,
    ConstantLossWeight,
    CosineSchedule,
    EpsilonTarget,
    GDFConfig,
    MinSNRLossWeight,
    P2LossWeight,
    SamplingGrid,
    SechLossWeight,
    VTarget,
    X0Target,
    build_gdf,
    cfg_batch,
    pyramid_noise,
    sample,
)
from neurcodec.errors import UsageError

TARGETS = {"eps": EpsilonTarget(), "x0": X0Target(), "v": VTarget()}
S = 0.008
MIN_VAR = math.cos(S / (1 + S) * math.pi / 2) ** 2


def a2_from_r(r: torch.Tensor) -> torch.Tensor:
    """a² at noise condition r: r is the t of the unclamped cosine schedule (float64 here)."""
    return torch.cos((r.double() + S) / (1 + S) * math.pi / 2) ** 2 / MIN_VAR


def oracle(x0: torch.Tensor, target) -> callable:
    """A perfect denoiser: knows x0, infers ε from x_t and returns the exact target."""

    def model(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        a2 = a2_from_r(r).view(-1, *[1] * (x.ndim - 1))
        a, b = a2.sqrt(), (1 - a2).sqrt()
        return target(x0, (x - a * x0) / b, a, b)

    return model


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ parts


@pytest.mark.parametrize("name", ["eps", "x0", "v"])
def test_target_conversions_round_trip(name: str) -> None:
    target = TARGETS[name]
    log_snr = torch.linspace(-9, 9, 7, dtype=torch.float64).view(-1, 1, 1, 1)
    a, b = log_snr.sigmoid().sqrt(), (1 - log_snr.sigmoid()).sqrt()
    x0 = torch.randn(7, 3, 4, 4, generator=gen(1), dtype=torch.float64)
    eps = torch.randn(7, 3, 4, 4, generator=gen(2), dtype=torch.float64)
    x_t = a * x0 + b * eps
    pred = target(x0, eps, a, b)
    torch.testing.assert_close(target.x0(x_t, pred, a, b), x0)
    torch.testing.assert_close(target.eps(x_t, pred, a, b), eps)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_diffuse_and_undiffuse_are_a_pair(recipe: str) -> None:
    gdf = build_gdf(recipe)
    x0 = torch.randn(5, 4, 8, 8, generator=gen(3))
    out = gdf.diffuse(x0, t=torch.tensor([0.05, 0.3, 0.5, 0.7, 0.95]), generator=gen(4))
    x0_back, eps_back = gdf.undiffuse(out.x_t, out.log_snr, out.target)
    torch.testing.assert_close(x0_back, x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(eps_back, out.noise, atol=1e-4, rtol=1e-4)
    assert out.loss_weight.shape == (5,) and torch.isfinite(out.loss_weight).all()
    assert out.noise_cond.shape == (5,)


def test_recipe_is_one_argument() -> None:
    assert isinstance(build_gdf("x0_min_snr").target, X0Target)
    assert isinstance(build_gdf("x0_min_snr").loss_weight, MinSNRLossWeight)
    assert isinstance(build_gdf("v_sech").target, VTarget)
    assert isinstance(build_gdf("v_sech").loss_weight, SechLossWeight)
    assert isinstance(build_gdf("eps_p2").loss_weight, P2LossWeight)
    assert build_gdf(GDFConfig("x0", "min_snr", min_snr_gamma=2.0)).loss_weight.gamma == 2.0
    with pytest.raises(UsageError, match="unknown diffusion recipe"):
        build_gdf("eps_unknown")


def test_diffuse_draws_reproducibly_from_generator() -> None:
    gdf = build_gdf()
    x0 = torch.zeros(3, 4, 8, 8)
    first, second = gdf.diffuse(x0, generator=gen(5)), gdf.diffuse(x0, generator=gen(5))
    assert torch.equal(first.x_t, second.x_t) and torch.equal(first.log_snr, second.log_snr)
    assert len(set(first.log_snr.tolist())) == 3  # random t per sample


def test_loss_weights_values() -> None:
    log_snr = torch.tensor([-4.0, 0.0, 4.0])
    torch.testing.assert_close(ConstantLossWeight(2.0)(log_snr), torch.full((3,), 2.0))
    torch.testing.assert_close(P2LossWeight()(log_snr), 1 / (1 + log_snr.exp()))
    torch.testing.assert_close(MinSNRLossWeight(5.0)(log_snr), torch.tensor([math.exp(-4), 1.0, 5.0]))
    sech = SechLossWeight()(log_snr)
    assert sech[1] == 1 and sech[0] == sech[2] and sech[0] < 1
    # A loss shift reads the weight as for the unshifted schedule: λ + 2·ln(shift).
    torch.testing.assert_close(P2LossWeight()(log_snr, shift=2.0), 1 / (1 + (log_snr + 2 * math.log(2)).exp()))


def test_adaptive_loss_weight_tracks_bucket_losses() -> None:
    weight = AdaptiveLossWeight()
    log_snr = torch.tensor([-5.0, 5.0])
    torch.testing.assert_close(weight(log_snr), torch.ones(2))
    for _ in range(1000):  # 0.99^1000 ≈ 4e-5 of the initial 1 is left
        weight.update(log_snr, torch.tensor([4.0, 0.25]))
    torch.testing.assert_close(weight(log_snr), torch.tensor([0.25, 4.0]), rtol=0.01, atol=0)
    fresh = AdaptiveLossWeight()
    fresh.load_state_dict(weight.state_dict())
    assert torch.equal(fresh(log_snr), weight(log_snr))
    assert fresh(torch.tensor([0.0])).item() == 1.0  # untouched bucket


def test_pyramid_noise_is_unit_variance_with_coarse_structure() -> None:
    noise = pyramid_noise((8, 4, 64, 64), gen(6))
    assert torch.equal(noise, pyramid_noise((8, 4, 64, 64), gen(6)))
    assert noise.var().item() == pytest.approx(1.0, rel=0.1)
    # 8×8 block means of white noise have variance 1/64; the coarse levels raise it a lot.
    block_means = torch.nn.functional.avg_pool2d(noise, 8)
    assert block_means.var().item() > 5 / 64
    assert build_gdf("eps_adaptive").pyramid


def test_shift_moves_the_schedule_towards_noise() -> None:
    schedule = CosineSchedule()
    t = torch.linspace(0.05, 0.95, 10)
    torch.testing.assert_close(schedule(t, shift=2.0), schedule(t) - 2 * math.log(2), atol=1e-5, rtol=0)


def test_cfg_batch_pairs_by_name_and_defaults_to_zeros() -> None:
    effnet, clip = torch.ones(1, 16, 3, 3), torch.ones(1, 1, 32)
    out = cfg_batch({"effnet": effnet, "clip": clip, "pixels": None}, {"clip": 2 * clip})
    assert torch.equal(out["effnet"], torch.cat([effnet, torch.zeros_like(effnet)]))
    assert torch.equal(out["clip"], torch.cat([clip, 2 * clip]))
    assert out["pixels"] is None


# ------------------------------------------------------------------------------ samplers


@pytest.mark.parametrize("target", ["eps", "x0", "v"])
@pytest.mark.parametrize("sampler", ["ddim", "dpmpp-2m"])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_deterministic_samplers_recover_x0_with_an_oracle(target: str, sampler: str, steps: int) -> None:
    gdf = build_gdf(GDFConfig(target))
    x0 = torch.randn(2, 4, 8, 8, generator=gen(7), dtype=torch.float64)
    z = torch.randn(2, 4, 8, 8, generator=gen(8), dtype=torch.float64)
    result = sample(oracle(x0, gdf.target), z, gdf, steps=steps, sampler=sampler)
    torch.testing.assert_close(result, x0, atol=1e-4, rtol=1e-4)
    # The final x lies on the deterministic trajectory a·x0 + b·ε0 of the starting noise.
    grid = SamplingGrid.build(gdf, steps)
    eps0 = (z - grid.a[0] * x0) / grid.b[0]
    final = sample(oracle(x0, gdf.target), z, gdf, steps=steps, sampler=sampler, output="x")
    torch.testing.assert_close(final, grid.a[-1] * x0 + grid.b[-1] * eps0, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_ddpm_marginal_variance_follows_the_schedule(eta: float) -> None:
    """With an exact x0, each stochastic step keeps x_t ~ N(a_t·x0, b_t²) (σ² + (b'² − σ²) = b'²)."""
    gdf = build_gdf()
    x0 = torch.randn(32, 4, 16, 16, generator=gen(9))
    xs: list[torch.Tensor] = []
    sampler, kw = ("ddpm", {}) if eta == 1.0 else ("ddim", {"eta": eta})
    sample(oracle(x0, gdf.target), torch.randn(x0.shape, generator=gen(10)), gdf, steps=10, sampler=sampler,
           generator=gen(11), callback=lambda i, x0_, x: xs.append(x), **kw)
    grid = SamplingGrid.build(gdf, 10)
    for i, x in enumerate(xs):
        residual = x.double() - grid.a[i + 1].double() * x0.double()
        assert residual.mean().abs().item() < 0.02 * grid.b[i + 1].item()
        assert residual.var().item() / grid.b[i + 1].item() ** 2 == pytest.approx(1.0, rel=0.05)


def test_ddpm_injects_noise_and_ddim_does_not() -> None:
    gdf = build_gdf()
    x0 = torch.randn(1, 4, 8, 8, generator=gen(12))
    z = torch.randn(1, 4, 8, 8, generator=gen(13))
    model = oracle(x0, gdf.target)
    ddim = [sample(model, z, gdf, steps=4, sampler="ddim", generator=gen(s), output="x") for s in (1, 2)]
    ddpm = [sample(model, z, gdf, steps=4, sampler="ddpm", generator=gen(s), output="x") for s in (1, 2)]
    assert torch.equal(ddim[0], ddim[1])
    assert not torch.allclose(ddpm[0], ddpm[1])


def test_fixed_seed_reproduces_a_decode() -> None:
    gdf = build_gdf()
    weight = torch.randn(4, 4, generator=gen(14)) * 0.3

    def model(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:  # a small, input-dependent network
        return torch.tanh(torch.einsum("oc,bchw->bohw", weight, x) + r.view(-1, 1, 1, 1))

    runs = [sample(model, (2, 4, 8, 8), gdf, steps=5, cfg=1.5, generator=gen(seed)) for seed in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


def test_cfg_calls_the_model_once_per_step_on_a_doubled_batch() -> None:
    gdf = build_gdf()
    calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def model(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        calls.append((tuple(x.shape), tuple(r.shape)))
        half = x.shape[0] // 2
        return torch.cat([torch.ones_like(x[:half]), torch.zeros_like(x[half:])])

    sample(model, torch.zeros(3, 4, 8, 8), gdf, steps=6, cfg=2.0, cfg_rho=0.0, generator=gen(0))
    assert calls == [((6, 4, 8, 8), (6,))] * 6


def test_dpmpp_2m_converges_at_second_order_on_gaussian_data() -> None:
    """Gaussian data has a closed-form probability-flow ODE: x_t ∝ sqrt(a_t²s² + b_t²)."""
    gdf, s = build_gdf(), 0.5

    def denoiser(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:  # exact ε for x0 ~ N(0, s²)
        a2 = a2_from_r(r).view(-1, 1, 1, 1)
        a, b2 = a2.sqrt(), 1 - a2
        return (x - a * (a * s * s * x / (a2 * s * s + b2))) / b2.sqrt()

    z = torch.randn(2, 4, 8, 8, generator=gen(15), dtype=torch.float64)
    grid = SamplingGrid.build(gdf, 1)
    a0, b0, a1, b1 = (v.double() for v in (grid.a[0], grid.b[0], grid.a[1], grid.b[1]))
    exact = z * ((a1**2 * s * s + b1**2) / (a0**2 * s * s + b0**2)).sqrt()

    def error(sampler: str, steps: int) -> float:
        return (sample(denoiser, z, gdf, steps=steps, sampler=sampler, output="x") - exact).abs().max().item()

    dpm32, dpm64, ddim32, ddim64 = error("dpmpp-2m", 32), error("dpmpp-2m", 64), error("ddim", 32), error("ddim", 64)
    assert dpm32 / dpm64 > 3.0  # second order: ~4× per halving of the step
    assert ddim32 / ddim64 < 2.5  # first order: ~2×
    assert dpm64 < ddim64


def test_sampler_arguments_are_checked() -> None:
    gdf, model = build_gdf(), lambda x, r: torch.zeros_like(x)
    with pytest.raises(UsageError, match="steps"):
        sample(model, torch.zeros(1, 4, 8, 8), gdf, steps=0)
    with pytest.raises(UsageError, match="unknown sampler"):
        sample(model, torch.zeros(1, 4, 8, 8), gdf, steps=2, sampler="euler")
    with pytest.raises(UsageError, match="eta"):
        sample(model, torch.zeros(1, 4, 8, 8), gdf, steps=2, sampler="ddpm", eta=0.5)
    with pytest.raises(UsageError, match="t_start"):
        sample(model, torch.zeros(1, 4, 8, 8), gdf, steps=2, t_start=0.2, t_end=0.5)
    # A partial run (t_end > 0) is allowed; its final x is then the useful output.
    partial = sample(model, torch.zeros(1, 4, 8, 8), gdf, steps=2, sampler="ddim", t_start=0.6, t_end=0.3, output="x")
    assert partial.shape == (1, 4, 8, 8)


def test_gdf_defaults_are_the_stage_b_setup() -> None:
    gdf = GDF()
    assert isinstance(gdf.target, EpsilonTarget) and isinstance(gdf.loss_weight, P2LossWeight)
