"""Samplers: short pure loops over a denoiser, and the one `sample` driver that wraps them.

A denoiser is `denoise(x, i) -> (x0, eps)` at grid point i; guidance, batching and the
target parametrisation live in the driver, so a sampler never knows which target, schedule
or guidance it runs (k-diffusion style). Every per-step coefficient is precomputed once per
call as float32 tensors on the device: the loop does no `.item()` syncs and no schedule math.

Noise is drawn on the CPU from a `torch.Generator` and then moved to the device, as the
reference does, so a seed reproduces a decode on one platform.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from neurcodec.diffusion.gdf import GDF
from neurcodec.diffusion.guidance import cfg_combine
from neurcodec.errors import UsageError

__all__ = [
    "SamplingGrid",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "SAMPLERS",
    "make_denoiser",
    "Model",
    "Denoiser",
    "NoiseFn",
    "Callback",
]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""`model(x, r) -> prediction` in the GDF's target parametrisation; r has shape (batch,)."""
Denoiser = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
NoiseFn = Callable[[int, torch.Tensor], torch.Tensor]
"""`noise_fn(step, like) -> N(0, I)` of like's shape, for the update of step `step`."""
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]
"""`callback(step, x0, x)`: the x0 estimate at step i and x after step i's update."""


@dataclass(frozen=True)
class SamplingGrid:
    """The T + 1 points t_0 = t_start … t_T = t_end and everything derived from them."""

    t: torch.Tensor
    log_snr: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    r: torch.Tensor  # the network's noise condition at each point

    @property
    def steps(self) -> int:
        return self.t.numel() - 1

    def segment(self, start: int, stop: int) -> SamplingGrid:
        """Grid points start…stop (inclusive), e.g. one step for teacher forcing."""
        return SamplingGrid(*(v[start : stop + 1] for v in (self.t, self.log_snr, self.a, self.b, self.r)))

    @classmethod
    def build(
        cls,
        gdf: GDF,
        steps: int,
        *,
        t_start: float = 1.0,
        t_end: float = 0.0,
        shift: float = 1.0,
        device: torch.device | str | None = None,
    ) -> SamplingGrid:
        if steps < 1:
            raise UsageError(f"diffusion steps must be at least 1, got {steps}")
        if not 0.0 <= t_end < t_start <= 1.0:
            raise UsageError(f"sampling runs from more to less noise in [0, 1]; got t_start={t_start}, t_end={t_end}")
        t = torch.linspace(t_start, t_end, steps + 1)  # float32, as the reference
        log_snr = gdf.schedule(t, shift=shift).to(device)
        a, b = gdf.input_scaler(log_snr)
        return cls(t.to(device), log_snr, a, b, gdf.noise_cond(log_snr))


def sample_ddim(
    denoise: Denoiser,
    x: torch.Tensor,
    grid: SamplingGrid,
    *,
    eta: float = 0.0,
    noise_fn: NoiseFn | None = None,
    callback: Callback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM(η): x ← a'·x0 + sqrt(b'² − σ²)·ε + σ·z, σ = η·(b'/b)·sqrt(1 − a²/a'²).

    η = 0 is deterministic and draws no noise; η = 1 is DDPM's ancestral step.
    Returns (x0 estimate of the last step, x after the last update).
    """
    a, b = grid.a[:-1], grid.b[:-1]
    a_next, b_next = grid.a[1:], grid.b[1:]
    if eta > 0:
        if noise_fn is None:
            raise UsageError("a stochastic sampler (eta > 0) needs a noise source")
        sigma = eta * (b_next**2 / b**2).sqrt() * (1 - a**2 / a_next**2).sqrt()
        c_eps = (b_next**2 - sigma**2).sqrt()
    else:
        # The reference's form: sqrt(b'²) can differ from b' in the last bit.
        sigma, c_eps = None, (b_next**2 - 0).sqrt()
    a_next, c_eps = a_next.unbind(0), c_eps.unbind(0)
    sigma = sigma.unbind(0) if sigma is not None else None
    x0 = x
    for i in range(grid.steps):
        x0, eps = denoise(x, i)
        x = a_next[i] * x0 + c_eps[i] * eps
        if sigma is not None:
            x = x + sigma[i] * noise_fn(i, x)
        if callback is not None:
            callback(i, x0, x)
    return x0, x


def sample_ddpm(
    denoise: Denoiser,
    x: torch.Tensor,
    grid: SamplingGrid,
    *,
    noise_fn: NoiseFn | None = None,
    callback: Callback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DDPM = DDIM with η = 1 (Stable Cascade's default sampler)."""
    return sample_ddim(denoise, x, grid, eta=1.0, noise_fn=noise_fn, callback=callback)


def sample_dpmpp_2m(
    denoise: Denoiser,
    x: torch.Tensor,
    grid: SamplingGrid,
    *,
    noise_fn: NoiseFn | None = None,
    callback: Callback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DPM-Solver++(2M): second-order multistep ODE solver in (half-)logSNR / x0 form.

    With h = (λ' − λ)/2: x ← (b'/b)·x − a'·expm1(−h)·D, where D = x0 for the first step and
    D = (1 + 1/2ρ)·x0 − (1/2ρ)·x0_prev, ρ = h_prev/h, afterwards. Deterministic.
    """
    h = (grid.log_snr[1:] - grid.log_snr[:-1]) / 2
    c_x = (grid.b[1:] / grid.b[:-1]).unbind(0)
    c_d = (-grid.a[1:] * torch.expm1(-h)).unbind(0)
    # 1/(2ρ) = h / (2·h_prev); a zero-length previous step (clamped ends) falls back to 1st order.
    h_prev = torch.cat([h.new_zeros(1), h[:-1]])
    w_old = torch.where(h_prev != 0, h / (2 * h_prev.where(h_prev != 0, 1.0)), 0.0)
    w_new, w_old = (1 + w_old).unbind(0), w_old.unbind(0)
    x0 = x0_prev = x
    for i in range(grid.steps):
        x0, eps = denoise(x, i)
        d = x0 if i == 0 else w_new[i] * x0 - w_old[i] * x0_prev
        x = c_x[i] * x + c_d[i] * d
        x0_prev = x0
        if callback is not None:
            callback(i, x0, x)
    return x0, x


SAMPLERS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpmpp-2m": sample_dpmpp_2m,
}


def _cpu_noise(generator: torch.Generator | None) -> NoiseFn:
    """N(0, I) drawn in float32 on the CPU (one reused buffer), then moved to x's device/dtype."""
    buffer: list[torch.Tensor] = []

    def noise(step: int, like: torch.Tensor) -> torch.Tensor:
        if not buffer or buffer[0].shape != like.shape:
            buffer[:] = [torch.empty(like.shape, dtype=torch.float32)]
        z = torch.randn(like.shape, generator=generator, out=buffer[0])
        # On a float32 CPU run this is the buffer itself: the caller uses it before the next draw.
        return z.to(device=like.device, dtype=like.dtype)

    return noise


def sample(
    model: Model,
    x_init: torch.Tensor | tuple[int, ...] | torch.Size,
    gdf: GDF,
    *,
    steps: int,
    sampler: Literal["ddpm", "ddim", "dpmpp-2m"] = "ddpm",
    eta: float | None = None,
    t_start: float = 1.0,
    t_end: float = 0.0,
    shift: float = 1.0,
    cfg: float | None = None,
    cfg_rho: float = 0.7,
    generator: torch.Generator | None = None,
    noise_fn: NoiseFn | None = None,
    callback: Callback | None = None,
    output: Literal["x0", "x"] = "x0",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Run `steps` sampler steps from t_start to t_end and return the result.

    `x_init` is the starting noise, or a shape to draw it from `generator` (on the CPU, then
    moved to `device`). With `cfg` set, `model` is called ONCE per step on the doubled batch
    ([x; x], [r; r]) and must return [cond; uncond] predictions: bind the doubled conditioning
    inside `model` (see `guidance.cfg_batch`). `noise_fn(step, like)` overrides the sampler's
    noise (to inject recorded noises); otherwise it comes from `generator` (global RNG if None).

    Returns, like the reference (`output="x0"`), the **x0 estimate of the last step**, i.e. the
    prediction made at t_{T−1}; the last update to t_end is computed but not returned. Use
    `output="x"` for the final x instead (the natural output of DPM-Solver++ or of a partial run
    with t_end > 0).
    """
    if sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if eta is not None and sampler != "ddim":
        raise UsageError(f"eta applies to the ddim sampler only, not {sampler!r}")
    if eta is not None and eta < 0:
        raise UsageError(f"eta must be >= 0, got {eta}")
    if output not in ("x0", "x"):
        raise UsageError(f"output must be 'x0' or 'x', got {output!r}")
    if isinstance(x_init, torch.Tensor):
        x = x_init
    else:
        x = torch.randn(tuple(x_init), generator=generator).to(device)
    grid = SamplingGrid.build(gdf, steps, t_start=t_start, t_end=t_end, shift=shift, device=x.device)
    denoise = make_denoiser(model, gdf, grid, x.shape[0], cfg=cfg, cfg_rho=cfg_rho)
    kwargs = {"noise_fn": noise_fn or _cpu_noise(generator), "callback": callback}
    if sampler == "ddim":
        kwargs["eta"] = 0.0 if eta is None else eta
    with torch.no_grad():
        x0, x = SAMPLERS[sampler](denoise, x, grid, **kwargs)
    return x0 if output == "x0" else x


def make_denoiser(
    model: Model, gdf: GDF, grid: SamplingGrid, batch: int, *, cfg: float | None = None, cfg_rho: float = 0.7
) -> Denoiser:
    """Wrap the network as `denoise(x, i) -> (x0, eps)` at grid point i, with CFG on a doubled batch.

    Public so custom loops (teacher forcing, partial decodes) reuse exactly the driver's math.
    """
    n = batch if cfg is None else 2 * batch
    r = grid.r[:-1, None].expand(-1, n).unbind(0)  # views made once, not per step
    a, b = grid.a.unbind(0), grid.b.unbind(0)
    target = gdf.target

    def denoise(x: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if cfg is None:
            pred = model(x, r[i])
        else:
            cond, uncond = model(torch.cat([x, x]), r[i]).chunk(2)
            pred = cfg_combine(cond, uncond, cfg, cfg_rho)
        return target.x0(x, pred, a[i], b[i]), target.eps(x, pred, a[i], b[i])

    return denoise
