"""The registry: which files and module configs make up each model family.

One file, the repository's top-level `weights.json`, is the single source of truth; a wheel
carries it as `neurcodec/zoo/weights.json` (setup.py copies it at build time), a checkout reads
it in place. It holds data the loader needs only: files (bundled in the package or on the
Hugging Face Hub, with size and sha256 where known), module configs (a dict, or the name of an
official architecture in `neurcodec.models.configs.NAMED_CONFIGS`), licence, decode defaults.
How each bundled model was trained lives beside it, in `docs/training.json`.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurcodec.bitstream.container import DecodeSettings
from neurcodec.errors import WeightsError

# Component name -> the config `kind` of `neurcodec.models.configs` it must hold.
COMPONENTS = {"stage_a": ("stage_a", "taesd"), "encoder": ("effnet",), "stage_b": ("stage_b",)}
REGISTRY_NAME = "weights.json"


@dataclass(frozen=True)
class FileSpec:
    """One weights file: bundled (`path`, relative to the package or absolute) or on the Hub."""

    id: str
    repo: str | None = None
    filename: str | None = None
    revision: str | None = None
    path: str | None = None
    size: int | None = None
    sha256: str | None = None
    dtype: str | None = None

    @property
    def bundled(self) -> bool:
        return self.path is not None

    @property
    def label(self) -> str:
        """How the file is named in messages."""
        if self.bundled:
            return str(self.path)
        return f"{self.repo}/{self.filename}"


@dataclass(frozen=True)
class ComponentSpec:
    """One module of a family: its config (`neurcodec.models.configs` dict form, with `kind`)
    and where its tensors are (a file id, and the key prefix inside that file)."""

    name: str
    config: dict[str, Any] = field(hash=False)
    file: str
    prefix: str = ""
    architecture: str | None = None  # the NAMED_CONFIGS name the config came from, if any


@dataclass(frozen=True)
class ClipSpec:
    """Where the unconditional CLIP vector comes from: a key in a bundled file, or a text encoder."""

    dim: int
    file: str | None = None
    key: str | None = None
    repo: str | None = None
    revision: str | None = None
    text_encoder: str = "text_encoder"
    text_encoder_weights: tuple[str, ...] = ("model.safetensors",)
    tokenizer: str = "tokenizer"
    tokenizer_files: tuple[str, ...] = ("vocab.json", "merges.txt")
    tokenizer_optional_files: tuple[str, ...] = ()

    @property
    def from_text_encoder(self) -> bool:
        return self.repo is not None


@dataclass(frozen=True)
class FamilySpec:
    """A model family: everything needed to build, fetch and load it."""

    name: str
    description: str
    licence: str
    licence_url: str | None
    licence_note: str | None
    files: dict[str, FileSpec] = field(hash=False)
    components: dict[str, ComponentSpec] = field(hash=False)
    clip: ClipSpec
    decode: DecodeSettings  # the family's decode defaults (a file's own, when stored, win)
    # The GDF recipe the stage B was trained with (its target decides how to read predictions).
    diffusion: str = "eps_p2"
    default_quality: int = 50  # `-q` when neither -q nor --bpp is given (chosen by measurement)
    # Stage B autocast by default on CPUs with native bf16 and on CUDA ("bfloat16"), or None:
    # measured per model (benchmarks/speed.py), since bf16 speeds some models up and slows others.
    autocast: str | None = None
    # The encoder's input scale (the reference resizes 1024² to 768² before the EfficientNet).
    effnet_factor: float = 0.75

    @property
    def bundled(self) -> bool:
        return all(f.bundled for f in self.files.values())

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> FamilySpec:
        try:
            files = {fid: FileSpec(id=fid, **spec) for fid, spec in data["files"].items()}
            components = {
                cname: ComponentSpec(
                    name=cname,
                    config=_resolve_config(cname, c["config"]),
                    architecture=c["config"] if isinstance(c["config"], str) else None,
                    file=c["file"],
                    prefix=c.get("prefix", ""),
                )
                for cname, c in data["components"].items()
            }
            clip_data = {k: tuple(v) if isinstance(v, list) else v for k, v in data["clip"].items()}
            spec = cls(
                name=name,
                description=data.get("description", ""),
                licence=data["licence"],
                licence_url=data.get("licence_url"),
                licence_note=data.get("licence_note"),
                files=files,
                components=components,
                clip=ClipSpec(**clip_data),
                decode=DecodeSettings(**{"sampler": "ddpm", "steps": 10, "guidance": 1.1, "cfg_rescale": 0.7, **data.get("decode", {})}),
                diffusion=data.get("diffusion", "eps_p2"),
                default_quality=int(data.get("default_quality", 50)),
                autocast=data.get("autocast"),
                effnet_factor=float(data.get("effnet_factor", 0.75)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"registry entry {name!r} is malformed: {exc}") from None
        spec._validate()
        return spec

    def _validate(self) -> None:
        if set(self.components) != set(COMPONENTS):
            raise WeightsError(
                f"registry entry {self.name!r} must define components {', '.join(COMPONENTS)}"
            )
        for comp in self.components.values():
            if comp.config.get("kind") not in COMPONENTS[comp.name]:
                raise WeightsError(
                    f"registry entry {self.name!r}: {comp.name} config must have kind "
                    f"{' or '.join(map(repr, COMPONENTS[comp.name]))}, found {comp.config.get('kind')!r}"
                )
            if comp.file not in self.files:
                raise WeightsError(f"registry entry {self.name!r}: unknown file {comp.file!r}")
        if not self.clip.from_text_encoder and self.clip.file not in self.files:
            raise WeightsError(f"registry entry {self.name!r}: clip vector has no source")


def _resolve_config(component: str, config: Any) -> dict[str, Any]:
    """A component's config dict; a string names an official architecture (written once, in
    `neurcodec.models.configs.NAMED_CONFIGS`)."""
    if not isinstance(config, str):
        return dict(config)
    from neurcodec.models.configs import NAMED_CONFIGS

    if config not in NAMED_CONFIGS:
        raise WeightsError(f"{component}: unknown architecture {config!r} (known: {', '.join(NAMED_CONFIGS)})")
    return NAMED_CONFIGS[config].to_dict()


def registry_path() -> Path:
    """The registry in use: the copy inside an installed wheel, else the checkout's weights.json."""
    packaged = Path(str(importlib.resources.files("neurcodec.zoo") / REGISTRY_NAME))
    if packaged.is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / REGISTRY_NAME
    if checkout.is_file():
        return checkout
    raise WeightsError(f"the model registry is missing: neither {packaged} nor {checkout} exists (a broken install?)")


@functools.lru_cache(maxsize=8)
def _parse(path: str, mtime_ns: int) -> tuple[str, dict[str, FamilySpec]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        families = {name: FamilySpec.from_dict(name, fam) for name, fam in data["families"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"cannot read the model registry {path}: {exc}") from None
    return data.get("default", next(iter(families))), families


def _read(path: str | os.PathLike[str] | None) -> tuple[str, dict[str, FamilySpec]]:
    """(default family, families) of a registry file, parsed once per version of the file."""
    path = Path(path) if path is not None else registry_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise WeightsError(f"cannot read the model registry {path}: {exc}") from None
    return _parse(str(path), mtime)


def load_registry(path: str | os.PathLike[str] | None = None) -> dict[str, FamilySpec]:
    """Parse a registry file (default: the one in use) into family specs, in file order."""
    return dict(_read(path)[1])


def default_family(registry: str | os.PathLike[str] | None = None) -> str:
    return _read(registry)[0]


def list_families(registry: str | os.PathLike[str] | None = None) -> list[FamilySpec]:
    return list(_read(registry)[1].values())


def get_family(name: str, registry: str | os.PathLike[str] | None = None) -> FamilySpec:
    families = _read(registry)[1]
    if name not in families:
        raise WeightsError(f"unknown model {name!r}; known models: {', '.join(families)}")
    return families[name]


def spec_of(family: str | FamilySpec) -> FamilySpec:
    return family if isinstance(family, FamilySpec) else get_family(family)


def format_registry(data: Mapping[str, Any]) -> str:
    """weights.json's layout: indented, with lists of numbers kept on one line."""
    import re

    text = json.dumps(data, indent=2)
    return (
        re.sub(
            r"\[([^\[\]{}]*)\]",
            lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]"
            if m.group(1).strip()
            else "[]",
            text,
        )
        + "\n"
    )

