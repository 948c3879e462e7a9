"""Face finding on real images: how many faces ``jwarp.faces.detect_faces`` finds, where there
are none, and how long it takes (docs/faces.md).

* photos: ../shared/data/photos (12 colour photos, 16 faces, counted by hand);
* CK+: every frame of every sequence (640x490 grey camera frames, one face each);
* SMILEsmileD and FEI: every image (tight 64x64 and 100x120 crops, one face each);
* images without a face: background patches of the photos away from every face, noise,
  gradients, made-up landscapes, MNIST digits blown up (deterministic).

    python benchmarks/bench_faces.py [--data ../shared/data] [--json out.json] [--quick]
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import numpy as np
from common import write_json
from PIL import Image

from jwarp.faces.detect import THRESHOLD, detect_faces

ROOT = Path(__file__).resolve().parents[1]
PHOTO_FACES = 16  # ../shared/data/photos: faces counted by hand


def _read(path) -> np.ndarray:
    image = Image.open(path)
    grey = image.mode in ("L", "I;16", "I")
    image = image.convert("L" if grey else "RGB")
    x = np.asarray(image, np.float32) / 255
    return x[..., None] if grey else x


def found(files, limit=None) -> tuple[int, int, list[float]]:
    """(images with a face, images, seconds per image)."""
    files = files[:limit] if limit else files
    hits, times = 0, []
    for f in files:
        x = _read(f)
        t0 = time.perf_counter()
        faces = detect_faces(x)
        times.append(time.perf_counter() - t0)
        hits += bool(faces)
    return hits, len(files), times


def without_faces(data: Path, seed: int = 0) -> list[np.ndarray]:
    """Images with no face (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = []
    for path in sorted((data / "photos").glob("*.jpg")):
        x = _read(path)
        boxes = [f.box for f in detect_faces(x)]
        h, w = x.shape[:2]
        for _ in range(6):
            side = int(rng.uniform(64, min(h, w) / 2))
            top, left = int(rng.uniform(0, h - side)), int(rng.uniform(0, w - side))
            clear = all(top + side < b[0] - b[2] or top > b[0] + 2 * b[2] or
                        left + side < b[1] - b[3] or left > b[1] + 2 * b[3] for b in boxes)
            if clear:
                out.append(x[top : top + side, left : left + side])
    for h, w in ((240, 320), (480, 640), (1440, 1920)):
        out.append(rng.uniform(size=(h, w, 3)).astype(np.float32))
        ramp = np.linspace(0, 1, w, dtype=np.float32)
        out.append(np.broadcast_to(ramp[None, :, None], (h, w, 3)).copy())
        rows = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        ridge = 0.6 + 0.1 * np.sin(np.linspace(0, 9, w) + rng.uniform(0, 6))[None, :]
        sky = np.where(rows < ridge, 0.5 + 0.5 * rows, 0.3 * (1 - rows) + 0.1)
        out.append(np.repeat(sky[..., None], 3, axis=-1).astype(np.float32))
    from jwarp.data import load_mnist

    try:
        digits, _ = load_mnist(data / "mnist", "test", 224)
        out += list(digits[:20]) + list(1 - digits[:10])
    except ValueError:
        pass
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "cpu_faces.json"))
    parser.add_argument("--quick", action="store_true", help="at most 500 images a set")
    args = parser.parse_args()
    data = Path(args.data)
    limit = 500 if args.quick else None
    rows = []

    def report(name, hits, n, times, unit="images with a face"):
        rate = 100 * hits / max(n, 1)
        rows.append({"name": name, "found": hits, "of": n, "percent": rate,
                     "median_ms": 1000 * float(np.median(times)) if times else None})
        ms = f"{1000 * np.median(times):6.1f} ms" if times else ""
        print(f"{name:44s} {hits:6d} / {n:<6d} {rate:6.1f} % {unit}  {ms}", flush=True)

    photos = sorted(glob.glob(str(data / "photos" / "*.jpg")) + glob.glob(
        str(data / "photos" / "*.png")))
    t0, count = time.perf_counter(), 0
    times = []
    for p in photos:
        x = _read(p)
        t = time.perf_counter()
        count += len(detect_faces(x))
        times.append(time.perf_counter() - t)
    report("photos (faces counted by hand)", count, PHOTO_FACES, times, "faces")
    ck = sorted(glob.glob(str(data / "CK+" / "cohn-kanade-images" / "*" / "*" / "*.jpg")))
    report("CK+ camera frames, every frame", *found(ck, limit))
    smiles = sorted(glob.glob(str(data / "SMILEsmileD" / "SMILEs" / "*" / "*" / "*.jpg")))
    report("SMILEsmileD 64x64 crops", *found(smiles, limit))
    fei = sorted(glob.glob(str(data / "FEI" / "frontal" / "*.jpg")))
    report("FEI 100x120 frontal images", *found(fei, limit))
    empty = without_faces(data)
    false = sum(bool(detect_faces(x)) for x in empty)
    report("images without a face (false faces)", false, len(empty), [], "with a face found")
    for row in rows:
        row["threshold"] = THRESHOLD
    write_json(args.json, rows)
    print(f"wrote {args.json} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
