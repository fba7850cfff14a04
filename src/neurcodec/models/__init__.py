"""The three Stable Cascade stages as pure `nn.Module`s (no I/O), config-driven.

`StageA` (VQGAN f4), `EfficientNetEncoder` (the conditioning encoder) and `StageB` (the
diffusion U-Net). `neurcodec.models.configs` holds the named official, fixture and tiny configs.
"""

from neurcodec.models.effnet import (
    EfficientNetEncoder,
    EffNetStage,
    effnet_input_size,
    effnet_preprocess,
    effnet_resize,
)
from neurcodec.models.stage_a import StageA
from neurcodec.models.stage_b import StageB, StageBConditions

__all__ = [
    "EfficientNetEncoder",
    "EffNetStage",
    "StageA",
    "StageB",
    "StageBConditions",
    "effnet_input_size",
    "effnet_preprocess",
    "effnet_resize",
]
