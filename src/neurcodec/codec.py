"""The image codec: pixels → `.dae` bytes and back, through the rooms below it.

encode: RGB → (pad) → EfficientNet latent → quantize → entropy code → container
decode: container → entropy decode → dequantize → stage B sampling (CFG) → stage A decode → crop

The decoder is stochastic: stage B *samples* the stage A latent that the tiny conditioning
latent does not pin down. The seed used is stored in the file, so decoding one file twice on one
platform gives the same pixels.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from neurcodec import media
from neurcodec.bitstream import (
    CHUNK_ALPHA,
    DecodeDefaults,
    ImageHeader,
    decode_latent,
    dequantize,
    encode_latent,
    quality_to_step_index,
    quantize,
    read_image,
    search_step,
    step_from_index,
    write_image,
)
from neurcodec.bitstream.container import SAMPLERS as FILE_SAMPLERS
from neurcodec.diffusion import build_gdf, sample
from neurcodec.errors import CorruptFileError, InputError, UsageError
from neurcodec.models.effnet import effnet_input_size, effnet_preprocess
from neurcodec.models.thumbnail import match_thumbnail
from neurcodec.tiling import TileConfig, tiled_stage_a_decode, tiled_stage_a_encode, tiled_stage_b
from neurcodec.weights import FamilySpec, get_family

ProgressFn = Callable[[int, int], None]

PAD_MULTIPLE = 32  # the EfficientNet's output stride; also keeps stage B's patch grid even
MIN_SIDE = 64  # stage B halves its grid 1 (patch) + 3 (levels) times from the H/4 latent
DEFAULT_SEED = 0  # a fixed default keeps encodes byte-identical run to run (pipes vs paths)
_SAMPLER_NAMES = {"ddpm": "ddpm", "ddim": "ddim", "dpmpp-2m": "dpmpp_2m", "dpmpp_2m": "dpmpp_2m"}


@dataclass(frozen=True)
class DecodeSettings:
    """The settings one decode runs with (file defaults overridden by the caller)."""

    steps: int
    guidance: float
    sampler: str
    cfg_rescale: float
    seed: int


def _pick_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise UsageError(f"unknown dtype {dtype!r}; choose float32, bfloat16 or float16")
    return names[dtype]




def _cpu_has_bf16() -> bool:
    cpu = torch.cpu
    return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_autocast(
    value: bool | str | torch.dtype | None, family: str | FamilySpec, device: torch.device, dtype: torch.dtype
) -> torch.dtype | None:
    """The autocast dtype stage B runs under, or None for plain `dtype` arithmetic.

    None/"auto": the family's measured choice (`autocast` in weights.json) on a CPU with native
    bf16 and on CUDA; otherwise off. fp16 on CPU is refused (slow and inaccurate there).
    """
    if value is False or value in ("off", "none", "float32", "fp32") or dtype != torch.float32:
        return None
    if value is None or value == "auto":
        spec = get_family(family) if isinstance(family, str) else family
        prefers_bf16 = spec.autocast == "bfloat16"
        if device.type == "cpu":
            return torch.bfloat16 if prefers_bf16 and _cpu_has_bf16() else None
        if device.type == "cuda" and prefers_bf16:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    chosen = torch.bfloat16 if value is True else _pick_dtype(value)
    if chosen == torch.float32:
        return None
    if chosen == torch.float16 and device.type == "cpu":
        raise UsageError("float16 autocast is not supported on CPU; use bfloat16")
    return chosen


def sampler_name(name: str) -> str:
    """Normalise a user's sampler name to the spelling stored in files (ddpm, ddim, dpmpp-2m)."""
    key = name.lower().replace("_", "-")
    if key not in FILE_SAMPLERS:
        raise UsageError(f"unknown sampler {name!r}; choose one of {', '.join(FILE_SAMPLERS)}")
    return key


def encoder_latent(
    encoder: torch.nn.Module, stage_a: torch.nn.Module, pixels: torch.Tensor, tiling: TileConfig | None = None
) -> torch.Tensor:
    """[0,1] image batch (sides multiples of 32) → the conditioning latent. An encoder reads
    either the ImageNet-normalised pixels or (in_channels != 3) stage A's latent of them, in
    tiles above `tiling`'s threshold; one that carries a colour thumbnail also takes the pixels.
    Training and inference both use this."""
    if encoder.in_channels == 3:
        features = effnet_preprocess(pixels)
    elif tiling is not None and tiling.wants_tiles([side // stage_a.downscale for side in pixels.shape[-2:]]):
        features = tiled_stage_a_encode(stage_a, pixels, tiling).to(pixels.dtype)
    else:
        features = stage_a.encode(pixels)[0]
    return encoder(features, pixels)


class Codec:
    """A loaded model family that turns images into `.dae` bytes and back.

    Exposes the three modules as `.stage_a`, `.encoder`, `.stage_b` (see `neurcodec.load`).

    Speed options (all keyword-only): `autocast` — None/"auto" (per-family measured default,
    see `resolve_autocast`), False, True/"bfloat16" or "float16" (CUDA only) for stage B
    sampling; `channels_last` — NHWC layout for the conv models (default on: measured faster);
    `compile` — `torch.compile` stage B (off: compile time outweighs the gain on short CPU
    decodes); `threads` — `torch.set_num_threads` (process-wide); `tiling` — tile layout for
    large images (None disables tiling).
    """

    def __init__(
        self,
        models: Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        autocast: bool | str | torch.dtype | None = None,
        channels_last: bool = True,
        compile: bool = False,
        threads: int | None = None,
        tiling: TileConfig | None = TileConfig(),
    ) -> None:
        self.models = models
        self.family = models.family
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.stage_a = models.stage_a
        self.encoder = models.encoder
        self.stage_b = models.stage_b
        self.clip_uncond = models.clip_uncond
        self.digest: bytes = models.digest
        self.gdf = build_gdf(self.family.diffusion)
        if threads is not None:
            if threads < 1:
                raise UsageError(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        self.autocast = resolve_autocast(autocast, self.family, self.device, self.dtype)
        self.channels_last = channels_last
        self.tiling = tiling
        # In place: the modules belong to this codec; values are unchanged, only strides.
        layout = torch.channels_last if channels_last else torch.contiguous_format
        for module in (self.stage_a, self.encoder, self.stage_b):
            module.to(memory_format=layout)
        self._stage_b_forward = torch.compile(self.stage_b, dynamic=True) if compile else self.stage_b

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    @classmethod
    def from_pretrained(
        cls,
        name: str | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        pretrained: bool = True,
        allow_zero_clip: bool = False,
        **options: Any,
    ) -> Codec:
        """`options` are the speed options of `Codec` (autocast, channels_last, compile, threads, tiling)."""
        from neurcodec.weights import load_models

        dt = _pick_dtype(dtype)
        models = load_models(name, device=device, dtype=dt, pretrained=pretrained, allow_zero_clip=allow_zero_clip)
        return cls(models, device=device, dtype=dt, **options)

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def effnet_factor(self) -> float:
        return float(self.family.decode.effnet_input_factor)

    def default_decode(self) -> DecodeDefaults:
        d = self.family.decode
        return DecodeDefaults(sampler=sampler_name(d.sampler), steps=d.steps, guidance=d.guidance, cfg_rescale=d.cfg_rescale)

    # ------------------------------------------------------------------ latents level
    def _to_tensor(self, rgb: Image.Image) -> torch.Tensor:
        import numpy as np

        array = np.asarray(rgb.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1)[None].to(self.device)

    @property
    def min_side(self) -> int:
        """The smallest side stage B's levels can halve down to: 64 for an f4 stage A, 128 for f8."""
        levels = len(self.stage_b.down_blocks)
        return max(MIN_SIDE, self.stage_a.downscale * self.stage_b.embedding[0].downscale_factor * 2 ** (levels - 1))

    def padded_size(self, width: int, height: int) -> tuple[int, int]:
        """The size the models see: each side rounded up to a multiple of 32, at least `min_side`."""
        return tuple(max(self.min_side, math.ceil(side / PAD_MULTIPLE) * PAD_MULTIPLE) for side in (width, height))

    def latent_hw(self, width: int, height: int) -> tuple[int, int]:
        """The stage A latent grid (rows, cols) that stage B generates for an image of this size."""
        pw, ph = self.padded_size(width, height)
        return (ph // self.stage_a.downscale, pw // self.stage_a.downscale)

    def latent_shape(self, width: int, height: int) -> tuple[int, int, int]:
        pw, ph = self.padded_size(width, height)
        eh, ew = effnet_input_size(ph, pw, self.effnet_factor)
        return (self.encoder.c_latent, eh // 32, ew // 32)

    @torch.inference_mode()
    def encode_latent(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0,1] image batch (1,3,H,W) → the EfficientNet latent (1,16,h,w), float32 on CPU."""
        _, _, height, width = pixels.shape
        pw, ph = self.padded_size(width, height)
        # Edge replication, not zeros: a hard border would spend bits on an edge that isn't there.
        padded = F.pad(pixels, (0, pw - width, 0, ph - height), mode="replicate")
        size = effnet_input_size(ph, pw, self.effnet_factor)
        if size != (ph, pw):
            padded = F.interpolate(padded, size=size, mode="nearest")
        with self._autocast():
            return encoder_latent(self.encoder, self.stage_a, self._layout(padded.to(self.dtype)), self.tiling).float().cpu()

    def finish_pixels(self, latent: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Stage A's output → the final [0,1] image: matched to the thumbnail the latent carries
        (models that carry one), then clamped. `latent` (B,16,h,w), `pixels` (B,3,32h,32w)."""
        thumb = self.encoder.thumbnail(latent.to(pixels.device).float())
        if thumb is not None:
            pixels = match_thumbnail(pixels.float(), thumb)
        return pixels.float().clamp(0, 1)

    @torch.inference_mode()
    def generate(
        self,
        latent: torch.Tensor,
        size: tuple[int, int],
        settings: DecodeSettings,
        progress: ProgressFn | None = None,
    ) -> torch.Tensor:
        """Conditioning latent (1,16,h,w) → [0,1] image (1,3,H,W) of `size` = (width, height).

        Above `self.tiling`'s threshold stage B and stage A run in blended tiles (`tiling.py`);
        the sampler, its noise and CFG still run on the full-size latent.
        """
        width, height = size
        latent_hw = self.latent_hw(width, height)
        tiled = self.tiling is not None and self.tiling.wants_tiles(latent_hw)
        cond = latent.to(self.device, self.dtype)
        clip = self.clip_uncond.to(self.device, self.dtype).reshape(1, 1, -1)
        guided = settings.guidance > 1.0
        if guided:  # [cond; uncond] in one batch: zero latent = the unconditional branch
            cond = torch.cat([cond, torch.zeros_like(cond)])
            clip = clip.expand(2, -1, -1)
        conditions = self.stage_b.encode_conditions(cond, clip, latent_hw=latent_hw)

        def forward(x: torch.Tensor, r: torch.Tensor, cond: Any) -> torch.Tensor:
            return self._stage_b_forward(self._layout(x.to(self.dtype)), r.to(self.dtype), cond=cond)

        if tiled:
            predict = tiled_stage_b(self.stage_b, conditions, self.tiling, forward=forward)
        else:
            def predict(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
                return forward(x, r, conditions)

        def model(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            return predict(x, r).float()

        generator = torch.Generator().manual_seed(settings.seed)
        shape = (1, self.stage_a.c_latent, *latent_hw)
        x_init = torch.randn(shape, generator=generator).to(self.device)
        callback = None
        if progress is not None:
            progress(0, settings.steps)

            def callback(i: int, *_: Any) -> None:
                progress(i + 1, settings.steps)

        # One autocast context around all steps, so bf16 weight casts are made once per decode.
        with self._autocast():
            base = self.stage_b.direct_estimate(latent.to(self.device, self.dtype), latent_hw)
            z = sample(
                model,
                x_init,
                self.gdf,
                steps=settings.steps,
                sampler=_SAMPLER_NAMES[settings.sampler],
                cfg=settings.guidance if guided else None,
                cfg_rho=settings.cfg_rescale,
                generator=generator,
                callback=callback,
            )
        if base is not None:  # the sampler generated the residual around the direct estimate
            z = z + base.float()
        z = self._layout(z.to(self.dtype))
        with self._autocast():  # the family's measured choice covers stage A too (TAEF2: 2× in bf16)
            pixels = tiled_stage_a_decode(self.stage_a, z, self.tiling) if tiled else self.stage_a.decode(z)
        pixels = self.finish_pixels(latent, pixels)
        return pixels[:, :, :height, :width].cpu()

    # ------------------------------------------------------------------ bytes level
    def encode(
        self,
        image: Image.Image,
        *,
        quality: int | None = None,
        bpp: float | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        sampler: str | None = None,
    ) -> bytes:
        """Compress a PIL image (any mode `media.prepare` accepts) into `.dae` bytes.

        `quality` 0..100 (higher = more bits) or `bpp` (highest quality whose whole file fits);
        `seed`/`steps`/`guidance`/`sampler` are stored as the file's decode defaults.
        """
        if quality is not None and bpp is not None:
            raise UsageError("give either quality or bpp, not both")
        if quality is not None and not 0 <= quality <= 100:
            raise UsageError(f"quality must be in 0..100, got {quality}")
        if bpp is not None and not bpp > 0:
            raise UsageError(f"bpp must be > 0, got {bpp}")
        rgb, meta = media.prepare(image)
        width, height = meta.size
        if width > 65536 or height > 65536:
            raise InputError(f"image is {width}×{height}; the largest side this format holds is 65536")
        latent = self.encode_latent(self._to_tensor(rgb))[0]
        defaults = self.default_decode()
        decode = DecodeDefaults(
            sampler=sampler_name(sampler) if sampler else defaults.sampler,
            steps=steps if steps is not None else defaults.steps,
            guidance=guidance if guidance is not None else defaults.guidance,
            cfg_rescale=defaults.cfg_rescale,
        )
        extra = [(CHUNK_ALPHA, meta.alpha_png)] if meta.alpha_png else []

        def build(q: int) -> bytes:
            index = quality_to_step_index(q)
            symbols = quantize(latent, step_from_index(index))
            header = ImageHeader(
                model=self.name,
                weights_digest=self.digest,
                width=width,
                height=height,
                latent_shape=tuple(symbols.shape),
                step_index=index,
                mode=meta.mode,
                effnet_scale=self.effnet_factor,
                seed=DEFAULT_SEED if seed is None else seed,
                decode=decode,
            )
            return write_image(header, encode_latent(symbols), extra)

        if bpp is None:
            return build(self.family.default_quality if quality is None else quality)
        target = math.floor(bpp * width * height / 8)
        cache: dict[int, bytes] = {}

        def size_at(q: int) -> int:
            cache[q] = build(q)
            return len(cache[q])

        found = search_step(size_at, target)
        return cache.get(found.q) or build(found.q)

    def read(self, data: bytes):
        """Parse a `.dae` image made by this model (refusing other models with their name)."""
        return read_image(data, model=self.name, weights_digest=self.digest)

    def settings_for(
        self, header: ImageHeader, *, steps: int | None = None, guidance: float | None = None, sampler: str | None = None, seed: int | None = None
    ) -> DecodeSettings:
        stored = header.decode or self.default_decode()
        settings = DecodeSettings(
            steps=steps if steps is not None else stored.steps,
            guidance=guidance if guidance is not None else stored.guidance,
            sampler=sampler_name(sampler) if sampler else stored.sampler,
            cfg_rescale=stored.cfg_rescale,
            seed=seed if seed is not None else header.seed,
        )
        if settings.steps < 1:
            raise UsageError(f"steps must be >= 1, got {settings.steps}")
        if settings.guidance < 0:
            raise UsageError(f"guidance must be >= 0, got {settings.guidance}")
        return settings

    def decode(
        self,
        data: bytes,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        sampler: str | None = None,
        seed: int | None = None,
        progress: ProgressFn | None = None,
    ) -> Image.Image:
        """`.dae` bytes → PIL image in the original size and mode."""
        dae = self.read(data)
        header = dae.header
        expected = self.latent_shape(header.width, header.height)
        if tuple(header.latent_shape) != expected:
            raise CorruptFileError(f"latent shape {header.latent_shape} does not fit a {header.width}×{header.height} image (expected {expected})")
        symbols = decode_latent(dae.latent, header.latent_shape)
        latent = torch.from_numpy(dequantize(symbols, step_from_index(header.step_index)))[None]
        settings = self.settings_for(header, steps=steps, guidance=guidance, sampler=sampler, seed=seed)
        pixels = self.generate(latent, (header.width, header.height), settings, progress)
        rgb = Image.fromarray((pixels[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).astype("uint8"), "RGB")
        alpha = next((body for kind, body in dae.chunks if kind == CHUNK_ALPHA), None)
        meta = media.ImageMeta(size=(header.width, header.height), mode=header.mode, source_mode=header.mode)
        return media.restore(rgb, meta, alpha)

    def describe(self, data: bytes) -> dict[str, Any]:
        """What `neurcodec info` shows: model, sizes, settings and where the bytes go."""
        return describe(data)


def describe(data: bytes) -> dict[str, Any]:
    """Header facts and size breakdown of a `.dae` image, without loading any model."""
    from neurcodec.bitstream import blob_sizes

    dae = read_image(data)
    h = dae.header
    pixels = h.width * h.height
    params_bytes, payload_bytes = blob_sizes(dae.latent, h.latent_shape[0])
    decode = h.decode
    return {
        "kind": "image",
        "model": h.model,
        "weights_digest": h.weights_digest.hex(),
        "width": h.width,
        "height": h.height,
        "mode": h.mode,
        "latent_shape": list(h.latent_shape),
        "step": step_from_index(h.step_index),
        "step_index": h.step_index,
        "effnet_scale": h.effnet_scale,
        "seed": h.seed,
        "decode_defaults": None if decode is None else {"sampler": decode.sampler, "steps": decode.steps, "guidance": decode.guidance, "cfg_rescale": decode.cfg_rescale},
        "alpha": any(kind == CHUNK_ALPHA for kind, _ in dae.chunks),
        "bytes": len(data),
        "bpp": 8 * len(data) / pixels,
        "breakdown": {
            "header": dae.header_bytes,
            "chunk_framing": dae.framing_bytes,
            "entropy_params": params_bytes,
            "latent_payload": payload_bytes,
            "extra_chunks": sum(len(body) for _, body in dae.chunks),
        },
    }


def load(
    name: str | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    pretrained: bool = True,
    allow_zero_clip: bool = False,
    **options: Any,
) -> Codec:
    """Load a model family (default: the bundled `tiny`) as a ready `Codec`.

    `options`: the speed options of `Codec` (autocast, channels_last, compile, threads, tiling).
    """
    return Codec.from_pretrained(name, device=device, dtype=dtype, pretrained=pretrained, allow_zero_clip=allow_zero_clip, **options)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
