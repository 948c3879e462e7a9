"""Regenerates the README's example GIFs in docs/ from trained runs (``make docs``).

    python train.py --config faces_l2     # runs/faces_l2
    python train.py --config faces_gan    # runs/faces_gan
    python train.py --config digits_gan   # runs/digits_gan
    python docs/make_gifs.py              # docs/*.png inputs and docs/*.gif animations

Inputs are test images (never seen in training), written as PNGs beside their GIFs; each GIF
is what ``animate.py`` writes for them (boomerang, Euler h = 0.05 as trained). Runs that do not
exist are skipped; the pair fit needs none.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jwarp import media
from jwarp.data import digits, faces
from jwarp.render import RenderOptions, render

DOCS = Path(__file__).resolve().parent


def _png(path: Path, image: np.ndarray, scale: int) -> str:
    media.write_png(path, np.repeat(np.repeat(image, scale, 0), scale, 1))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs", help="folder holding the trained runs")
    parser.add_argument("--faces", type=int, default=1, help="test faces per model")
    parser.add_argument("--digits", type=int, default=2, help="test 3s")
    args = parser.parse_args()
    runs = Path(args.runs)
    common = dict(t_steps=16, fps=12, pause=0.5, direction="boomerang")

    x0, x1 = faces(args.faces, split="test")
    face_inputs = [_png(DOCS / f"face{i}.png", x0[i], 2) for i in range(args.faces)]
    face_targets = [_png(DOCS / f"face{i}_smile.png", x1[i], 2) for i in range(args.faces)]
    # The PNGs are 2x: animate at the data's 64 px, then scale the GIF by 2 as well.
    face_inputs_64 = [_png(DOCS / f".face{i}_64.png", x0[i], 1) for i in range(args.faces)]
    face_targets_64 = [_png(DOCS / f".face{i}_smile_64.png", x1[i], 1) for i in range(args.faces)]
    threes, _ = digits("test")
    digit_inputs = [_png(DOCS / f"three{i}.png", threes[i], 3) for i in range(args.digits)]
    digit_inputs_32 = [_png(DOCS / f".three{i}_32.png", threes[i], 1) for i in range(args.digits)]

    jobs = [
        ("faces_l2", face_inputs_64, (), 2),
        ("faces_gan", face_inputs_64, (), 2),
        ("digits_gan", digit_inputs_32, (), 3),
    ]
    for run, inputs, targets, scale in jobs:
        if not (runs / run / "checkpoints").is_dir():
            print(f"skipping {run}: no run in {runs / run}")
            continue
        for i, image in enumerate(inputs):
            out = DOCS / f"{run}_{i}.gif"
            render(RenderOptions(inputs=(image,), targets=targets, workdir=str(runs / run),
                                 out=str(out), scale=scale, **common))
    for i in range(args.faces):
        render(RenderOptions(inputs=(face_inputs_64[i],), targets=(face_targets_64[i],),
                             fit=True, out=str(DOCS / f"pair_fit_{i}.gif"), scale=2, **common))
    for hidden in DOCS.glob(".*_[0-9][0-9].png"):
        hidden.unlink()
    print(f"inputs: {', '.join(face_inputs + face_targets + digit_inputs)}")


if __name__ == "__main__":
    main()
