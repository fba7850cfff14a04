"""Side-by-side pictures at equal bytes: original | shrink ×4 + AVIF | neurcodec | neurcodec sampled.

The AVIF ×4 panel is Lanczos ×4 down, AVIF, ×4 up, at its highest quality whose file is not
larger than neurcodec's; the last panel decodes the same neurcodec file with `--steps` (the
sampled decode). Each panel is labelled with its codec and measured bpp. One PNG per image.

    python benchmarks/side_by_side.py ../shared/data/kodak/kodim{04,14,23}.png -o examples/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw

import neurcodec
from neurcodec.bench.codecs import make_codec


def _bpp(data: bytes, image: Image.Image) -> float:
    return 8 * len(data) / (image.width * image.height)


def largest_within(name: str, image: Image.Image, budget: int) -> tuple[bytes, Image.Image, int] | None:
    """Anchor `name`'s highest quality whose file is at most `budget` bytes (None if none is)."""
    anchor = make_codec(name)
    best = None
    for q in range(0, 101):
        data = anchor.encode(image, q)
        if len(data) > budget:
            break
        best = (data, q)
    if best is None:
        return None
    return best[0], anchor.decode(best[0], image.size), best[1]


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
    parser.add_argument("--steps", type=int, default=10, help="steps of the sampled panel")
    parser.add_argument("--guidance", type=float, default=1.0, help="guidance of the sampled panel")
    args = parser.parse_args()

    codec = neurcodec.load(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        image = Image.open(path).convert("RGB")
        ours = codec.encode(image, quality=args.quality)
        ours_img = codec.decode(ours)
        sampled_img = codec.decode(ours, steps=args.steps, guidance=args.guidance)
        avif = largest_within("avif-x4", image, len(ours))
        avif_panel = panel(avif[1], f"shrink x4 + AVIF q{avif[2]}  {_bpp(avif[0], image):.4f} bpp") if avif else panel(
            Image.new("RGB", image.size), "shrink x4 + AVIF: no file this small")
        default = codec.family.decode
        panels = [
            panel(image, "original"),
            avif_panel,
            panel(ours_img, f"neurcodec {codec.name}, {default.steps} step(s)  {_bpp(ours, image):.4f} bpp"),
            panel(sampled_img, f"neurcodec {codec.name}, {args.steps} steps, guidance {args.guidance}  (same file)"),
        ]
        sheet = Image.new("RGB", (image.width * 2, image.height * 2))
        for i, p in enumerate(panels):
            sheet.paste(p, ((i % 2) * image.width, (i // 2) * image.height))
        target = args.out / f"side_by_side_{path.stem}.png"
        sheet.save(target, optimize=True)
        print(json.dumps({"image": path.name, "file": str(target), "neurcodec_bpp": _bpp(ours, image),
                          "avif_x4_bpp": _bpp(avif[0], image) if avif else None, "avif_x4_quality": avif[2] if avif else None}), flush=True)


if __name__ == "__main__":
    main()
