"""Builds the held-out photo set that docs/faces.md measures the face model on, one folder per
kind, from ../shared/data (`make photos` builds it, then measures the model on it).

    python docs/make_photo_set.py --data ../shared/data --out /tmp/photo_set

No image here was used in training: the 12 colour photos (MIT licence) and CK+'s camera frames
never were, and the SMILEsmileD and FEI faces come from their test splits. FEI and CK+ are for
research only, with no redistribution: the set is written outside the repository and never
committed; docs/faces.md shows numbers for it, and pictures only of the MIT photos.

* ``colour/``: the 12 photos, a third of them shrunk to 320 px and a few to 160 px (100 to
  2,204 px on the longer side);
* ``grey/``: FEI's neutral test people, 24 neutral SMILEsmileD test faces (64x64), and grey
  copies of six photos;
* ``camera/``: the first (neutral) frame of every CK+ sequence, 640x490 with a time stamp;
* ``paintings/``: photos and CK+ frames turned into paintings by OpenCV's stylisation and
  detail filters;
* ``phone/``: off-centre crops of photos and CK+ frames, 3:4, the face a quarter of the
  width from one side;
* ``noface/``: background patches, a gradient, noise.

Deterministic (seed 0).
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
from PIL import Image

KINDS = ("colour", "grey", "camera", "paintings", "phone", "noface")


def main() -> None:
    import cv2

    from jwarp.data.fei import fei_pairs
    from jwarp.data.folders import smiles_files
    from jwarp.faces.detect import detect_faces

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", required=True, help="a folder outside the repository")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    for kind in KINDS:
        (out / kind).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photos = sorted(glob.glob(str(data / "photos" / "*.jpg")) +
                    glob.glob(str(data / "photos" / "*.png")))
    frames = sorted(glob.glob(str(data / "CK+" / "cohn-kanade-images" / "*" / "*" /
                                  "*_00000001.jpg")))
    for i, p in enumerate(photos):
        image = Image.open(p).convert("RGB")
        if i % 3 == 1:
            image.thumbnail((320, 320))
        elif i % 3 == 2 and max(image.size) > 1000:
            image.thumbnail((160, 160))
        image.save(out / "colour" / f"{Path(p).stem}.png")
    neutral, _ = fei_pairs(data / "FEI", "test")
    for f in neutral:
        Image.open(f).convert("L").save(out / "grey" / f"fei_{f.stem}.png")
    smiles, _ = smiles_files(data / "SMILEsmileD", "test")
    for f in np.array(smiles)[rng.choice(len(smiles), 24, replace=False)]:
        Image.open(f).convert("L").save(out / "grey" / f"smile_{f.stem}.png")
    for p in photos[:6]:
        image = Image.open(p).convert("L")
        image.thumbnail((1024, 1024))
        image.save(out / "grey" / f"photo_{Path(p).stem}.png")
    for f in frames:
        Image.open(f).save(out / "camera" / Path(f).name)
    for i, p in enumerate(photos + frames[::4]):
        bgr = cv2.imread(p, cv2.IMREAD_COLOR)
        scale = 900 / max(bgr.shape[:2])
        if scale < 1:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if i % 2 == 0:
            painted = cv2.stylization(bgr, sigma_s=60, sigma_r=0.45)
        else:
            painted = cv2.detailEnhance(cv2.edgePreservingFilter(bgr, flags=1, sigma_s=80,
                                                                 sigma_r=0.5))
        cv2.imwrite(str(out / "paintings" / f"paint_{i:02d}.png"), painted)
    for i, p in enumerate(photos + frames[1::4]):
        image = np.asarray(Image.open(p).convert("RGB"))
        faces = detect_faces(image.astype(np.float32) / 255)
        if not faces:
            continue
        top, left, height, width = faces[0].box
        cy, cx = top + height / 2, left + width / 2
        rows, cols = image.shape[:2]
        h = min(rows, int(height * rng.uniform(3, 5)))
        w = min(cols, int(h * 0.75))
        fx, fy = rng.choice([0.25, 0.75]), rng.uniform(0.25, 0.4)
        y0 = int(np.clip(cy - fy * h, 0, rows - h))
        x0 = int(np.clip(cx - fx * w, 0, cols - w))
        Image.fromarray(image[y0 : y0 + h, x0 : x0 + w]).save(out / "phone" / f"phone_{i:02d}.jpg",
                                                              quality=88)
    for i, p in enumerate(photos[:6]):
        image = np.asarray(Image.open(p).convert("RGB"))
        h, w = image.shape[:2]
        Image.fromarray(image[: h // 5, : w // 4]).save(out / "noface" / f"background_{i}.png")
    ramp = np.linspace(0, 255, 640).astype(np.uint8)
    Image.fromarray(np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (480, 640, 3)))
                    ).save(out / "noface" / "gradient.png")
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(
        out / "noface" / "noise.png")
    for kind in KINDS:
        print(f"{kind}: {len(list((out / kind).iterdir()))} images")


if __name__ == "__main__":
    main()
