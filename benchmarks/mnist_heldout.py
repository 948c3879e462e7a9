"""How a 3 -> 4 model fares on 3s framed or drawn unlike MNIST's test split.

MNIST's own 3s are 28x28 digits zero-padded to 32x32 (``jwarp.data.mnist_labelled``). Other
people's 3s are framed and drawn differently: resized to 32x32 rather than padded, larger or
smaller in the frame, thicker or thinner, shifted, turned, softer
(``jwarp.data.reframed_digits``). Each variant is a deterministic change of the real test 3s
and 4s. The judge (an RBF SVM fitted on real training digits, ``jwarp.judges.digit_judge``)
reports how many real 4s of the same variant it still calls 4 (its ceiling there) beside how
many warped 3s it calls 4. Prints a table; ``--json`` writes it.

    python benchmarks/mnist_heldout.py --data-dir ../shared/data/mnist \
        [--model mnist | --workdir runs/mnist_gan] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from PIL import Image

from jwarp import judges
from jwarp.data import mnist_labelled, reframed_digits


def _resized_28(x32: np.ndarray) -> np.ndarray:
    """The 28x28 digits inside MNIST's 2 px padding resized to 32x32 instead (bilinear), as
    ``torchvision.transforms.Resize(32)`` frames them."""
    out = [np.asarray(Image.fromarray(img).resize((32, 32), Image.Resampling.BILINEAR))
           for img in x32[:, 2:30, 2:30, 0]]
    return np.clip(np.stack(out), 0, 1)[..., None]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="folder with MNIST's t10k IDX files")
    p.add_argument("--model", default="mnist", help="a shipped model (default mnist)")
    p.add_argument("--workdir", help="a run folder instead of --model")
    p.add_argument("--json", help="also write the table here")
    args = p.parse_args(argv)

    import jax.numpy as jnp

    from jwarp import pretrained
    from jwarp.animation import Animator

    animator = Animator.load(args.workdir) if args.workdir else pretrained.load(args.model)
    x, y = mnist_labelled(args.data_dir, "test", 32, (3, 4))
    judge = judges.digit_judge(32, args.data_dir)
    framings = {"as MNIST (padded)": x, "resized 28->32": _resized_28(x),
                **reframed_digits(x)}
    rows = {}
    print(f"{'framing':18s} {'real 3s as 4':>13s} {'real 4s as 4':>13s} {'warped 3s as 4':>15s}")
    for name, v in framings.items():
        threes, fours = v[y == 3], v[y == 4]
        out = np.asarray(animator.frames(jnp.asarray(threes), jnp.array([1.0]))[-1])
        row = {"real_3_as_4_pct": 100 * float(np.mean(judge.predict(threes) == 4)),
               "real_4_as_4_pct": 100 * float(np.mean(judge.predict(fours) == 4)),
               "warped_3_as_4_pct": 100 * float(np.mean(judge.predict(out) == 4))}
        rows[name] = row
        print(f"{name:18s} {row['real_3_as_4_pct']:13.1f} {row['real_4_as_4_pct']:13.1f} "
              f"{row['warped_3_as_4_pct']:15.1f}")
    held = [r["warped_3_as_4_pct"] for k, r in rows.items() if k != "as MNIST (padded)"]
    print(f"held-out framings: mean {np.mean(held):.1f} %, worst {np.min(held):.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"framings": rows, "held_out_mean_pct": float(np.mean(held)),
                       "held_out_worst_pct": float(np.min(held))}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
