"""The Hugging Face Hub side of the zoo: where files are, fetching and verifying them, and the
empty-caption CLIP vector that Stable Cascade's stage B is conditioned on.

Hub files are fetched and cached by huggingface_hub (HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE
are read at call time, so a caller may change them after import). `pull` computes the CLIP
vector once from the repo's text encoder and stores it beside the cache, so decoding never
needs the text tower.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from neurcodec import fileio
from neurcodec.errors import WeightsError
from neurcodec.zoo.registry import FamilySpec, FileSpec, spec_of

if TYPE_CHECKING:
    import torch

Where = Literal["bundled", "cached", "remote", "missing"]
CLIP_FILENAME = "clip_uncond.safetensors"
CLIP_KEY = "clip_uncond"


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
    return hf_home() / "neurcodec" / spec_of(family).name / CLIP_FILENAME


def bundled_path(file: FileSpec) -> Path:
    path = Path(file.path)  # type: ignore[arg-type]
    if path.is_absolute():
        return path
    return Path(str(importlib.resources.files("neurcodec"))) / path


def cached_hub_path(file: FileSpec) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        file.repo, file.filename, cache_dir=hub_cache_dir(), revision=file.revision
    )
    return Path(found) if isinstance(found, str) else None


def where(family: str | FamilySpec) -> Where:
    """`bundled` (in the package), `cached` (all files in the Hub cache), `remote`, or
    `missing` (a bundled model that is not in this build). Never touches the network."""
    spec = spec_of(family)
    if spec.bundled:
        ok = all(bundled_path(f).is_file() for f in spec.files.values())
        return "bundled" if ok else "missing"
    ok = all(cached_hub_path(f) is not None for f in spec.files.values() if not f.bundled)
    return "cached" if ok else "remote"


def how_to_get(spec: FamilySpec) -> str:
    if spec.bundled:
        return (
            f"the bundled model {spec.name!r} is not in this build: train one with "
            f"`neurcodec train DATA_DIR --config {spec.name}` or use a Hub model "
            "(`neurcodec pull stable-cascade-lite`)"
        )
    return f"run `neurcodec pull {spec.name}` with network access"



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


def hub_download(
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
                f"{reason}; {how_to_get(spec)}"
            ) from None
        raise WeightsError(f"model {spec.name!r}: cannot fetch {repo}/{filename}: {first_line(exc)}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(file: FileSpec, path: Path, *, hash_it: bool) -> None:
    if file.size is not None and path.stat().st_size != file.size:
        raise WeightsError(
            f"{file.label} has {path.stat().st_size} bytes, the registry records {file.size}; "
            f"delete {path} and fetch it again"
        )
    if hash_it and file.sha256 is not None and sha256_of(path) != file.sha256.lower():
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

    spec = spec_of(family)
    say = on_step or (lambda _msg: None)
    if spec.bundled:
        files = {fid: bundled_path(f) for fid, f in spec.files.items()}
        for fid, path in files.items():
            if not path.is_file():
                raise WeightsError(how_to_get(spec))
            check_file(spec.files[fid], path, hash_it=True)
        return PullResult(spec.name, files, None, False)

    bars_were_off = utils.are_progress_bars_disabled()
    if not progress:
        utils.disable_progress_bars()
    try:
        files = {}
        for i, (fid, f) in enumerate(spec.files.items(), 1):
            say(f"[{i}/{len(spec.files)}] {f.repo}/{f.filename}")
            path = hub_download(spec, f.repo, f.filename, f.revision, force=force)  # type: ignore[arg-type]
            say(f"checking {f.filename}")
            check_file(f, path, hash_it=True)
            files[fid] = path
        clip_path = clip_cache_path(spec)
        computed = False
        if force or read_clip_cache(spec, missing_ok=True) is None:
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

    spec = spec_of(family)
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
    config = hub_download(spec, clip.repo, f"{clip.text_encoder}/config.json", clip.revision)
    weights: Path | None = None
    for i, name in enumerate(clip.text_encoder_weights):
        last = i == len(clip.text_encoder_weights) - 1
        try:
            weights = hub_download(spec, clip.repo, f"{clip.text_encoder}/{name}", clip.revision)
            break
        except WeightsError:
            # Try the next variant (e.g. bf16 before fp32); report the last failure.
            if last:
                raise
    assert weights is not None
    tokenizer_dir: Path | None = None
    for name in clip.tokenizer_files:
        tokenizer_dir = hub_download(spec, clip.repo, f"{clip.tokenizer}/{name}", clip.revision).parent
    for name in clip.tokenizer_optional_files:
        try:
            hub_download(spec, clip.repo, f"{clip.tokenizer}/{name}", clip.revision)
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

    from safetensors.torch import save

    target = clip_cache_path(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    encoded = save(
        {CLIP_KEY: vector},
        metadata={
            "family": spec.name,
            "repo": clip.repo,
            "revision": str(clip.revision),
            "commit": _snapshot_commit(weights) or "",
            "text_encoder_file": f"{clip.text_encoder}/{weights.name}",
            "caption": "",
        },
    )
    fileio.atomic_write(target, encoded)  # a failed run leaves no half-written vector
    return target


def read_clip_cache(spec: FamilySpec, *, missing_ok: bool = False) -> torch.Tensor | None:
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
            f"{path} is unreadable ({first_line(exc)}); run `neurcodec pull {spec.name} --force`"
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




def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
