"""neurcodec itself as one more benchmarked codec: `-q` is the knob, one curve per `--steps`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PIL import Image

from neurcodec.bench.codecs.base import Codec

# Covers roughly 0.01–1 bpp once the model's -q → step mapping is in; the CLI's --quality overrides.
# The sweep spans the ultra-low rates these models live at (tiny: 0.005-0.05 bpp on Kodak).
DEFAULT_QUALITIES = (0, 10, 20, 30, 50)


class ImageCodecLike(Protocol):
    """What the bench needs from `neurcodec.codec.Codec` (lets tests use a small fake)."""

    def encode(self, image: Image.Image, quality: int | None = None, bpp: float | None = None) -> bytes: ...

    def decode(
        self,
        data: bytes,
        steps: int | None = None,
        guidance: float | None = None,
        sampler: str | None = None,
        seed: int | None = None,
    ) -> Image.Image: ...


class NeuralCodec(Codec):
    """A loaded neurcodec model at fixed decode settings.

    The seed is fixed so that a rerun reproduces the same decodes (on one platform).
    """

    parallel_safe = False  # one model in the main process; torch uses the cores itself

    def __init__(
        self,
        backend: ImageCodecLike,
        model: str,
        steps: int | None = None,
        guidance: float | None = None,
        sampler: str | None = None,
        seed: int = 0,
        qualities: Sequence[int] = DEFAULT_QUALITIES,
    ) -> None:
        self.backend = backend
        self.model = model
        self.steps = steps
        self.guidance = guidance
        self.sampler = sampler
        self.seed = seed
        self.qualities = tuple(qualities)
        self.name = f"neurcodec-{model}" + (f"-s{steps}" if steps is not None else "")
        settings = ", ".join(
            f"{k} {v}"
            for k, v in (("steps", steps), ("guidance", guidance), ("sampler", sampler), ("seed", seed))
            if v is not None
        )
        self.description = f"neurcodec, model {model} ({settings})"

    def encode(self, img: Image.Image, quality: int) -> bytes:
        return self.backend.encode(img, quality=quality)

    def decode(self, data: bytes, size: tuple[int, int]) -> Image.Image:
        return self.backend.decode(
            data, steps=self.steps, guidance=self.guidance, sampler=self.sampler, seed=self.seed
        )


def load_neural(
    model: str,
    steps: Sequence[int | None] = (None,),
    qualities: Sequence[int] = DEFAULT_QUALITIES,
    device: str | None = None,
    guidance: float | None = None,
    sampler: str | None = None,
    seed: int = 0,
) -> list[NeuralCodec]:
    """Load `model` once and return one codec per decode step count (None = model default)."""
    import neurcodec

    backend = neurcodec.load(model, device=device) if device else neurcodec.load(model)
    return [
        NeuralCodec(backend, model, s, guidance=guidance, sampler=sampler, seed=seed, qualities=qualities)
        for s in (steps or (None,))
    ]
