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
    if "fei" in pretrained.names():
        compare_sheet(inputs["smiles"][:8], data / "photos", out / "l2_vs_gan.png")


def compare_sheet(faces: np.ndarray, photos: Path, path: Path) -> None:
    """The paired (L2, ``fei``) and unpaired (GAN, ``smiles``) models side by side on faces that
    may be published: the first SMILEsmileD test faces and the faces of the MIT photos, aligned
    alike. Each row: the input, then t = 0.5 and 1 of ``fei``, then of ``smiles``."""
    from jwarp.faces.align import crop_face
    from jwarp.faces.photo import convert, find
    from jwarp.images import read_input

    fei, smiles = pretrained.load("fei"), pretrained.load("smiles")
    crop, size = smiles.config.data.canonical_crop, smiles.config.data.image_size
    extra = []
    for f in sorted(photos.glob("*.jpg"))[:8]:
        image = read_input(f, None, None, keep_aspect=True).image
        extra += [crop_face(convert(image, 1), m.to_crop, size) for m in find(image, crop, size)]
    x0 = jnp.asarray(np.concatenate([faces, np.stack(extra[:8])]))
    ts = jnp.asarray([0.5, 1.0], jnp.float32)
    a, b = np.asarray(fei.frames(x0, ts)), np.asarray(smiles.frames(x0, ts))
    rows = np.stack([np.asarray(x0), a[0], a[1], b[0], b[1]], axis=1)  # [N, 5, H, W, 1]
    n = len(rows)
    grid = rows.transpose(0, 2, 1, 3, 4).reshape(n * size, 5 * size, 1)
    grid = np.kron(np.clip(grid[..., 0], 0, 1), np.ones((2, 2)))  # 2x, nearest
    media.write_png(path, (grid * 255).round().astype(np.uint8)[..., None].repeat(3, -1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
