"""``jwarp-animate`` (and ``python animate.py``): turn images into animated GIFs with a trained
Warping Neural ODE, a shipped model, or one fitted pair.

    jwarp-animate                                   # test images of the latest run in runs/
    jwarp-animate --input me.png --t-steps 120 --out me.gif
    jwarp-animate --model smiles --input 'photos/*.jpg' --out smiles/   # faces in place
    jwarp-animate --model mnist --input three.png --out four.gif        # shipped model
    jwarp-animate --input 'faces/*.png' --direction boomerang --sheet --grid
    jwarp-animate --input a.png --target b.png      # fit one pair, no training set needed

Outputs go to animations/ unless --out names a .gif, .webp or .mp4 file or a folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from jwarp.choices import (
    DIRECTIONS,
    FIT_SMOOTHNESS,
    OUTPUT_FORMATS,
    RESIZE_MODES,
    SIMILARITIES,
)
from jwarp.cli import ArgumentParser, run_cli
from jwarp.errors import AnimationError
from jwarp.render_options import (
    MAX_FIT_SIZE,
    MAX_FIT_STEPS,
    MAX_FPS,
    MAX_PAUSE,
    MAX_SCALE,
    MAX_SHEET,
    MAX_SIDE,
    MAX_T_STEPS,
    MIN_FPS,
    RenderOptions,
    sheet_expected,
)

PROG = "jwarp-animate"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The flags of ``jwarp-animate``; each default is ``RenderOptions``'s (one definition)."""
    defaults = {f.name: f.default for f in dataclasses.fields(RenderOptions)}
    parser = ArgumentParser(
        prog=prog,
        description="Animate images with a trained run, or fit one image pair.",
        epilog="Without --input: a few test images of the run. Without a run: --input and "
        "--target fit a stationary field to the pair.",
    )
    parser.add_argument(
        "--workdir", help=f"run folder (default: the latest under {defaults['runs_dir']}/)"
    )
    parser.add_argument(
        "--model",
        help="a shipped model instead of a run: smiles (real faces start to smile) or mnist "
        "(real digits 3 -> 4) (default: none, use a run)",
    )
    parser.add_argument("--checkpoint", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument(
        "--input",
        nargs="+",
        default=list(defaults["inputs"]),
        help="start image(s) or glob patterns (default: a few test images of the run)",
    )
    parser.add_argument(
        "--target",
        nargs="+",
        default=list(defaults["targets"]),
        help="end image(s): pair models/fit (default: none)",
    )
    parser.add_argument(
        "--out",
        help="a .gif, .webp or .mp4 file (one animation) or a folder (default: animations/); "
        "any other extension is an error",
    )
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default=defaults["format"],
        help="format of each animation written into a folder --out (a file --out takes its "
        'extension\'s; default: gif); mp4 needs pip install "jwarp[video]" (from a checkout: '
        'pip install -e ".[video]")',
    )
    parser.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=defaults["resize"],
        help="a photo that is not square: crop its centre, pad the whole photo (the output "
        "keeps its aspect), or stretch it (resampled back to its aspect); pair fitting keeps "
        "the input's own aspect and fits the target to it (default: %(default)s)",
    )
    parser.add_argument(
        "--t-steps",
        type=int,
        default=defaults["t_steps"],
        help=f"frames from t=0 to t=1, 2 to {MAX_T_STEPS} (default: %(default)s)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=defaults["fps"],
        help=f"frames per second, {MIN_FPS:g} to {MAX_FPS:g} (default: %(default)s)",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=defaults["pause"],
        help=f"seconds to hold the last frame, 0 to {MAX_PAUSE:g} (default: %(default)s)",
    )
    parser.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default=defaults["direction"],
        help="forward, backward (from the end frame) or boomerang (forward, then back) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--frames-dir", help="also write the frames as PNGs into this folder (default: none)"
    )
    parser.add_argument(
        "--sheet",
        type=int,
        nargs="?",
        const=8,
        metavar="N",
        help=f"also write a contact sheet of N evenly spaced frames, 1 to {MAX_SHEET} "
        "(default: none; N defaults to %(const)s)",
    )
    parser.add_argument(
        "--grid",
        type=int,
        nargs="?",
        const=-1,
        metavar="SPACING",
        help="draw the deformation grid over the frames, a line every SPACING >= 2 pixels "
        "(default: none; SPACING defaults to size / 8, at least 4)",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=defaults["scale"],
        help=f"integer upscaling of the animation, 1 to {MAX_SCALE}, at most {MAX_SIDE} pixels "
        "on a side (default: %(default)s)",
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        default=defaults["fit"],
        help="fit --input/--target, ignore runs (default: off, use a run when there is one)",
    )
    parser.add_argument(
        "--size",
        type=int,
        help=f"pair fitting: the longer side (default: own, <={MAX_FIT_SIZE})",
    )
    parser.add_argument(
        "--fit-size",
        type=int,
        default=defaults["fit_size"],
        help="pair fitting: fit resolution (default: %(default)s)",
    )
    parser.add_argument(
        "--fit-steps",
        type=int,
        default=defaults["fit_steps"],
        help=f"pair fitting: L-BFGS steps at the finest of the pyramid's levels, 1 to "
        f"{MAX_FIT_STEPS} (coarser levels take twice as many each; default: %(default)s)",
    )
    parser.add_argument(
        "--fit-similarity",
        choices=SIMILARITIES,
        default=defaults["fit_similarity"],
        help="pair fitting: l2 (squared error) or lncc (local normalised cross-correlation: "
        "tolerates brightness differences; default: %(default)s)",
    )
    parser.add_argument(
        "--fit-smoothness",
        type=float,
        default=defaults["fit_smoothness"],
        help="pair fitting: weight of the velocity's bending energy; lower fits closer, higher "
        f"moves more smoothly (default: {FIT_SMOOTHNESS})",
    )
    parser.add_argument(
        "--morph",
        action=argparse.BooleanOptionalAction,
        default=defaults["morph"],
        help="pair fitting: blend the input carried forward with the target carried backward "
        "along the fitted flow, so the animation ends exactly on the target (--no-morph: warp "
        "the input alone, as a trained model does; default: "
        f"--{'' if defaults['morph'] else 'no-'}morph)",
    )
    faces = parser.add_mutually_exclusive_group()
    faces.add_argument(
        "--faces",
        dest="find_faces",
        action="store_const",
        const=True,
        default=defaults["find_faces"],
        help="find the faces in each photo, align them and animate them in place, the photo "
        "at its own size and in colour (default: on for models trained on aligned faces, "
        "such as --model smiles, and for --fit when both photos show a face)",
    )
    faces.add_argument(
        "--whole-image",
        dest="find_faces",
        action="store_const",
        const=False,
        help="animate the whole image as the model's input, no face finding (default: off)",
    )
    parser.add_argument(
        "--max-size",
        type=int,
        metavar="PIXELS",
        default=defaults["max_size"],
        help="in place: shrink photos whose longer side is larger (default: keep their size)",
    )
    parser.add_argument(
        "--save-field",
        metavar="PATH",
        help="also write the end frame's displacement u ([H, W, 2] float32 pixels (dy, dx), "
        "frame(s) = input(s + u(s))): to PATH.npy for one animation, else PATH/<name>.npy "
        "(default: none)",
    )
    return parser


def _main(argv: list[str], prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    # Without a number they take their defaults (const); a number given must be one that
    # draws something: 0 is no more "off" than -5 is.
    if args.sheet is not None and not 1 <= args.sheet <= MAX_SHEET:
        raise AnimationError(f"--sheet: {sheet_expected(args.sheet)}")
    if args.grid is not None and args.grid != -1 and args.grid < 2:
        raise AnimationError(f"--grid: expected a spacing >= 2 pixels, got {args.grid}")
    from jwarp.render import render  # JAX: only once the flags are parsed

    options = RenderOptions(
        inputs=tuple(args.input),
        targets=tuple(args.target),
        workdir=args.workdir,
        model=args.model,
        checkpoint=args.checkpoint,
        out=args.out,
        format=args.format,
        resize=args.resize,
        t_steps=args.t_steps,
        fps=args.fps,
        pause=args.pause,
        direction=args.direction,
        frames_dir=args.frames_dir,
        sheet=args.sheet or 0,
        grid=args.grid or 0,
        scale=args.scale,
        fit=args.fit,
        size=args.size,
        fit_size=args.fit_size,
        fit_steps=args.fit_steps,
        fit_similarity=args.fit_similarity,
        fit_smoothness=args.fit_smoothness,
        morph=args.morph,
        save_field=args.save_field,
        find_faces=args.find_faces,
        max_size=args.max_size,
    )
    render(options)
    return 0


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Exit codes: 0 written, 2 bad input (one line on stderr; ``--debug`` for the
    traceback), 130 Ctrl-C (outputs are renamed into place only when complete)."""
    return run_cli(prog, lambda args: _main(args, prog), argv)


if __name__ == "__main__":
    sys.exit(main())
