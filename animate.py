"""Turn images into animated GIFs with a trained Warping Neural ODE, or with one fitted pair.

    python animate.py                                   # test images of the latest run in runs/
    python animate.py --input me.png --t-steps 120 --out me.gif
    python animate.py --model smiles --input 'photos/*.jpg' --out smiles/   # shipped model
    python animate.py --input 'faces/*.png' --direction boomerang --sheet --grid
    python animate.py --input a.png --target b.png      # fit one pair, no training set needed

Outputs go to animations/ unless --out names a .gif file or a folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from jwarp.animation import DIRECTIONS
from jwarp.cli import ArgumentParser, run_cli
from jwarp.fit import SIMILARITIES, FitConfig
from jwarp.render import MAX_FIT_SIZE, RenderOptions, render

# One definition of each default: RenderOptions's (shown in --help as %(default)s).
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RenderOptions)}


def _main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="animate.py",
        description="Animate images with a trained run, or fit one image pair.",
        epilog="Without --input: a few test images of the run. Without a run: --input and "
        "--target fit a stationary field to the pair.",
    )
    parser.add_argument(
        "--workdir", help=f"run folder (default: the latest under {_DEFAULTS['runs_dir']}/)"
    )
    parser.add_argument(
        "--model",
        help="a shipped model instead of a run: smiles (real faces start to smile) or mnist "
        "(real digits 3 -> 4)",
    )
    parser.add_argument("--checkpoint", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument(
        "--input",
        nargs="+",
        default=list(_DEFAULTS["inputs"]),
        help="start image(s) or glob patterns",
    )
    parser.add_argument(
        "--target",
        nargs="+",
        default=list(_DEFAULTS["targets"]),
        help="end image(s): pair models/fit",
    )
    parser.add_argument("--out", help="a .gif file (one animation) or a folder (animations/)")
    parser.add_argument(
        "--t-steps",
        type=int,
        default=_DEFAULTS["t_steps"],
        help="frames from t=0 to t=1 (default: %(default)s)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=_DEFAULTS["fps"],
        help="frames per second (default: %(default)s)",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=_DEFAULTS["pause"],
        help="seconds to hold the last frame (default: %(default)s)",
    )
    parser.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default=_DEFAULTS["direction"],
        help="forward, backward (from the end frame) or boomerang (forward, then back) "
        "(default: %(default)s)",
    )
    parser.add_argument("--frames-dir", help="also write the frames as PNGs into this folder")
    parser.add_argument(
        "--sheet",
        type=int,
        nargs="?",
        const=8,
        default=_DEFAULTS["sheet"],
        metavar="N",
        help="also write a contact sheet of N evenly spaced frames (default N: %(const)s)",
    )
    parser.add_argument(
        "--grid",
        type=int,
        nargs="?",
        const=-1,
        default=_DEFAULTS["grid"],
        metavar="SPACING",
        help="draw the deformation grid over the frames (default spacing: size / 8, at least 4)",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=_DEFAULTS["scale"],
        help="integer upscaling of the GIF (default: %(default)s)",
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        default=_DEFAULTS["fit"],
        help="fit --input/--target, ignore runs",
    )
    parser.add_argument(
        "--size",
        type=int,
        help=f"pair fitting: image size (default: own, <={MAX_FIT_SIZE})",
    )
    parser.add_argument(
        "--fit-size",
        type=int,
        default=_DEFAULTS["fit_size"],
        help="pair fitting: fit resolution (default: %(default)s)",
    )
    parser.add_argument(
        "--fit-steps",
        type=int,
        default=_DEFAULTS["fit_steps"],
        help="pair fitting: Adam steps at the finest of the pyramid's levels (coarser levels "
        "take twice as many each; default: %(default)s)",
    )
    parser.add_argument(
        "--fit-similarity",
        choices=SIMILARITIES,
        default=_DEFAULTS["fit_similarity"],
        help="pair fitting: l2 (squared error) or lncc (local normalised cross-correlation: "
        "tolerates brightness differences; default: %(default)s)",
    )
    parser.add_argument(
        "--fit-smoothness",
        type=float,
        default=_DEFAULTS["fit_smoothness"],
        help="pair fitting: weight of the velocity's bending energy (default "
        f"{FitConfig.smoothness}"
        "; lower fits closer, higher moves more smoothly)",
    )
    parser.add_argument(
        "--morph",
        action=argparse.BooleanOptionalAction,
        default=_DEFAULTS["morph"],
        help="pair fitting: blend the input carried forward with the target carried backward "
        "along the fitted flow, so the animation ends exactly on the target (--no-morph: warp "
        "the input alone, as a trained model does; default: "
        f"--{'' if _DEFAULTS['morph'] else 'no-'}morph)",
    )
    parser.add_argument(
        "--save-field",
        metavar="PATH",
        help="also write the end frame's displacement u ([H, W, 2] float32 pixels (dy, dx), "
        "frame(s) = input(s + u(s))): to PATH.npy for one animation, else PATH/<name>.npy",
    )
    args = parser.parse_args(argv)
    options = RenderOptions(
        inputs=tuple(args.input),
        targets=tuple(args.target),
        workdir=args.workdir,
        model=args.model,
        checkpoint=args.checkpoint,
        out=args.out,
        t_steps=args.t_steps,
        fps=args.fps,
        pause=args.pause,
        direction=args.direction,
        frames_dir=args.frames_dir,
        sheet=args.sheet,
        grid=args.grid,
        scale=args.scale,
        fit=args.fit,
        size=args.size,
        fit_size=args.fit_size,
        fit_steps=args.fit_steps,
        fit_similarity=args.fit_similarity,
        fit_smoothness=args.fit_smoothness,
        morph=args.morph,
        save_field=args.save_field,
    )
    render(options)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 written, 2 bad input (one line on stderr; ``--debug`` for the
    traceback), 130 Ctrl-C (outputs are renamed into place only when complete)."""
    return run_cli("animate.py", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
