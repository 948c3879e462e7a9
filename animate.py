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
import sys

from jwarp.animation import RenderOptions, render
from jwarp.cli import ArgumentParser, run_cli
from jwarp.fit import SIMILARITIES, FitConfig


def _main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="animate.py",
        description="Animate images with a trained run, or fit one image pair.",
        epilog="Without --input: a few test images of the run. Without a run: --input and "
        "--target fit a stationary field to the pair.",
    )
    parser.add_argument("--workdir", help="run folder (default: the latest under runs/)")
    parser.add_argument(
        "--model",
        help="a shipped model instead of a run: smiles (real faces start to smile) or mnist "
        "(real digits 3 -> 4)",
    )
    parser.add_argument("--checkpoint", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument("--input", nargs="+", default=[], help="start image(s) or glob patterns")
    parser.add_argument("--target", nargs="+", default=[], help="end image(s): pair models/fit")
    parser.add_argument("--out", help="a .gif file (one animation) or a folder (animations/)")
    parser.add_argument("--t-steps", type=int, default=120, help="frames from t=0 to t=1")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds to hold the last frame")
    parser.add_argument(
        "--direction", choices=("forward", "backward", "boomerang"), default="forward"
    )
    parser.add_argument("--frames-dir", help="also write the frames as PNGs into this folder")
    parser.add_argument(
        "--sheet",
        type=int,
        nargs="?",
        const=8,
        default=0,
        metavar="N",
        help="also write a contact sheet of N evenly spaced frames (default N: 8)",
    )
    parser.add_argument(
        "--grid",
        type=int,
        nargs="?",
        const=-1,
        default=0,
        metavar="SPACING",
        help="draw the deformation grid over the frames (default spacing: size / 8, at least 4)",
    )
    parser.add_argument("--scale", type=int, default=1, help="integer upscaling of the GIF")
    parser.add_argument("--fit", action="store_true", help="fit --input/--target, ignore runs")
    parser.add_argument("--size", type=int, help="pair fitting: image size (default: own, <=256)")
    parser.add_argument("--fit-size", type=int, default=64, help="pair fitting: fit resolution")
    parser.add_argument(
        "--fit-steps",
        type=int,
        default=RenderOptions.fit_steps,
        help="pair fitting: Adam steps at the finest of the pyramid's levels (coarser levels "
        "take twice as many each)",
    )
    parser.add_argument(
        "--fit-similarity",
        choices=SIMILARITIES,
        default=RenderOptions.fit_similarity,
        help="pair fitting: l2 (squared error) or lncc (local normalised cross-correlation: "
        "tolerates brightness differences)",
    )
    parser.add_argument(
        "--fit-smoothness",
        type=float,
        help="pair fitting: weight of the velocity's bending energy (default "
        f"{FitConfig.smoothness}"
        "; lower fits closer, higher moves more smoothly)",
    )
    parser.add_argument(
        "--morph",
        action=argparse.BooleanOptionalAction,
        default=RenderOptions.morph,
        help="pair fitting: blend the input carried forward with the target carried backward "
        "along the fitted flow, so the animation ends exactly on the target (--no-morph: warp "
        "the input alone, as a trained model does)",
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
