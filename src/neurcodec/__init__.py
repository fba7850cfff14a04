"""neurcodec: a neural image and video codec built on a diffusion autoencoder.

    import neurcodec
    codec = neurcodec.load()                  # the bundled default model ("tiny2")
    data = codec.encode(Image.open("photo.png"), quality=50)
    image = codec.decode(data, steps=10, seed=7)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from neurcodec.codec import Codec


def load(name: str | None = None, **kwargs: Any) -> Codec:
    """Load a model family (default: the registry's default, the bundled `tiny2`) as a ready `Codec`.

    Keywords: `device` ("cpu", "cuda", "mps"), `dtype`, `pretrained` (False builds the modules
    only, instantly on `device="meta"`), `allow_zero_clip`.
    """
    from neurcodec.codec import load as _load

    return _load(name, **kwargs)


def describe(source: Any) -> dict[str, Any]:
    """What a `.dae` (bytes or a binary file, image or video) holds, without loading a model:
    model, size, settings and where the bytes go (what `neurcodec info --json` prints)."""
    from neurcodec.info import describe as _describe

    return _describe(source)


def __getattr__(name: str) -> Any:
    # Heavy imports (torch) only when the codec is actually used.
    if name == "Codec":
        from neurcodec.codec import Codec

        return Codec
    raise AttributeError(f"module 'neurcodec' has no attribute {name!r}")


__all__ = ["Codec", "describe", "load", "__version__"]
