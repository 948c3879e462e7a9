"""The README's picture of pair fitting on real photos (``make figures``).

    python docs/make_pair_figures.py --data ../shared/data     # docs/real/pairs.png, pairs.gif

Pairs as in ``benchmarks/bench_pairs.py``: a neutral SMILEsmileD test face and the smiling test
face nearest to it (another person; the first pairs, not picked). For each pair the sheet has
two rows at t = 0, 1/7, ..., 1: the default morph (``animate.py --input a --target b``) and the
warp alone (``--no-morph``); the GIF is the morphs side by side, forward then back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jwarp import media
from jwarp.animation import fit_field, svf_animation
from jwarp.data import load_smiles, nearest_pairs
from jwarp.fit import FitConfig

OUT = Path(__file__).resolve().parent / "real"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="holds SMILEsmileD/")
    parser.add_argument("--pairs", type=int, nargs="+", default=[0, 1, 2], help="pair indices")
    parser.add_argument("--out", default=str(OUT), help="output folder")
    args = parser.parse_args()
    out = Path(args.out)
    sources, targets = nearest_pairs(*load_smiles(Path(args.data) / "SMILEsmileD", "test"),
                                     max(args.pairs) + 1)
    x0, x1 = (jnp.asarray(x[np.array(args.pairs)]) for x in (sources, targets))
    cfg = FitConfig()
    v = fit_field(x0, x1, cfg)
    rows = []
    sheet_ts = np.linspace(0.0, 1.0, 8, dtype=np.float32)
    for i in range(len(args.pairs)):
        for morph in (True, False):
            anim = svf_animation(v[i : i + 1], x0[i : i + 1], x1[i : i + 1], sheet_ts,
                                 "forward", cfg.solver, morph)
            rows.append(np.concatenate(list(np.asarray(anim.frames[:, 0])), axis=1))
    sheet = np.concatenate(rows, axis=0)
    media.write_png(out / "pairs.png", np.repeat(np.repeat(sheet, 2, axis=0), 2, axis=1))
    ts = np.linspace(0.0, 1.0, 13, dtype=np.float32)
    anim = svf_animation(v, x0, x1, ts, "boomerang", cfg.solver, True)
    side_by_side = np.concatenate(list(np.asarray(anim.frames).transpose(1, 0, 2, 3, 4)), axis=2)
    media.write_gif(out / "pairs.gif", side_by_side, fps=12, scale=2, pause=0.5)
    print(f"wrote {out / 'pairs.png'} and {out / 'pairs.gif'}")


if __name__ == "__main__":
    main()
