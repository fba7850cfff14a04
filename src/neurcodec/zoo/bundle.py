"""The bundled model: `neurcodec train --export` writes one safetensors file whose metadata
describes it; `record_bundle` enters it in the registry (`weights.json`) and its training
record in the training history (`docs/training.json`), the registry's sidecar.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurcodec import fileio
from neurcodec.errors import WeightsError
from neurcodec.zoo.hub import sha256_of
from neurcodec.zoo.load import diagnose
from neurcodec.zoo.registry import COMPONENTS, FamilySpec, format_registry, registry_path

BUNDLE_META_KEY = "neurcodec"


def bundle_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON description `neurcodec train` stores in an exported file (None if absent)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(BUNDLE_META_KEY)
    except Exception as exc:  # noqa: BLE001
        raise diagnose(path, path.name, exc) from None
    return json.loads(raw) if raw else None


def _normalized(config: Mapping[str, Any]) -> dict[str, Any]:
    from neurcodec.models.configs import config_from_dict

    return json.loads(json.dumps(config_from_dict(dict(config)).to_dict()))


def check_bundle_configs(spec: FamilySpec, fid: str, path: Path) -> None:
    """Refuse a bundle trained with other configs than the registry records: values such as the
    learned stage A scale are not tensors, so the key/shape checks alone would not notice."""
    meta = bundle_metadata(path)
    if not meta:
        return
    for comp in spec.components.values():
        if comp.file != fid or comp.name not in meta:
            continue
        have, want = _normalized(meta[comp.name]), _normalized(comp.config)
        if have != want:
            field_name = next(k for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k))
            raise WeightsError(
                f"{path.name} was trained with {comp.name} {field_name}={have.get(field_name)!r} "
                f"but the registry records {want.get(field_name)!r}; update it with "
                "neurcodec.zoo.record_bundle()"
            )



def training_history_path(registry: Path) -> Path:
    """The registry's sidecar: how each bundled model was trained (read by people, not the loader)."""
    return registry.parent / "docs" / "training.json"


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.atomic_write(path, format_registry(data).encode("utf-8"))


def record_bundle(
    bundle: str | os.PathLike[str],
    *,
    family: str = "tiny",
    registry: str | os.PathLike[str] | None = None,
    history: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Enter an exported bundle in the registry (configs, size, sha256, dtype) and its training
    record in the training history; returns the new registry entry.

    Defaults: the registry in use (a checkout's `weights.json`) and `docs/training.json` beside it.
    """
    bundle = Path(bundle)
    meta = bundle_metadata(bundle)
    if not meta:
        raise WeightsError(f"{bundle} carries no '{BUNDLE_META_KEY}' metadata; export it with neurcodec train")
    from safetensors import safe_open

    with safe_open(str(bundle), framework="pt") as fh:
        dtypes = {str(fh.get_slice(k).get_dtype()) for k in fh.keys()}
    float_dtype = next((d for d in ("F16", "BF16", "F32") if d in dtypes), "F32")

    registry = Path(registry) if registry is not None else registry_path()
    history = Path(history) if history is not None else training_history_path(registry)
    data = json.loads(registry.read_text(encoding="utf-8"))
    entry = data["families"][family]
    for name in COMPONENTS:
        if name in meta:
            entry["components"][name]["config"] = _normalized(meta[name])
    bundle_file = entry["components"]["stage_a"]["file"]
    entry["files"][bundle_file].update(
        size=bundle.stat().st_size,
        sha256=sha256_of(bundle),
        dtype={"F16": "float16", "BF16": "bfloat16", "F32": "float32"}[float_dtype],
    )
    if "stage_b" in meta:
        entry["clip"]["dim"] = int(meta["stage_b"].get("c_clip", entry["clip"]["dim"]))
    if "effnet_factor" in meta:
        entry["effnet_factor"] = meta["effnet_factor"]
    if meta.get("diffusion"):
        entry["diffusion"] = f"{meta['diffusion']['target']}_{meta['diffusion']['loss_weight']}"
    FamilySpec.from_dict(family, entry)  # refuse to write an entry the loader cannot read

    records = json.loads(history.read_text(encoding="utf-8")) if history.is_file() else {}
    previous = records.get(family) or {}
    training = dict(meta.get("training") or {})
    record = {
        **previous,
        "command": training.pop("command", None),
        "data": training.pop("data", previous.get("data")),
        "steps": {"stage_a": training.pop("stage_a_steps", None), "joint": training.pop("joint_steps", None)},
        "wall_time_s": training.pop("train_seconds", None),
        "diffusion": meta.get("diffusion"),
        **training,
    }
    record.pop("notes", None)  # they told the previous export's story
    records[family] = record
    _write_json(registry, data)
    _write_json(history, records)
    return entry
