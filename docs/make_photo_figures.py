"""The pictures of faces animated in place in photos (``make figures``): the README's first
picture and docs/faces.md's sheet, from the shipped ``smiles`` model.

    python docs/make_photo_figures.py --data ../shared/data     # docs/real/photo*.gif|png

Only photos that may be published are drawn: ../shared/data/photos (MIT licence, from the
ageitgey/face_recognition repository). Every face of each photo is found and animated in place
as ``animate.py --model smiles`` does; nothing is picked or retouched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from jwarp import media, pretrained
from jwarp.faces.photo import animate_photo

OUT = Path(__file__).resolve().parent / "real"
README_PHOTO = "two_people.jpg"  # two neutral faces, a background, colour
SHEET_SIDE = 280  # the contact sheet: each photo's longer side


def _photo(path: Path, side: int) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image, np.float32) / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="holds photos/")
    parser.add_argument("--out", default=str(OUT), help="output folder")
    args = parser.parse_args()
    photos, out = Path(args.data) / "photos", Path(args.out)
    smiles = pretrained.load("smiles")
    ts = np.linspace(0.0, 1.0, 12, dtype=np.float32)

    frames, _ = animate_photo(smiles, _photo(photos / README_PHOTO, 480), ts, "boomerang")
    media.write_gif(out / "photo.gif", frames, fps=12, pause=0.6)
    print(f"wrote {out / 'photo.gif'}")

    # Every photo: the photo, its last frame, and the difference (brighter: moved more).
    rows = []
    for path in sorted(p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".png")):
        photo = _photo(path, SHEET_SIDE)
        try:
            anim, _ = animate_photo(smiles, photo, np.array([0.0, 1.0], np.float32))
        except ValueError:
            continue
        first, last = anim[0], anim[1]
        moved = np.abs(last.astype(np.int16) - first.astype(np.int16)).max(-1)
        moved = np.repeat(np.clip(moved * 8, 0, 255).astype(np.uint8)[..., None], 3, -1)
        row = np.concatenate([first, last, moved], axis=1)
        pad = SHEET_SIDE - row.shape[0]
        rows.append(np.pad(row, [(0, pad), (0, 3 * SHEET_SIDE - row.shape[1]), (0, 0)],
                           constant_values=255))
    sheet = np.concatenate(rows[: len(rows) // 2 * 2], axis=0)
    half = len(sheet) // 2
    sheet = np.concatenate([sheet[:half], sheet[half:]], axis=1)
    media.write_png(out / "photos_sheet.png", sheet)
    print(f"wrote {out / 'photos_sheet.png'}")


if __name__ == "__main__":
    main()
