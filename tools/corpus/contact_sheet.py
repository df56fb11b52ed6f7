#!/usr/bin/env python3
"""Contact sheets for reviewing candidate images by eye (numpy/Pillow only).

    python tools/corpus/contact_sheet.py OUT_PREFIX FILE... [--cols 8 --cell 160]

Each cell shows the image (alpha composited on a checkerboard) and its index;
OUT_PREFIX.txt lists index -> path.
"""
import argparse
from pathlib import Path

from PIL import Image, ImageDraw


def checker(size, step=8):
    im = Image.new("RGB", size, (200, 200, 200))
    d = ImageDraw.Draw(im)
    for y in range(0, size[1], step):
        for x in range(0, size[0], step):
            if (x // step + y // step) % 2:
                d.rectangle([x, y, x + step - 1, y + step - 1], fill=(150, 150, 150))
    return im


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--cell", type=int, default=160)
    a = ap.parse_args()
    per = a.cols * a.rows
    lines = []
    for s in range(0, len(a.files), per):
        chunk = a.files[s:s + per]
        sheet = Image.new("RGB", (a.cols * a.cell, a.rows * (a.cell + 14)), "white")
        d = ImageDraw.Draw(sheet)
        for i, f in enumerate(chunk):
            idx = s + i
            lines.append(f"{idx}\t{f}")
            try:
                im = Image.open(f)
                im.draft("RGB", (a.cell, a.cell))
                im = im.convert("RGBA")
            except Exception as e:  # noqa: BLE001
                d.text((a.cell * (i % a.cols) + 2, (a.cell + 14) * (i // a.cols)), f"ERR {idx}", fill="red")
                continue
            im.thumbnail((a.cell - 4, a.cell - 4))
            bg = checker(im.size)
            bg.paste(im, (0, 0), im)
            x, y = a.cell * (i % a.cols), (a.cell + 14) * (i // a.cols)
            sheet.paste(bg, (x + 2, y + 2))
            d.text((x + 2, y + a.cell), f"{idx} {Path(f).stem[:20]}", fill="black")
        sheet.save(f"{a.out}_{s // per:02d}.png")
    Path(a.out + ".txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
