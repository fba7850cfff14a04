"""The diffusion core in the thesis' GDF vocabulary: five small parts, samplers, guidance."""

from neurcodec.diffusion.gdf import GDF, RECIPES, Diffused, GDFConfig, build_gdf, pyramid_noise
from neurcodec.diffusion.guidance import cfg_batch, cfg_combine
from neurcodec.diffusion.loss_weights import (
    AdaptiveLossWeight,
    ConstantLossWeight,
    MinSNRLossWeight,
    P2LossWeight,
    SechLossWeight,
)
from neurcodec.diffusion.noise_conditions import CosineTNoiseCond
from neurcodec.diffusion.samplers import (
    SAMPLERS,
    SamplingGrid,
    make_denoiser,
    sample,
    sample_ddim,
    sample_ddpm,
    sample_dpmpp_2m,
)
from neurcodec.diffusion.scalers import VPScaler
from neurcodec.diffusion.schedules import COSINE_LIMITS, CosineSchedule
from neurcodec.diffusion.targets import EpsilonTarget, VTarget, X0Target

__all__ = [
    "GDF",
    "GDFConfig",
    "RECIPES",
    "Diffused",
    "build_gdf",
    "pyramid_noise",
    "CosineSchedule",
    "COSINE_LIMITS",
    "VPScaler",
    "EpsilonTarget",
    "X0Target",
    "VTarget",
    "CosineTNoiseCond",
    "ConstantLossWeight",
    "P2LossWeight",
    "MinSNRLossWeight",
    "SechLossWeight",
    "AdaptiveLossWeight",
    "cfg_combine",
    "cfg_batch",
    "SamplingGrid",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "SAMPLERS",
    "make_denoiser",
]
