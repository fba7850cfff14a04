"""Regenerate the .dae test vectors (run only on a deliberate format change).

`python tests/vectors/make_vectors.py` writes, next to this file:
  image_tiny.dae / image_tiny.npy       tiny model by code, escapes and a centred channel
  image_checked.dae / image_checked.npy the same symbols with a 32-bit latent check (and the
                                        header flag saying every latent carries one)
  image_named.dae / image_named.npy     model stored by name, decode defaults, optional chunk,
                                        adaptive entropy model
  video_two_groups.dae / video_two_groups.npz   two frame groups (last frame range-coded), END
  version_99.dae                        an image with an unsupported format version
  other_model.dae                       an image made by 'stable-cascade'
and expected.json with the headers the files must parse to. All but image_checked have blobs
without a check, the layout of files written before checks existed (they must keep decoding).
"""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from neurcodec.bitstream import (
    DecodeSettings,
    FrameGroup,
    ImageHeader,
    VideoHeader,
    encode_latent,
    write_image,
    write_video,
)

HERE = Path(__file__).parent


def symbols(seed: int, shape) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.rint(rng.laplace(size=shape) * 2).astype(np.int32)


def main() -> None:
    expected = {}

    s = symbols(1, (4, 3, 5))
    s[0, 0, 0], s[1, 2, 4], s[2] = 500, -70_000, s[2] + 9  # escapes and an offset channel
    h = ImageHeader("tiny", b"\x01\x02\x03\x04", 96, 64, s.shape, step_index=100, seed=7,
                    latent_checks=False)
    (HERE / "image_tiny.dae").write_bytes(write_image(h, encode_latent(s, check_bits=0)))
    np.save(HERE / "image_tiny.npy", s)
    expected["image_tiny"] = dict(model="tiny", width=96, height=64, latent_shape=list(s.shape), seed=7)
    h = replace(h, latent_checks=True)
    (HERE / "image_checked.dae").write_bytes(write_image(h, encode_latent(s, check_bits=32)))
    np.save(HERE / "image_checked.npy", s)
    expected["image_checked"] = dict(expected["image_tiny"], latent_check_bits=32)

    s = symbols(2, (16, 2, 3))
    h = ImageHeader(
        "my-finetune", b"\xde\xad\xbe\xef", 300, 200, s.shape, step_index=60, mode="L",
        orientation=6, effnet_scale=0.75, seed=2**40,
        decode=DecodeSettings("dpmpp-2m", 25, 4.5, 0.7), latent_checks=False,
    )
    (HERE / "image_named.dae").write_bytes(
        write_image(h, encode_latent(s, adaptive=True, check_bits=0), [(0x81, b"hello")])
    )
    np.save(HERE / "image_named.npy", s)
    expected["image_named"] = dict(
        model="my-finetune", width=300, height=200, latent_shape=list(s.shape), seed=2**40,
        mode="L", orientation=6, effnet_scale=0.75, sampler="dpmpp-2m", steps=25, guidance=4.5,
    )

    frames = [symbols(10 + i, (16, 2, 2)) for i in range(3)]
    vh = VideoHeader(
        "tiny", b"\x01\x02\x03\x04", 64, 48, (16, 2, 2), step_index=90,
        fps=Fraction(30000, 1001), time_base=Fraction(1, 90000), frame_count=3, gop=2,
        latent_checks=False,
    )
    groups = [FrameGroup((encode_latent(frames[0], check_bits=0),
                          encode_latent(frames[1], check_bits=0))),
              FrameGroup((encode_latent(frames[2], method=2, check_bits=0),))]
    (HERE / "video_two_groups.dae").write_bytes(write_video(vh, groups))
    np.savez(HERE / "video_two_groups.npz", *frames)
    expected["video_two_groups"] = dict(model="tiny", fps=[30000, 1001], frame_count=3, groups=[2, 1])

    base = (HERE / "image_tiny.dae").read_bytes()
    (HERE / "version_99.dae").write_bytes(base[:3] + bytes([99]) + base[4:])
    s = symbols(3, (16, 2, 2))
    h = ImageHeader("stable-cascade", b"\xaa\xbb\xcc\xdd", 64, 64, s.shape, step_index=100,
                    latent_checks=False)
    (HERE / "other_model.dae").write_bytes(write_image(h, encode_latent(s, check_bits=0)))
    expected["other_model"] = dict(model="stable-cascade")

    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
