"""The image codec: pixels → `.dae` bytes and back, through the rooms below it.

encode: image mode/alpha (media) → pipeline.encode_latents → quantize → entropy code → container
decode: container → entropy decode → dequantize → pipeline.generate → restore mode/alpha

What runs the models — device, precision, tiling, stage B sampling — is `pipeline.py`'s; this
module adds what is particular to one still image (modes, alpha, the quality search).

The decoder is stochastic: stage B *samples* the stage A latent that the tiny conditioning
latent does not pin down. The seed used is stored in the file, so decoding one file twice on one
platform gives the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from PIL import Image

from neurcodec import limits, media
from neurcodec.bitstream.container import MAX_DIM
from neurcodec.bitstream import (
    CHUNK_ALPHA,
    DecodeSettings,
    ImageHeader,
    encode_latent,
    quality_to_step_index,
    quantize,
    read_image,
    search_step,
    step_from_index,
    write_image,
)
from neurcodec.errors import CorruptFileError, InputError, UsageError
from neurcodec.info import dequantized_latent
from neurcodec.latent_search import check_searchable, search_latent
from neurcodec.pipeline import NoiseBlend, Pipeline, ProgressFn, pick_dtype

DEFAULT_SEED = 0  # a fixed default keeps encodes byte-identical run to run (pipes vs paths)


class Codec:
    """A loaded model family that turns images into `.dae` bytes and back.

    The models run through a `Pipeline` (`.pipeline`: device, autocast, layout, tiling,
    compile — its options are this constructor's keywords); the codec adds what is particular
    to a still image: modes and alpha (`media`), quality search and the container.
    """

    def __init__(self, models: Any, **options: Any) -> None:
        self.pipeline = Pipeline(models, **options)
        self.models = models
        self.family = models.family
        self.digest: bytes = models.digest

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
        """`options` are the `Pipeline` options (autocast, channels_last, compile, tiling)."""
        from neurcodec.zoo import load_models

        dt = pick_dtype(dtype)
        models = load_models(name, device=device, dtype=dt, pretrained=pretrained, allow_zero_clip=allow_zero_clip)
        return cls(models, device=device, dtype=dt, **options)

    @property
    def name(self) -> str:
        return self.family.name

    # The modules and geometry are the pipeline's; these read through for API users.
    stage_a = property(lambda self: self.pipeline.stage_a)
    encoder = property(lambda self: self.pipeline.encoder)
    stage_b = property(lambda self: self.pipeline.stage_b)
    device = property(lambda self: self.pipeline.device)
    dtype = property(lambda self: self.pipeline.dtype)
    autocast = property(lambda self: self.pipeline.autocast)

    def latent_hw(self, width: int, height: int) -> tuple[int, int]:
        return self.pipeline.latent_hw(width, height)

    def latent_shape(self, width: int, height: int) -> tuple[int, int, int]:
        return self.pipeline.latent_shape(width, height)

    def encode_latent(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0,1] pixels (B,3,H,W) → conditioning latents (B,16,h,w), float32 on the CPU."""
        return self.pipeline.encode_latents(pixels)

    def generate(self, latent: torch.Tensor, size: tuple[int, int], settings: DecodeSettings, progress: ProgressFn | None = None) -> torch.Tensor:
        """Conditioning latent (1,16,h,w) → [0,1] image (1,3,H,W) of `size` = (width, height)."""
        return self.pipeline.generate(latent, size, settings, progress=progress)[0]

    def _to_tensor(self, rgb: Image.Image) -> torch.Tensor:
        import numpy as np

        array = np.asarray(rgb.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1)[None]

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
        search_steps: int = 0,
        progress: ProgressFn | None = None,
    ) -> bytes:
        """Compress a PIL image (any mode `media.prepare` accepts) into `.dae` bytes.

        `quality` 0..100 (higher = more bits) or `bpp` (highest quality whose whole file fits);
        `seed`/`steps`/`guidance`/`sampler` are stored as the file's decode defaults.
        `search_steps` > 0: that many gradient steps search for a latent that decodes closer to
        the image (`latent_search.py`; much slower, the same format); `progress(done, total)` follows them.
        """
        check_rate(quality, bpp)
        if search_steps < 0:
            raise UsageError(f"search_steps must be >= 0, got {search_steps}")
        limits.check_pixels(*image.size, what="image")
        rgb, meta = media.prepare(image)
        width, height = meta.size
        if width > MAX_DIM or height > MAX_DIM:
            raise InputError(f"image is {width}×{height}; the largest side this format holds is {MAX_DIM}")
        if search_steps:
            check_searchable(self.pipeline, width, height)  # before the encoder runs
        decode = settings_over(self.family.decode, steps=steps, guidance=guidance, sampler=sampler, seed=DEFAULT_SEED if seed is None else seed)
        pixels = self._to_tensor(rgb)
        latent = self.encode_latent(pixels)[0]
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
                effnet_scale=self.pipeline.effnet_factor,
                seed=decode.seed,
                decode=decode,
            )
            return write_image(header, encode_latent(symbols), extra)

        def fit(target: int) -> tuple[int, bytes]:
            """The highest quality whose file fits `target` bytes, and that file."""
            cache: dict[int, bytes] = {}

            def size_at(q: int) -> int:
                cache[q] = build(q)
                return len(cache[q])

            found = search_step(size_at, target)
            return found.q, cache.get(found.q) or build(found.q)

        target = None if bpp is None else math.floor(bpp * width * height / 8)
        q = self.family.default_quality if quality is None else quality
        if search_steps:  # for the step the file will use
            if target is not None:  # the fit before the search; the latent found costs more, so it is searched again
                q, _ = fit(target)
            step = step_from_index(quality_to_step_index(q))
            latent = search_latent(self.pipeline, pixels, latent[None], step, search_steps, progress)[0]
        return build(q) if target is None else fit(target)[1]

    def read(self, data: bytes):
        """Parse a `.dae` image made by this model (refusing other models with their name)."""
        return read_image(data, model=self.name, weights_digest=self.digest)

    def settings_for(
        self, header: ImageHeader, *, steps: int | None = None, guidance: float | None = None, sampler: str | None = None, seed: int | None = None
    ) -> DecodeSettings:
        """The settings a decode of this file runs with: the given values over the file's.
        Steps the file asks for are capped (`limits`); steps given here are the caller's own."""
        stored = header.decode_settings(self.family.decode)
        if steps is None:
            limits.check_steps(stored.steps)
        return settings_over(stored, steps=steps, guidance=guidance, sampler=sampler, seed=seed)

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
        dae, latent = self._latent(data)
        settings = self.settings_for(dae.header, steps=steps, guidance=guidance, sampler=sampler, seed=seed)
        pixels = self.generate(latent, (dae.header.width, dae.header.height), settings, progress)
        return self._image(pixels, dae)

    def variations(self, data: bytes, n: int, *, progress: ProgressFn | None = None, **overrides: Any) -> Iterator[Image.Image]:
        """`n` decodes of one file with seeds seed, seed + 1, …, yielded as each is ready; the
        first is the plain decode.

        `overrides`: steps, guidance, sampler, seed, as in `decode`. Needs a sampled decode
        (steps ≥ 2): one step returns the model's single best estimate, not a sample.
        """
        if n < 1:
            raise UsageError(f"variations must be >= 1, got {n}")
        dae, latent = self._latent(data)
        settings = self.settings_for(dae.header, **overrides)
        if settings.steps < 2:
            raise UsageError(
                f"this decode takes {settings.steps} step: it returns the model's single best estimate, "
                "so there is nothing to vary; give --steps 2 or more"
            )
        size = (dae.header.width, dae.header.height)
        for i in range(n):
            yield self._image(self.generate(latent, size, settings.with_overrides(seed=settings.seed + i), progress), dae)

    def interpolate(self, a: bytes, b: bytes, n: int, *, progress: ProgressFn | None = None, **overrides: Any) -> Iterator[Image.Image]:
        """`n` pictures from `a` to `b`, yielded as each is ready: linear in the conditioning
        latent, spherical in the sampling noise (between the two files' seeds). The ends are the
        plain decodes of `a` and `b` with `a`'s settings (and `overrides`: steps, guidance,
        sampler)."""
        if n < 2:
            raise UsageError(f"an interpolation needs n >= 2 pictures, got {n}")
        if "seed" in overrides:
            raise UsageError("interpolate uses each file's own seed; re-encode with --seed to change one")
        dae_a, latent_a = self._latent(a)
        dae_b, latent_b = self._latent(b)
        size_a, size_b = (dae_a.header.width, dae_a.header.height), (dae_b.header.width, dae_b.header.height)
        if size_a != size_b:
            raise UsageError(f"cannot interpolate a {size_a[0]}×{size_a[1]} picture with a {size_b[0]}×{size_b[1]} one: sizes must match")
        settings = self.settings_for(dae_a.header, **overrides)
        for i in range(n):
            alpha = i / (n - 1)
            latent = latent_a if alpha == 0 else latent_b if alpha == 1 else (1 - alpha) * latent_a + alpha * latent_b
            noise = NoiseBlend(dae_a.header.seed, dae_b.header.seed, (alpha,))
            pixels = self.pipeline.generate(latent, size_a, settings, noise=noise, progress=progress)[0]
            yield self._image(pixels, dae_a if alpha < 0.5 else dae_b)

    def _latent(self, data: bytes) -> tuple[Any, torch.Tensor]:
        """The parsed file and its dequantized conditioning latent (1,16,h,w)."""
        dae = self.read(data)
        header = dae.header
        limits.check_pixels(header.width, header.height, what="the file's image")
        alpha = next((body for kind, body in dae.chunks if kind == CHUNK_ALPHA), None)
        if alpha is not None:
            media.open_alpha(alpha, (header.width, header.height))  # refused before the decode, not after
        expected = self.latent_shape(header.width, header.height)
        if tuple(header.latent_shape) != expected:
            raise CorruptFileError(f"latent shape {header.latent_shape} does not fit a {header.width}×{header.height} image (expected {expected})")
        return dae, torch.from_numpy(dequantized_latent(dae))[None]

    def _image(self, pixels: torch.Tensor, dae: Any) -> Image.Image:
        """[0,1] pixels (1,3,H,W) → the PIL image in the file's mode, with its alpha plane."""
        header = dae.header
        rgb = Image.fromarray((pixels[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).astype("uint8"), "RGB")
        alpha = next((body for kind, body in dae.chunks if kind == CHUNK_ALPHA), None)
        meta = media.ImageMeta(size=(header.width, header.height), mode=header.mode, source_mode=header.mode)
        return media.restore(rgb, meta, alpha)


def load(
    name: str | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    pretrained: bool = True,
    allow_zero_clip: bool = False,
    **options: Any,
) -> Codec:
    """Load a model family (default: the registry's default) as a ready `Codec`.

    `options`: the `Pipeline` options (autocast, channels_last, compile, tiling).
    """
    return Codec.from_pretrained(name, device=device, dtype=dtype, pretrained=pretrained, allow_zero_clip=allow_zero_clip, **options)


def load_on(name: str, device: str = "cpu", dtype: str | None = None) -> Codec:
    """`load` as the command line asks for it: `dtype` ("float32"/"bfloat16") is the autocast
    precision over fp32 weights on CPU (bf16 autocast is the fast path where it helps, fp32 turns
    it off) and the weights' dtype elsewhere."""
    options: dict[str, Any] = {}
    if dtype and str(device) == "cpu":
        options["autocast"] = dtype
    elif dtype:
        options["dtype"] = getattr(torch, dtype)
    import neurcodec  # through the package's `load`, the one seam tests and embedders replace

    return neurcodec.load(name, device=device, **options)


def check_rate(quality: int | None, bpp: float | None) -> None:
    """The rate options of an encode (image or video): at most one, each in its range."""
    if quality is not None and bpp is not None:
        raise UsageError("give either quality or bpp, not both")
    if quality is not None and not 0 <= quality <= 100:
        raise UsageError(f"quality must be in 0..100, got {quality}")
    if bpp is not None and not bpp > 0:
        raise UsageError(f"bpp must be > 0, got {bpp}")


def settings_over(stored: DecodeSettings, **overrides: Any) -> DecodeSettings:
    """`stored.with_overrides(...)`, with an out-of-range value reported as a usage error."""
    try:
        return stored.with_overrides(**overrides)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
