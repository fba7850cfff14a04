"""Building a family's modules and loading their weights: strictly, from `meta`.

Modules are built on the `meta` device and weights assigned in place, so a 1.5 B stage B is
never allocated twice; every key, shape and dtype is checked against the module before a byte
is trusted, and a cut-short file is named with the first tensor past its end.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurcodec.errors import WeightsError
from neurcodec.contracts import EncoderContract, StageAContract, StageBContract
from neurcodec.zoo.hub import (
    bundled_path,
    cached_hub_path,
    check_file,
    clip_cache_path,
    first_line,
    how_to_get,
    hub_download,
    read_clip_cache,
)
from neurcodec.zoo.registry import ComponentSpec, FamilySpec, FileSpec, default_family, spec_of

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class LoadedModels:
    """A family's three modules (each an nn.Module meeting its stage's contract), its
    unconditional CLIP embedding, spec and weights digest."""

    stage_a: StageAContract
    encoder: EncoderContract
    stage_b: StageBContract
    clip_uncond: torch.Tensor
    family: FamilySpec
    digest: bytes

    def __post_init__(self) -> None:
        for name, contract in (("stage_a", StageAContract), ("encoder", EncoderContract), ("stage_b", StageBContract)):
            if not isinstance(getattr(self, name), contract):
                raise WeightsError(f"model {self.family.name!r}: its {name} does not meet {contract.__name__} (neurcodec.contracts)")


def build_component(comp: ComponentSpec, device: str | torch.device = "meta") -> nn.Module:
    """Instantiate one module from its config; under `meta` this allocates nothing."""
    import torch

    from neurcodec.models.configs import config_from_dict

    try:
        config = config_from_dict(dict(comp.config))
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"bad {comp.name} config in the registry: {exc}") from None
    with torch.device(device):
        return config.build()


def weights_digest(family: str | FamilySpec) -> bytes:
    """A short stable id of a family's weights: 4 bytes of sha256 over files and configs.

    Uses recorded hashes (not file contents) so it costs nothing at load time; files without
    a recorded sha256 are identified by repo, name, revision and size."""
    spec = spec_of(family)
    ident = {
        "family": spec.name,
        "files": {
            fid: [f.repo, f.filename, f.path, f.revision, f.size, f.sha256]
            for fid, f in sorted(spec.files.items())
        },
        "components": {
            c.name: [c.file, c.prefix, c.architecture or c.config]
            for c in sorted(spec.components.values(), key=lambda c: c.name)
        },
        "clip": [spec.clip.repo, spec.clip.revision, spec.clip.key, spec.clip.dim],
    }
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).digest()[:4]


@functools.lru_cache(maxsize=32)
def _numels(config_json: str) -> tuple[int, int]:
    """(parameters, state_dict elements) of one module config, counted on `meta`."""
    comp = ComponentSpec(name="", config=json.loads(config_json), file="")
    module = build_component(comp, "meta")
    return (
        sum(p.numel() for p in module.parameters()),
        sum(t.numel() for t in module.state_dict().values()),
    )


def _component_numels(comp: ComponentSpec) -> tuple[int, int]:
    return _numels(json.dumps(comp.config, sort_keys=True))


def parameter_count(family: str | FamilySpec) -> int | None:
    """Parameters of all three modules, counted on `meta` (instant); None if models are absent."""
    spec = spec_of(family)
    try:
        return sum(_component_numels(comp)[0] for comp in spec.components.values())
    except ImportError:
        return None


def _safetensors_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(data start offset, header) of a safetensors file, read without trusting sizes blindly."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise ValueError("shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, 100 << 20):
            raise ValueError(f"header length {n} exceeds the file")
        header = json.loads(fh.read(n))
    return 8 + n, header


def diagnose(path: Path, label: str, exc: BaseException) -> WeightsError:
    """Name the file and, when the file is cut short, the first tensor past its end."""
    try:
        start, header = _safetensors_header(path)
    except Exception as hexc:  # noqa: BLE001 - the header itself is unreadable
        return WeightsError(f"{label} ({path}) is corrupt: {first_line(hexc)}")
    size = path.stat().st_size
    cut = sorted(
        (info["data_offsets"][1], key)
        for key, info in header.items()
        if key != "__metadata__" and start + info["data_offsets"][1] > size
    )
    if cut:
        end, key = cut[0]
        more = f" and {len(cut) - 1} more" if len(cut) > 1 else ""
        return WeightsError(
            f"{label} ({path}) is truncated at {size} bytes: tensor {key!r}{more} lies past "
            "the end; delete it and fetch it again"
        )
    return WeightsError(f"{label} ({path}) is corrupt: {first_line(exc)}")


def _read_state(
    path: Path,
    label: str,
    modules: Mapping[str, tuple[str, nn.Module]],
    extra_keys: Iterable[str],
    *,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, dict[str, torch.Tensor]]:
    """Read the tensors of one file for the modules it feeds, checking keys and shapes first.

    `modules` maps a component name to (key prefix, module built on meta). Only a missing
    `num_batches_tracked` is tolerated (it has no value worth storing); it is filled with 0."""
    import torch

    from safetensors import safe_open

    try:
        fh_ctx = safe_open(str(path), framework="pt", device="cpu")
        fh = fh_ctx.__enter__()
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise diagnose(path, label, exc) from None
    try:
        file_keys = set(fh.keys())
        claimed: set[str] = set(extra_keys) & file_keys
        out: dict[str, dict[str, torch.Tensor]] = {}
        for cname, (prefix, module) in modules.items():
            expected = module.state_dict()
            mine = {k[len(prefix) :]: k for k in file_keys if k.startswith(prefix)}
            unexpected = sorted(set(mine) - set(expected))
            if unexpected:
                more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
                raise WeightsError(
                    f"{label}: unexpected key {mine[unexpected[0]]!r}{more} for "
                    f"{type(module).__name__}"
                )
            missing = sorted(
                k for k in set(expected) - set(mine) if not k.endswith("num_batches_tracked")
            )
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise WeightsError(
                    f"{label}: missing key {prefix + missing[0]!r}{more} for {type(module).__name__}"
                )
            state: dict[str, torch.Tensor] = {}
            for key, ref in expected.items():
                if key not in mine:  # a num_batches_tracked the file left out
                    state[key] = torch.zeros((), dtype=ref.dtype, device=device)
                    continue
                file_key = mine[key]
                shape = list(fh.get_slice(file_key).get_shape())
                if shape != list(ref.shape):
                    raise WeightsError(
                        f"{label}: key {file_key!r} has shape {shape}, "
                        f"{type(module).__name__} expects {list(ref.shape)}"
                    )
                try:
                    tensor = fh.get_tensor(file_key)
                except Exception as exc:  # noqa: BLE001
                    raise diagnose(path, label, exc) from None
                target = dtype if ref.dtype.is_floating_point else ref.dtype
                if tensor.dtype.is_floating_point != ref.dtype.is_floating_point:
                    raise WeightsError(
                        f"{label}: key {file_key!r} has dtype {tensor.dtype}, expected {ref.dtype}"
                    )
                state[key] = tensor.to(device=device, dtype=target)
            claimed |= set(mine.values())
            out[cname] = state
        stray = sorted(file_keys - claimed)
        if stray:
            raise WeightsError(f"{label}: unexpected key {stray[0]!r} (belongs to no module)")
        return out
    finally:
        fh_ctx.__exit__(None, None, None)


def _assert_materialized(module: nn.Module, label: str) -> None:
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if t.is_meta:
            raise WeightsError(f"{label}: {name!r} was not set by the weights file")


def _resolve_file(spec: FamilySpec, file: FileSpec) -> Path:
    if file.bundled:
        path = bundled_path(file)
        if not path.is_file():
            raise WeightsError(how_to_get(spec))
        # Bundled files are small: checking the hash at every load is cheap insurance.
        check_file(file, path, hash_it=True)
        return path
    path = hub_download(spec, file.repo, file.filename, file.revision)  # type: ignore[arg-type]
    check_file(file, path, hash_it=False)  # sha256 is checked at pull time
    return path


def load_models(
    family: str | FamilySpec | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    pretrained: bool = True,
    allow_zero_clip: bool = False,
) -> LoadedModels:
    """Build a family's three modules (eval mode) and, if `pretrained`, load their weights.

    Modules are built on `meta` and weights assigned in place, so a 1.5 B stage B is never
    allocated twice; float tensors are cast to `dtype` (default float32) as they are read.
    """
    import torch

    spec = spec_of(family if family is not None else default_family())
    device = torch.device(device)
    dtype = dtype or torch.float32
    digest = weights_digest(spec)

    if not pretrained:
        modules = {}
        for cname, comp in spec.components.items():
            module = build_component(comp, device)
            modules[cname] = module.to(dtype=dtype).eval()
        clip = torch.zeros(1, 1, spec.clip.dim, device=device, dtype=dtype)
        return LoadedModels(**modules, clip_uncond=clip, family=spec, digest=digest)

    # The CLIP vector first: failing here must not wait for gigabytes of downloads.
    clip_vec: torch.Tensor | None = None
    if spec.clip.from_text_encoder:
        # The opt-in covers an absent vector only; a stale or broken one is still an error.
        if not (allow_zero_clip and not clip_cache_path(spec).is_file()):
            clip_vec = read_clip_cache(spec)

    metas = {cname: build_component(comp, "meta") for cname, comp in spec.components.items()}
    loaded: dict[str, nn.Module] = {}
    for fid, file in spec.files.items():
        users = {c.name: (c.prefix, metas[c.name]) for c in spec.components.values() if c.file == fid}
        clip_keys = [spec.clip.key] if spec.clip.file == fid and spec.clip.key else []
        if not users and not clip_keys:
            continue
        path = _resolve_file(spec, file)
        if file.bundled:
            from neurcodec.zoo.bundle import check_bundle_configs

            check_bundle_configs(spec, fid, path)
        states = _read_state(path, file.label, users, clip_keys, device=device, dtype=dtype)
        for cname, state in states.items():
            module = metas[cname]
            module.load_state_dict(state, strict=True, assign=True)
            _assert_materialized(module, file.label)
            loaded[cname] = module.eval()
        if clip_keys:
            clip_vec = _read_bundled_clip(path, file.label, spec.clip.key)  # type: ignore[arg-type]

    if clip_vec is None:
        if not allow_zero_clip:
            raise WeightsError(f"model {spec.name!r} has no empty-caption CLIP vector")
        clip_vec = torch.zeros(spec.clip.dim)
    if clip_vec.numel() != spec.clip.dim:
        raise WeightsError(
            f"model {spec.name!r}: CLIP vector has {clip_vec.numel()} values, expected {spec.clip.dim}"
        )
    clip = clip_vec.reshape(1, 1, spec.clip.dim).to(device=device, dtype=dtype)
    return LoadedModels(**loaded, clip_uncond=clip, family=spec, digest=digest)


def _read_bundled_clip(path: Path, label: str, key: str) -> torch.Tensor:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            if key not in fh.keys():
                raise WeightsError(f"{label}: missing key {key!r} (the empty-caption CLIP vector)")
            return fh.get_tensor(key).float()
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise diagnose(path, label, exc) from None


def file_sizes(family: str | FamilySpec) -> tuple[int | None, bool]:
    """(total bytes, exact?) of a family's files: recorded or on disk, else estimated."""
    spec = spec_of(family)
    total, exact = 0, True
    for file in spec.files.values():
        path = bundled_path(file) if file.bundled else cached_hub_path(file)
        if file.size is not None:
            total += file.size
        elif path is not None and path.is_file():
            total += path.stat().st_size
        else:
            exact = False
    if exact:
        return total, True
    params = _params_by_file(spec)
    if params is None:
        return None, False
    bytes_per = {"bfloat16": 2, "float16": 2}
    est = sum(n * bytes_per.get(spec.files[fid].dtype or "float32", 4) for fid, n in params.items())
    return est, False


def _params_by_file(spec: FamilySpec) -> dict[str, int] | None:
    try:
        counts: dict[str, int] = {}
        for comp in spec.components.values():
            counts[comp.file] = counts.get(comp.file, 0) + _component_numels(comp)[1]
        return counts
    except ImportError:
        return None

