"""Side-by-side pictures: original | JPEG q1 | AVIF at about neurcodec's size | neurcodec.

Each panel is labelled with its codec and measured bpp, so the comparison is at (near) equal
rate, not equal quality. Writes one PNG per image.

    python benchmarks/side_by_side.py ../shared/data/kodak/kodim{04,14,23}.png -o examples/
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from PIL import Image, ImageDraw

import neurcodec
from neurcodec.bench.codecs import make_codec


def _bpp(data: bytes, image: Image.Image) -> float:
    return 8 * len(data) / (image.width * image.height)


def avif_near(image: Image.Image, target_bytes: int) -> tuple[bytes, Image.Image]:
    """The AVIF quality whose size is closest to `target_bytes` (AVIF's floor may be above it)."""
    avif = make_codec("avif")
    best = None
    for q in range(0, 101, 2):
        data = avif.encode(image, q)
        if best is None or abs(len(data) - target_bytes) < abs(len(best) - target_bytes):
            best = data
        if len(data) > target_bytes:
            break
    assert best is not None
    return best, avif.decode(best, image.size)


def panel(image: Image.Image, label: str) -> Image.Image:
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    box = draw.textbbox((6, 6), label)
    draw.rectangle((box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3), fill=(0, 0, 0))
    draw.text((6, 6), label, fill=(255, 255, 255))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("-o", "--out", type=Path, default=Path("examples"))
    parser.add_argument("--model", default=None)
    parser.add_argument("-q", "--quality", type=int, default=None)
    args = parser.parse_args()

    codec = neurcodec.load(args.model)
    jpeg = make_codec("jpeg")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for path in args.images:
        image = Image.open(path).convert("RGB")
        ours = codec.encode(image, quality=args.quality)
        ours_img = codec.decode(ours)
        jpeg_data = jpeg.encode(image, 1)
        jpeg_img = jpeg.decode(jpeg_data, image.size)
        avif_data, avif_img = avif_near(image, len(ours))
        panels = [
            panel(image, "original"),
            panel(jpeg_img, f"JPEG q1  {_bpp(jpeg_data, image):.3f} bpp"),
            panel(avif_img, f"AVIF  {_bpp(avif_data, image):.3f} bpp"),
            panel(ours_img, f"neurcodec {codec.name}  {_bpp(ours, image):.3f} bpp"),
        ]
        sheet = Image.new("RGB", (image.width * 2, image.height * 2))
        for i, p in enumerate(panels):
            sheet.paste(p, ((i % 2) * image.width, (i // 2) * image.height))
        target = args.out / f"side_by_side_{path.stem}.png"
        sheet.save(target, optimize=True)
        summary.append({"image": path.name, "file": str(target), "neurcodec_bpp": _bpp(ours, image), "jpeg_q1_bpp": _bpp(jpeg_data, image), "avif_bpp": _bpp(avif_data, image)})
        print(json.dumps(summary[-1]), flush=True)


if __name__ == "__main__":
    main()
