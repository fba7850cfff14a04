"""Pillow plugin: `.dae` files open and save through Pillow, and so through everything built on it
(imageio, viewers, scripts) — in the manner of pillow-heif and pillow-avif-plugin.

    import neurcodec.pillow                  # registers the plugin (or call neurcodec.pillow.register())
    img = Image.open("photo.dae")            # size and mode come from the header; pixels on first use
    img.save("copy.dae", quality=45)         # or bpp=0.05; model=, seed=, steps=, guidance=, sampler=

Opening decodes with the file's own settings (its model, steps, guidance, sampler and seed), so
the pixels equal `neurcodec decode`'s. A video `.dae` opens as a multi-frame image (`n_frames`,
`seek`); frames are decoded in order as they are asked for and kept, so seeking back is free and
seeking forward decodes the frames in between. Writing video goes through `neurcodec encode`.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from typing import IO, Any

from PIL import Image, ImageFile

from neurcodec.bitstream import VideoHeader, read_header
from neurcodec.bitstream.container import MAGIC

FORMAT = "DAE"
EXTENSION = ".dae"
MIME = "image/x-neurcodec-dae"
_SAVE_OPTIONS = ("quality", "bpp", "seed", "steps", "guidance", "sampler")


@functools.lru_cache(maxsize=4)
def _codec(model: str) -> Any:
    """One loaded model per name for the whole process: opening many files loads it once."""
    import neurcodec

    return neurcodec.load(model)


def _accept(prefix: bytes) -> bool:
    return prefix[: len(MAGIC)] == MAGIC


class DaeImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "neurcodec diffusion autoencoder"

    def _open(self) -> None:
        self._data = self.fp.read()
        header = read_header(self._data)  # refuses a bad magic, version or header field
        self._header = header
        self._size = (header.width, header.height)
        self.info["model"] = header.model
        if isinstance(header, VideoHeader):
            from neurcodec.info import describe

            self._mode = "RGB"  # video frames are RGB
            self.n_frames = describe(self._data)["frames"]  # reads the stream; decodes nothing
            self.info["fps"] = float(header.fps)
            self.info["duration"] = 1000.0 / float(header.fps)  # ms per frame, as GIF/APNG report it
        else:
            self._mode = header.mode
            self.n_frames = 1
        self.is_animated = self.n_frames > 1
        self._frame = 0
        self._decoded: list[Image.Image] = []
        self._frames: Iterator[Any] | None = None
        self.tile = []

    def seek(self, frame: int) -> None:
        if not self._seek_check(frame):
            return
        self._frame = frame

    def tell(self) -> int:
        return self._frame

    def _frame_image(self, index: int) -> Image.Image:
        codec = _codec(self._header.model)
        if not isinstance(self._header, VideoHeader):
            return codec.decode(self._data)
        if self._frames is None:
            from neurcodec.video import VideoCodec

            video = VideoCodec(codec)
            self._frames = video.frames(video.open(io.BytesIO(self._data)))
        while len(self._decoded) <= index:
            self._decoded.append(Image.fromarray(next(self._frames), "RGB"))
        return self._decoded[index]

    def load(self) -> Any:
        if self._im is None or getattr(self, "_loaded_frame", None) != self._frame:
            image = self._frame_image(self._frame)
            self.im = image.im
            self._mode = image.mode
            self._loaded_frame = self._frame
        return Image.Image.load(self)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from neurcodec.zoo import default_family

    options = {k: im.encoderinfo[k] for k in _SAVE_OPTIONS if im.encoderinfo.get(k) is not None}
    codec = _codec(im.encoderinfo.get("model") or default_family())
    fp.write(codec.encode(im, **options))


def register() -> None:
    """Teach Pillow to open and save `.dae` (idempotent; importing this module already did)."""
    Image.register_open(FORMAT, DaeImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


register()
