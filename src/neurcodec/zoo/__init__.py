"""The model zoo: which weights make up a model family, where they live, how to load them.

registry.py  the registry (`weights.json`): families, files, configs, decode defaults
hub.py       Hugging Face Hub: cache locations, `pull`, file checks, the CLIP vector
load.py      building modules on `meta` and loading their weights strictly
bundle.py    the model `neurcodec train --export` writes, and recording it in the registry
"""

from neurcodec.zoo.bundle import bundle_metadata, record_bundle, training_history_path
from neurcodec.zoo.hub import (
    CLIP_KEY,
    PullResult,
    Where,
    clip_cache_path,
    compute_clip_uncond,
    hf_home,
    hub_cache_dir,
    hub_offline,
    pull,
    where,
)
from neurcodec.zoo.load import LoadedModels, build_component, file_sizes, load_models, parameter_count, weights_digest
from neurcodec.zoo.registry import (
    COMPONENTS,
    ClipSpec,
    ComponentSpec,
    FamilySpec,
    FileSpec,
    default_family,
    format_registry,
    get_family,
    list_families,
    load_registry,
    registry_path,
)

__all__ = [
    "CLIP_KEY",
    "COMPONENTS",
    "ClipSpec",
    "ComponentSpec",
    "FamilySpec",
    "FileSpec",
    "LoadedModels",
    "PullResult",
    "Where",
    "build_component",
    "bundle_metadata",
    "clip_cache_path",
    "compute_clip_uncond",
    "default_family",
    "file_sizes",
    "format_registry",
    "get_family",
    "hf_home",
    "hub_cache_dir",
    "hub_offline",
    "list_families",
    "load_models",
    "load_registry",
    "parameter_count",
    "pull",
    "record_bundle",
    "registry_path",
    "training_history_path",
    "weights_digest",
    "where",
]
