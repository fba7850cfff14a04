"""The fixture weight recipe of `shared/reference/FIXTURES.md`, as a test helper.

Every tensor is drawn from a generator seeded with the CRC32 of its key, so the values do not
depend on construction order. Used for parity tests against the official-size fixtures and to
write fake official checkpoints (cast the result to bf16 for the `_bf16` files).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "manifest_entries",
    "recipe_checksum_mismatches",
    "recipe_state_dict",
    "recipe_tensor",
]

KeyShapeDtype = tuple[str, Sequence[int], "torch.dtype | str"]


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, str(dtype).removeprefix("torch."))


def recipe_tensor(key: str, shape: Sequence[int], dtype: torch.dtype | str = torch.float32) -> Tensor:
    """One recipe tensor (generated in float32, then cast to `dtype`)."""
    dtype = _as_dtype(dtype)
    shape = tuple(int(s) for s in shape)
    if not dtype.is_floating_point:  # num_batches_tracked
        return torch.zeros(shape, dtype=dtype)
    g = torch.Generator(device="cpu").manual_seed(zlib.crc32(key.encode("utf-8")))
    if key.endswith("running_var"):
        value = 0.5 + torch.rand(shape, generator=g)
    elif key.endswith("running_mean"):
        value = 0.1 * torch.randn(shape, generator=g)
    elif len(shape) >= 2:
        value = torch.randn(shape, generator=g) * (1 / math.sqrt(math.prod(shape[1:])))
    elif key.endswith(".weight"):
        value = 1.0 + 0.1 * torch.randn(shape, generator=g)
    else:
        value = 0.1 * torch.randn(shape, generator=g)
    return value.to(dtype)


def recipe_state_dict(keys_shapes_dtypes: Iterable[KeyShapeDtype] | Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Recipe tensors for `(key, shape, dtype)` triples, or for every entry of a state_dict
    (e.g. `model.state_dict()` of a model built on the meta device)."""
    if isinstance(keys_shapes_dtypes, Mapping):
        items: Iterable[KeyShapeDtype] = ((k, v.shape, v.dtype) for k, v in keys_shapes_dtypes.items())
    else:
        items = keys_shapes_dtypes
    return {key: recipe_tensor(key, shape, dtype) for key, shape, dtype in items}


def manifest_entries(path: str | Path) -> list[tuple[str, list[int], str]]:
    """`(key, shape, dtype)` triples of a `shared/reference/manifest_*.json` file."""
    data = json.loads(Path(path).read_text())
    return [(e["key"], e["shape"], e["dtype"]) for e in data["keys"]]


def recipe_checksum_mismatches(state_dict: Mapping[str, Tensor], recipe: Mapping[str, dict],
                               rel: float = 1e-6) -> list[str]:
    """Compare tensors with a `*_weights_recipe.json` table (sum, abs_sum, first4, shape);
    returns one line per problem, empty when everything agrees."""
    problems = []
    if set(state_dict) != set(recipe):
        problems.append(f"key sets differ: {sorted(set(state_dict) ^ set(recipe))[:5]}")
    for key in sorted(set(state_dict) & set(recipe)):
        t, ref = state_dict[key].double(), recipe[key]
        if list(t.shape) != list(ref["shape"]):
            problems.append(f"{key}: shape {list(t.shape)} != {ref['shape']}")
            continue
        for name, got in (("sum", t.sum().item()), ("abs_sum", t.abs().sum().item())):
            want = ref[name]
            if abs(got - want) > rel * max(abs(want), 1e-12) and abs(got - want) > 1e-12:
                problems.append(f"{key}: {name} {got!r} != {want!r}")
        first = t.flatten()[:4].tolist()
        if not all(math.isclose(a, b, rel_tol=rel, abs_tol=1e-12) for a, b in zip(first, ref["first4"], strict=True)):
            problems.append(f"{key}: first4 {first} != {ref['first4']}")
    return problems
