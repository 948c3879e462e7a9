"""The README's pictures of results on real images, from the shipped models (``make figures``).

    python docs/make_real_figures.py --data ../shared/data     # docs/real/*.gif, *_sheet.png

Inputs are the first test images of each data set (never seen in training, and not picked):
real SMILEsmileD neutral faces for ``--model smiles`` (aligned to its canonical crop, as
``animate.py`` aligns a photo's), real MNIST 3s for ``--model mnist``.
Each GIF shows the first few side by side, animated forward then back (Euler h = 0.05 as
trained); each sheet is ``python -m jwarp.evaluate --sheet``'s: 16 inputs at t = 0, 0.25, 0.5,
0.75, 1, without and with the deformation grid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jwarp import media, pretrained
from jwarp.data import load_mnist, load_smiles
from jwarp.evaluate import contact_sheet, write_sheet

OUT = Path(__file__).resolve().parent / "real"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="holds SMILEsmileD/ and mnist/")
    parser.add_argument("--out", default=str(OUT), help="output folder")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    crop = pretrained.load("smiles").config.data.canonical_crop  # the faces as it sees them
    inputs = {
        "smiles": load_smiles(data / "SMILEsmileD", "test", crop=crop)[0],
        "mnist": load_mnist(data / "mnist", "test")[0],
    }
    # (images in the GIF, its scale, the sheet's smallest image height): sizes that keep the
    # noisy grey photos' files near 1 MB.
    for name, (n_gif, scale, sheet_px) in {"smiles": (4, 2, 64), "mnist": (8, 3, 128)}.items():
        animator = pretrained.load(name)
        x0 = inputs[name]
        write_sheet(out / f"{name}_sheet.png", contact_sheet(animator, x0[:16]), 16, sheet_px)
        ts = np.linspace(0.0, 1.0, 13, dtype=np.float32)
        frames = np.asarray(animator.frames(jnp.asarray(x0[:n_gif]), ts, direction="boomerang"))
        side_by_side = np.concatenate(list(frames.transpose(1, 0, 2, 3, 4)), axis=2)
        media.write_gif(out / f"{name}.gif", side_by_side, fps=12, scale=scale, pause=0.5)
        print(f"wrote {out / name}.gif and {out / name}_sheet.png")


if __name__ == "__main__":
    main()
