"""The model registry: which weights make up a model family, where they live, how to load them.

Families are data (`weights.json`, shipped as `neurcodec/weights/registry.json`): module
classes + configs, files (bundled in the package or on the Hugging Face Hub) with size and
sha256 where known, the licence, decode defaults and, for the bundled model, how it was trained.

Hub files are fetched and cached by huggingface_hub (HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE
are read at call time, so a caller may change them after import). Stage B is conditioned on the
pooled CLIP embedding of the empty caption; `pull` computes that vector once from the repo's
text encoder and stores it beside the cache, so decoding never needs the text tower.

(The package-data folder `neurcodec/weights/` has no `__init__.py`; Python resolves
`neurcodec.weights` to this module, not to that folder.)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from neurcodec.errors import WeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn

Where = Literal["bundled", "cached", "remote", "missing"]

# Component name -> the config `kind` of `neurcodec.models.configs` it must hold.
COMPONENTS = {"stage_a": ("stage_a", "taesd"), "encoder": ("effnet",), "stage_b": ("stage_b",)}
CLIP_FILENAME = "clip_uncond.safetensors"
CLIP_KEY = "clip_uncond"


# --------------------------------------------------------------------------------------------
# Registry data


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
class DecodeDefaults:
    sampler: str = "ddpm"
    steps: int = 10
    guidance: float = 1.1
    cfg_rescale: float = 0.7
    effnet_input_factor: float = 0.75


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
    decode: DecodeDefaults
    training: dict[str, Any] | None = field(default=None, hash=False)
    # The GDF recipe the stage B was trained with (its target decides how to read predictions).
    diffusion: str = "eps_p2"
    default_quality: int = 50  # `-q` when neither -q nor --bpp is given (chosen by measurement)
    # Stage B autocast by default on CPUs with native bf16 and on CUDA ("bfloat16"), or None:
    # measured per model (benchmarks/speed.py), since bf16 speeds some models up and slows others.
    autocast: str | None = None

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
                    config=dict(c["config"]),
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
                decode=DecodeDefaults(**data.get("decode", {})),
                training=data.get("training"),
                diffusion=data.get("diffusion", "eps_p2"),
                default_quality=int(data.get("default_quality", 50)),
                autocast=data.get("autocast"),
            )
        except (KeyError, TypeError) as exc:
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


def registry_path() -> Path:
    """The registry shipped with the package (a copy of the repository's `weights.json`)."""
    return Path(str(importlib.resources.files("neurcodec") / "weights" / "registry.json"))


def load_registry(path: str | os.PathLike[str] | None = None) -> dict[str, FamilySpec]:
    """Parse a registry file (default: the packaged one) into family specs, in file order."""
    path = Path(path) if path is not None else registry_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read the model registry {path}: {exc}") from None
    return {name: FamilySpec.from_dict(name, fam) for name, fam in data["families"].items()}


def default_family() -> str:
    return json.loads(registry_path().read_text(encoding="utf-8")).get("default", "tiny")


def list_families(registry: str | os.PathLike[str] | None = None) -> list[FamilySpec]:
    return list(load_registry(registry).values())


def get_family(name: str, registry: str | os.PathLike[str] | None = None) -> FamilySpec:
    families = load_registry(registry)
    if name not in families:
        raise WeightsError(f"unknown model {name!r}; known models: {', '.join(families)}")
    return families[name]


def _spec(family: str | FamilySpec) -> FamilySpec:
    return family if isinstance(family, FamilySpec) else get_family(family)


# --------------------------------------------------------------------------------------------
# Locations (read from the environment at call time)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    from huggingface_hub import constants

    return _env_flag("HF_HUB_OFFLINE") or bool(constants.HF_HUB_OFFLINE)


def hf_home() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HOME") or constants.HF_HOME).expanduser()


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("HF_HOME"):
        return hf_home() / "hub"
    return Path(constants.HF_HUB_CACHE).expanduser()


def clip_cache_path(family: str | FamilySpec) -> Path:
    """Where `pull` stores the empty-caption CLIP vector of a Hub family."""
    return hf_home() / "neurcodec" / _spec(family).name / CLIP_FILENAME


def _bundled_path(file: FileSpec) -> Path:
    path = Path(file.path)  # type: ignore[arg-type]
    if path.is_absolute():
        return path
    return Path(str(importlib.resources.files("neurcodec"))) / path


def _cached_hub_path(file: FileSpec) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        file.repo, file.filename, cache_dir=hub_cache_dir(), revision=file.revision
    )
    return Path(found) if isinstance(found, str) else None


def where(family: str | FamilySpec) -> Where:
    """`bundled` (in the package), `cached` (all files in the Hub cache), `remote`, or
    `missing` (a bundled model that is not in this build). Never touches the network."""
    spec = _spec(family)
    if spec.bundled:
        ok = all(_bundled_path(f).is_file() for f in spec.files.values())
        return "bundled" if ok else "missing"
    ok = all(_cached_hub_path(f) is not None for f in spec.files.values() if not f.bundled)
    return "cached" if ok else "remote"


def _how_to_get(spec: FamilySpec) -> str:
    if spec.bundled:
        return (
            f"the bundled model {spec.name!r} is not in this build: train one with "
            f"`neurcodec train DATA_DIR --config {spec.name}` or use a Hub model "
            "(`neurcodec pull stable-cascade-lite`)"
        )
    return f"run `neurcodec pull {spec.name}` with network access"


# --------------------------------------------------------------------------------------------
# Fetching


@dataclass
class PullResult:
    family: str
    files: dict[str, Path]
    clip_path: Path | None
    clip_computed: bool


ProgressFn = Callable[[str], None]


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub import utils

    return (
        utils.LocalEntryNotFoundError,
        utils.EntryNotFoundError,
        utils.RepositoryNotFoundError,
        utils.RevisionNotFoundError,
        utils.HfHubHTTPError,
        OSError,
    )


def _hub_download(
    spec: FamilySpec, repo: str, filename: str, revision: str | None, *, force: bool = False
) -> Path:
    """hf_hub_download with every failure turned into one WeightsError line."""
    from huggingface_hub import hf_hub_download, utils

    offline = hub_offline()
    try:
        return Path(
            hf_hub_download(
                repo,
                filename,
                revision=revision,
                cache_dir=hub_cache_dir(),
                local_files_only=offline,
                force_download=force and not offline,
            )
        )
    except utils.GatedRepoError:
        raise WeightsError(
            f"model {spec.name!r}: {repo} is gated; accept its licence on the Hub and log in "
            "(`hf auth login` or HF_TOKEN), then run `neurcodec pull "
            f"{spec.name}` again"
        ) from None
    except _hub_errors() as exc:
        if offline or isinstance(exc, utils.LocalEntryNotFoundError):
            reason = "the Hub is offline (HF_HUB_OFFLINE=1)" if offline else "the Hub is unreachable"
            raise WeightsError(
                f"model {spec.name!r}: {filename} is not in the cache ({hub_cache_dir()}) and "
                f"{reason}; {_how_to_get(spec)}"
            ) from None
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"model {spec.name!r}: cannot fetch {repo}/{filename}: {first_line}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file(file: FileSpec, path: Path, *, hash_it: bool) -> None:
    if file.size is not None and path.stat().st_size != file.size:
        raise WeightsError(
            f"{file.label} has {path.stat().st_size} bytes, the registry records {file.size}; "
            f"delete {path} and fetch it again"
        )
    if hash_it and file.sha256 is not None and _sha256(path) != file.sha256.lower():
        raise WeightsError(
            f"{file.label} does not match its recorded sha256; delete {path} and fetch it again"
        )


def pull(
    family: str | FamilySpec,
    progress: bool = True,
    *,
    force: bool = False,
    on_step: ProgressFn | None = None,
) -> PullResult:
    """Fetch every file of a Hub family into the cache, verify it, and compute the cached
    empty-caption CLIP vector. A bundled family only needs its file to be present."""
    from huggingface_hub import utils

    spec = _spec(family)
    say = on_step or (lambda _msg: None)
    if spec.bundled:
        files = {fid: _bundled_path(f) for fid, f in spec.files.items()}
        for fid, path in files.items():
            if not path.is_file():
                raise WeightsError(_how_to_get(spec))
            _check_file(spec.files[fid], path, hash_it=True)
        return PullResult(spec.name, files, None, False)

    bars_were_off = utils.are_progress_bars_disabled()
    if not progress:
        utils.disable_progress_bars()
    try:
        files = {}
        for i, (fid, f) in enumerate(spec.files.items(), 1):
            say(f"[{i}/{len(spec.files)}] {f.repo}/{f.filename}")
            path = _hub_download(spec, f.repo, f.filename, f.revision, force=force)  # type: ignore[arg-type]
            say(f"checking {f.filename}")
            _check_file(f, path, hash_it=True)
            files[fid] = path
        clip_path = clip_cache_path(spec)
        computed = False
        if force or _read_clip_cache(spec, missing_ok=True) is None:
            say("computing the empty-caption CLIP embedding")
            compute_clip_uncond(spec)
            computed = True
    finally:
        if not progress and not bars_were_off:
            utils.enable_progress_bars()
    return PullResult(spec.name, files, clip_path, computed)


def _snapshot_commit(path: Path) -> str | None:
    parts = path.parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def compute_clip_uncond(family: str | FamilySpec) -> Path:
    """Run the repo's CLIP text encoder on the empty caption and cache its pooled projection."""
    import torch  # deferred: listing models and --help must not pay for importing torch

    spec = _spec(family)
    clip = spec.clip
    if not clip.from_text_encoder:
        raise WeightsError(f"model {spec.name!r} carries its CLIP vector in its weights file")
    try:
        import transformers
    except ImportError:
        raise WeightsError(
            f"computing the empty-caption CLIP vector for {spec.name!r} needs transformers: "
            "pip install 'neurcodec[hub]'"
        ) from None

    assert clip.repo is not None
    config = _hub_download(spec, clip.repo, f"{clip.text_encoder}/config.json", clip.revision)
    weights: Path | None = None
    for i, name in enumerate(clip.text_encoder_weights):
        last = i == len(clip.text_encoder_weights) - 1
        try:
            weights = _hub_download(spec, clip.repo, f"{clip.text_encoder}/{name}", clip.revision)
            break
        except WeightsError:
            # Try the next variant (e.g. bf16 before fp32); report the last failure.
            if last:
                raise
    assert weights is not None
    tokenizer_dir: Path | None = None
    for name in clip.tokenizer_files:
        tokenizer_dir = _hub_download(spec, clip.repo, f"{clip.tokenizer}/{name}", clip.revision).parent
    for name in clip.tokenizer_optional_files:
        try:
            _hub_download(spec, clip.repo, f"{clip.tokenizer}/{name}", clip.revision)
        except WeightsError:
            pass  # optional: the tokenizer has defaults for these
    assert tokenizer_dir is not None

    # `model.bf16.safetensors` is the "bf16" variant in transformers' naming.
    stem_parts = weights.name.split(".")
    variant = stem_parts[1] if len(stem_parts) == 3 else None
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    model = transformers.CLIPTextModelWithProjection.from_pretrained(
        str(config.parent), variant=variant
    )
    model = model.float().eval()
    max_len = min(int(tokenizer.model_max_length), int(model.config.max_position_embeddings))
    tokens = tokenizer(
        [""], padding="max_length", max_length=max_len, truncation=True, return_tensors="pt"
    )
    with torch.inference_mode():
        out = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    vector = out.text_embeds.reshape(-1).float().contiguous().clone()
    if vector.numel() != clip.dim:
        raise WeightsError(
            f"model {spec.name!r}: the text encoder gives a {vector.numel()}-d embedding, "
            f"stage B expects {clip.dim}"
        )

    from safetensors.torch import save_file

    target = clip_cache_path(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    save_file(
        {CLIP_KEY: vector},
        str(tmp),
        metadata={
            "family": spec.name,
            "repo": clip.repo,
            "revision": str(clip.revision),
            "commit": _snapshot_commit(weights) or "",
            "text_encoder_file": f"{clip.text_encoder}/{weights.name}",
            "caption": "",
        },
    )
    os.replace(tmp, target)  # atomic: a failed run leaves no half-written vector
    return target


def _read_clip_cache(spec: FamilySpec, *, missing_ok: bool = False) -> torch.Tensor | None:
    """The cached vector; with `missing_ok`, None for anything short of a valid one (pull then
    recomputes it) instead of an error telling the user to pull."""
    path = clip_cache_path(spec)
    if not path.is_file():
        if missing_ok:
            return None
        raise WeightsError(
            f"model {spec.name!r} has no cached empty-caption CLIP vector ({path}); "
            f"run `neurcodec pull {spec.name}`"
        )
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            vector = fh.get_tensor(CLIP_KEY)
    except Exception as exc:  # noqa: BLE001 - any unreadable cache file means "pull again"
        if missing_ok:
            return None
        raise WeightsError(
            f"{path} is unreadable ({_first_line(exc)}); run `neurcodec pull {spec.name} --force`"
        ) from None
    if meta.get("repo") != spec.clip.repo or meta.get("revision") != str(spec.clip.revision):
        if missing_ok:
            return None
        raise WeightsError(
            f"{path} was made from {meta.get('repo')}@{meta.get('revision')}, not "
            f"{spec.clip.repo}@{spec.clip.revision}; run `neurcodec pull {spec.name} --force`"
        )
    if vector.numel() != spec.clip.dim:
        if missing_ok:
            return None
        raise WeightsError(f"{path} holds {vector.numel()} values, expected {spec.clip.dim}")
    return vector


# --------------------------------------------------------------------------------------------
# Building and loading


@dataclass
class LoadedModels:
    stage_a: nn.Module
    encoder: nn.Module
    stage_b: nn.Module
    clip_uncond: torch.Tensor
    family: FamilySpec
    digest: bytes

    @property
    def digest_hex(self) -> str:
        return self.digest.hex()


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
    spec = _spec(family)
    ident = {
        "family": spec.name,
        "files": {
            fid: [f.repo, f.filename, f.path, f.revision, f.size, f.sha256]
            for fid, f in sorted(spec.files.items())
        },
        "components": {
            c.name: [c.file, c.prefix, c.config]
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
    spec = _spec(family)
    try:
        return sum(_component_numels(comp)[0] for comp in spec.components.values())
    except ImportError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def _diagnose(path: Path, label: str, exc: BaseException) -> WeightsError:
    """Name the file and, when the file is cut short, the first tensor past its end."""
    try:
        start, header = _safetensors_header(path)
    except Exception as hexc:  # noqa: BLE001 - the header itself is unreadable
        return WeightsError(f"{label} ({path}) is corrupt: {_first_line(hexc)}")
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
    return WeightsError(f"{label} ({path}) is corrupt: {_first_line(exc)}")


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
        raise _diagnose(path, label, exc) from None
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
                    raise _diagnose(path, label, exc) from None
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
        path = _bundled_path(file)
        if not path.is_file():
            raise WeightsError(_how_to_get(spec))
        # Bundled files are small: checking the hash at every load is cheap insurance.
        _check_file(file, path, hash_it=True)
        return path
    path = _hub_download(spec, file.repo, file.filename, file.revision)  # type: ignore[arg-type]
    _check_file(file, path, hash_it=False)  # sha256 is checked at pull time
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

    spec = _spec(family if family is not None else default_family())
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
            clip_vec = _read_clip_cache(spec)

    metas = {cname: build_component(comp, "meta") for cname, comp in spec.components.items()}
    loaded: dict[str, nn.Module] = {}
    for fid, file in spec.files.items():
        users = {c.name: (c.prefix, metas[c.name]) for c in spec.components.values() if c.file == fid}
        clip_keys = [spec.clip.key] if spec.clip.file == fid and spec.clip.key else []
        if not users and not clip_keys:
            continue
        path = _resolve_file(spec, file)
        if file.bundled:
            _check_bundle_configs(spec, fid, path)
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
        raise _diagnose(path, label, exc) from None


def file_sizes(family: str | FamilySpec) -> tuple[int | None, bool]:
    """(total bytes, exact?) of a family's files: recorded or on disk, else estimated."""
    spec = _spec(family)
    total, exact = 0, True
    for file in spec.files.values():
        path = _bundled_path(file) if file.bundled else _cached_hub_path(file)
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


# --------------------------------------------------------------------------------------------
# The bundled model: `neurcodec train --export` writes one file whose metadata describes it.

BUNDLE_META_KEY = "neurcodec"


def bundle_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON description `neurcodec train` stores in an exported file (None if absent)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(BUNDLE_META_KEY)
    except Exception as exc:  # noqa: BLE001
        raise _diagnose(path, path.name, exc) from None
    return json.loads(raw) if raw else None


def _normalized(config: Mapping[str, Any]) -> dict[str, Any]:
    from neurcodec.models.configs import config_from_dict

    return json.loads(json.dumps(config_from_dict(dict(config)).to_dict()))


def _check_bundle_configs(spec: FamilySpec, fid: str, path: Path) -> None:
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
                "neurcodec.weights.record_bundle()"
            )


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


def source_registry_path() -> Path | None:
    """The repository's top-level weights.json, when running from a checkout."""
    path = Path(__file__).resolve().parents[2] / "weights.json"
    return path if path.is_file() else None


def record_bundle(
    bundle: str | os.PathLike[str],
    *,
    family: str = "tiny",
    registry_files: Iterable[str | os.PathLike[str]] | None = None,
) -> dict[str, Any]:
    """Describe an exported bundle in the registry: configs, size, sha256, dtype, training record.

    Writes the family entry into each registry file (default: the checkout's `weights.json` and
    the packaged copy, kept identical) and returns the new entry."""
    bundle = Path(bundle)
    meta = bundle_metadata(bundle)
    if not meta:
        raise WeightsError(f"{bundle} carries no '{BUNDLE_META_KEY}' metadata; export it with neurcodec train")
    from safetensors import safe_open

    with safe_open(str(bundle), framework="pt") as fh:
        dtypes = {str(fh.get_slice(k).get_dtype()) for k in fh.keys()}
    float_dtype = next((d for d in ("F16", "BF16", "F32") if d in dtypes), "F32")

    targets = [Path(p) for p in registry_files] if registry_files is not None else [
        p for p in (source_registry_path(), registry_path()) if p is not None
    ]
    data = json.loads(targets[0].read_text(encoding="utf-8"))
    entry = data["families"][family]
    for name in COMPONENTS:
        if name in meta:
            entry["components"][name]["config"] = _normalized(meta[name])
    bundle_file = entry["components"]["stage_a"]["file"]
    entry["files"][bundle_file].update(
        size=bundle.stat().st_size,
        sha256=_sha256(bundle),
        dtype={"F16": "float16", "BF16": "bfloat16", "F32": "float32"}[float_dtype],
    )
    if "stage_b" in meta:
        entry["clip"]["dim"] = int(meta["stage_b"].get("c_clip", entry["clip"]["dim"]))
    if "effnet_factor" in meta:
        entry["decode"]["effnet_input_factor"] = meta["effnet_factor"]
    training = dict(meta.get("training") or {})
    entry["training"] = {
        **(entry.get("training") or {}),
        "command": training.pop("command", None),
        "data": training.pop("data", (entry.get("training") or {}).get("data")),
        "steps": {
            "stage_a": training.pop("stage_a_steps", None),
            "joint": training.pop("joint_steps", None),
        },
        "wall_time_s": training.pop("train_seconds", None),
        "diffusion": meta.get("diffusion"),
        **training,
    }
    entry["training"].pop("notes", None)
    if meta.get("diffusion"):
        entry["diffusion"] = f"{meta['diffusion']['target']}_{meta['diffusion']['loss_weight']}"
    FamilySpec.from_dict(family, entry)  # refuse to write an entry the loader cannot read
    text = format_registry(data)
    for target in targets:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    return entry
