"""Training: configs (`config`), data (`data`), per-step random draws (`draws`), the models'
training forward passes (`model`), processes (`distributed`) and the loop (`loop`). The loss
terms are `neurcodec.losses`, shared with the latent search."""

from neurcodec.train.config import CONFIG_DIR, PhaseConfig, TrainConfig, iter_config_names
from neurcodec.train.data import CropDataset, GlobalBatches, find_images, load_images
from neurcodec.train.distributed import World, init_world
from neurcodec.train.draws import Draws
from neurcodec.train.loop import Trainer, lr_at
from neurcodec.train.model import JointModel, quantize_for_training

__all__ = [
    "CONFIG_DIR",
    "CropDataset",
    "Draws",
    "GlobalBatches",
    "JointModel",
    "PhaseConfig",
    "TrainConfig",
    "Trainer",
    "World",
    "find_images",
    "init_world",
    "iter_config_names",
    "load_images",
    "lr_at",
    "quantize_for_training",
]
