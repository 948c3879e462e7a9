"""``jwarp-evaluate`` (and ``python -m jwarp.evaluate``): evaluate a trained run, or pair
fitting, against simple baselines on the same images (the measures: ``jwarp.evaluate``).

    jwarp-evaluate --workdir runs/smiles_gan               # test split, one table
    jwarp-evaluate --workdir runs/mnist_gan --json eval.json
    jwarp-evaluate --fit --n 10                            # pair fitting on 10 faces
    jwarp-evaluate --photos photos/ --model smiles --smiles-dir SMILEsmileD   # whole photos
    jwarp-evaluate --sequences CK+/ --model fei          # paths against real video
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

from jwarp.cli import ArgumentParser, run_cli
from jwarp.errors import EvaluationError

PROG = "jwarp-evaluate"
SPLITS = ("test", "train")
FIT_PAIRS = 10  # --fit without --n


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The flags of ``jwarp-evaluate``; building it imports nothing heavy."""
    parser = ArgumentParser(
        prog=prog,
        description="Evaluate a trained run (or pair fitting) against baselines.",
    )
    parser.add_argument(
        "--workdir", help="run folder written by jwarp-train (default: none; needed without --fit)"
    )
    parser.add_argument(
        "--split", default="test", choices=SPLITS, help="images to use (default: %(default)s)"
    )
    parser.add_argument("--checkpoint", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument("--n", type=int, help="evaluate the first N images (default: all)")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="images per solve (default: %(default)s)"
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        help=f"evaluate pair fitting on --n faces pairs (default --n: {FIT_PAIRS}) instead of "
        "a run (default: off)",
    )
    parser.add_argument(
        "--photos",
        metavar="DIR",
        help="evaluate a face model on the photos under DIR (and its subfolders, totalled "
        "per subfolder), each animated in place as animate.py does: faces found, judged "
        "smiling before and after, pixels changed far from the faces, det J, seconds per "
        "photo (default: none)",
    )
    parser.add_argument(
        "--sequences",
        metavar="DIR",
        help="measure animation paths against real video: every folder under DIR of 3 or "
        "more frames, first neutral, last the peak (the CK+ layout); the model (--model or "
        "--workdir, optional), --fit, --fit --no-morph, the cross-dissolve and the nearer end "
        "frame, each from the first frame: best PSNR of each real in-between frame along the "
        "path, and whether they are met in order (default: none)",
    )
    parser.add_argument(
        "--model",
        help="--photos, --sequences: a shipped model (e.g. smiles) instead of --workdir "
        "(default: none)",
    )
    parser.add_argument(
        "--compare-fit",
        action="store_true",
        help="--workdir on paired data: also fit each test pair (animate.py --fit --no-morph; "
        "it sees the target: a bound for a pure warp) (default: off)",
    )
    parser.add_argument(
        "--compare-model",
        metavar="MODEL",
        help="--workdir: also animate the same test images with another model, a shipped one "
        "(e.g. smiles) or a run folder; it must take the same size, channels and crop "
        "(default: none)",
    )
    parser.add_argument(
        "--smiles-dir",
        metavar="DIR",
        help="the SMILEsmileD checkout the smile judge is fitted on: for --photos, and for a "
        "run on fei (default: a smiles model's own data_dir, if it is there; without one, no "
        "judging)",
    )
    parser.add_argument(
        "--judge",
        choices=("aligned", "unaligned"),
        default="aligned",
        help="--photos: the smile judge fitted on SMILEsmileD's faces aligned as the crops it "
        "judges are, or on its files as they are (default: %(default)s)",
    )
    parser.add_argument(
        "--max-size",
        type=int,
        metavar="PIXELS",
        help="--photos: shrink larger photos to this longer side (default: keep their size)",
    )
    parser.add_argument(
        "--json", help="also write the results to this JSON file (default: none)"
    )
    parser.add_argument(
        "--sheet",
        metavar="IMAGE",
        help="also write a contact sheet (.png, .jpg or .webp): the first 16 images of the "
        "split and their frames at t = 0, 0.25, 0.5, 0.75, 1, without and with the "
        "deformation grid (default: none)",
    )
    return parser


def _main(argv: list[str], prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.n is not None and args.n < 1:
        raise EvaluationError(f"--n: expected >= 1, got {args.n}")
    if args.batch_size < 1:
        raise EvaluationError(f"--batch-size: expected >= 1, got {args.batch_size}")
    from jwarp.cli import output_problem
    from jwarp.outputs import clash

    # An output that cannot be written, or that is an input or the other output, fails now,
    # not after the evaluation.
    outputs = [(flag, Path(path)) for flag, path in
               (("--json", args.json), ("--sheet", None if args.fit else args.sheet)) if path]
    for flag, path in outputs:
        problem = output_problem(path)
        if problem:
            raise EvaluationError(f"{flag} {problem}")
    if args.sheet and not args.fit:
        from jwarp.media import image_format

        try:
            image_format(args.sheet)  # PNG, JPEG or WebP by its extension
        except ValueError as e:
            raise EvaluationError(f"--sheet {e}") from None
    problem = clash(outputs, _inputs(args))
    if problem:
        raise EvaluationError(problem)
    if (args.compare_fit or args.compare_model) and (args.photos or args.sequences or args.fit):
        raise EvaluationError("--compare-fit, --compare-model: compare with a run's model; "
                              "use them with --workdir alone")
    if args.photos:
        return _photos(args)
    if args.sequences:
        return _sequences(args)
    if args.model:
        raise EvaluationError("--model: evaluates photos or sequences; add --photos DIR or "
                              "--sequences DIR (or use --workdir)")
    from jwarp import evaluate  # JAX: only once the flags are parsed

    if args.fit:
        result = evaluate.evaluate_fit(args.n or FIT_PAIRS, split=args.split)
    else:
        if not args.workdir:
            raise EvaluationError("--workdir: expected a run folder (or --fit)")
        if not Path(args.workdir).is_dir():
            raise EvaluationError(f"--workdir {args.workdir}: no such run folder")
        try:
            result = evaluate.evaluate_run(
                args.workdir, args.split, args.checkpoint, args.n, args.batch_size,
                fit=args.compare_fit, other=_other_model(args.compare_model),
                smiles_dir=args.smiles_dir,
            )
        except ValueError as e:  # Animator.load: not a run folder, no such checkpoint
            if isinstance(e, EvaluationError) or type(e) is not ValueError:
                raise
            raise EvaluationError(str(e)) from None
    print(evaluate.format_table(result))
    if args.sheet and not args.fit:
        from jwarp.animation import Animator
        from jwarp.data import load_dataset

        animator = Animator.load(args.workdir, args.checkpoint)
        cfg = animator.config
        x0, x1, _ = load_dataset(cfg.data, args.split, cfg.train.seed)
        x0 = x0[:16]
        x1 = x1[: len(x0)] if animator.needs_target else None
        evaluate.write_sheet(args.sheet, evaluate.contact_sheet(animator, x0, x1), len(x0))
        print(f"wrote {args.sheet}")
    _write_json(args.json, result)
    return 0


def _write_json(path: str | None, result: dict) -> None:
    """``--json PATH``: ``result`` written atomically (nothing without a path)."""
    if path:
        from jwarp.files import atomic_write

        atomic_write(path, (json.dumps(result, indent=2) + "\n").encode())
        print(f"wrote {path}")


_MODEL_FILES = ("config.toml", "model.json", "params.msgpack")  # and checkpoints/


def _inputs(args) -> Iterator[tuple[str, Path]]:
    """The files the evaluation reads: a run's or a model folder's own (``_MODEL_FILES``,
    checkpoints) and its data set's (``_data_files``), the images under ``--photos`` and
    ``--sequences``, and every file of ``--smiles-dir``."""
    from jwarp.data.folders import IMAGE_EXTENSIONS

    shipped = Path(__file__).parents[1] / "pretrained"  # jwarp.pretrained's models
    for flag, name in (("--workdir", args.workdir), ("--model", args.model),
                       ("--compare-model", args.compare_model)):
        for folder in ([] if name is None else [Path(name), shipped / name]):
            if folder.is_dir():
                yield from ((flag, folder / file) for file in _MODEL_FILES)
                yield from ((flag, p) for p in (folder / "checkpoints").rglob("*"))
                yield from _data_files(f"{flag} {name}", folder)
    for flag, folder in (("--photos", args.photos), ("--sequences", args.sequences)):
        if folder is not None:
            yield from ((flag, p) for p in Path(folder).rglob("*")
                        if p.suffix.lower() in IMAGE_EXTENSIONS)
    if args.smiles_dir is not None:  # the checkout: its images and its lists
        yield from _files("--smiles-dir", Path(args.smiles_dir))


def _data_files(named: str, folder: Path) -> Iterator[tuple[str, Path]]:
    """Every file of the data set in ``folder/config.toml`` (``data.data_dir``,
    ``data.fei_dir``), read with tomllib alone (loading checks it later); relative paths from
    the current folder, as the data set is loaded."""
    try:
        data = tomllib.loads((folder / "config.toml").read_text("utf-8")).get("data")
    except (OSError, ValueError):  # unreadable: the evaluation says so, naming it
        return
    for key in ("data_dir", "fei_dir"):
        where = data.get(key) if isinstance(data, dict) else None
        if isinstance(where, str) and where:
            yield from _files(f"{named}'s data.{key}", Path(where))


def _files(named: str, path: Path) -> Iterator[tuple[str, Path]]:
    """``path`` itself (a file) or every file under it (a folder), each named ``named``."""
    if path.is_file():
        yield named, path
    elif path.is_dir():
        yield from ((named, p) for p in path.rglob("*") if p.is_file())


def _sequences(args) -> int:
    """``--sequences DIR``: paths against real in-between frames (``jwarp.faces.sequences``)."""
    if args.model and args.workdir:
        raise EvaluationError("--sequences: give one model: --model NAME or --workdir RUN")
    if args.fit or args.sheet or args.photos:
        raise EvaluationError("--sequences: drop --fit, --sheet and --photos (pair fitting is "
                              "one of its paths)")
    from jwarp.faces import sequences

    try:
        sequences.sequence_folders(args.sequences)
    except ValueError as e:
        raise EvaluationError(str(e)) from None
    animator = None
    if args.model:
        from jwarp import pretrained

        animator = pretrained.load(args.model)
    elif args.workdir:
        from jwarp.animation import Animator

        try:
            animator = Animator.load(args.workdir, args.checkpoint)
        except ValueError as e:
            raise EvaluationError(str(e)) from None
    try:
        result = sequences.evaluate_sequences(args.sequences, animator, print)
    except ValueError as e:  # a sequence without a face, a colour model
        raise EvaluationError(str(e)) from None
    result["model"] = args.model or args.workdir
    print(sequences.format_totals(result))
    _write_json(args.json, result)
    if result["skipped"]:  # the others are measured and written; one line, exit 2
        raise EvaluationError(f"{'; '.join(result['skipped'])} (skipped; the other "
                              f"{len(result['sequences'])} measured)")
    return 0


def _other_model(name: str | None):
    """``--compare-model``: ``(name, Animator)`` of a run folder or a shipped model."""
    if name is None:
        return None
    if Path(name).is_dir():
        from jwarp.animation import Animator

        try:
            return Path(name).name, Animator.load(name)
        except ValueError as e:
            raise EvaluationError(f"--compare-model {name}: {e}") from None
    from jwarp import pretrained

    try:
        return name, pretrained.load(name)
    except ValueError as e:
        raise EvaluationError(f"--compare-model: {e}") from None


def _photos(args) -> int:
    """``--photos DIR``: a face model on whole photos (``jwarp.faces.evaluate``)."""
    if bool(args.model) == bool(args.workdir):
        raise EvaluationError("--photos: give the model to evaluate: --model NAME or --workdir RUN")
    if args.fit or args.sheet:
        raise EvaluationError("--photos: evaluates a model; drop --fit and --sheet")
    from jwarp.faces import evaluate as faces_evaluate

    try:
        faces_evaluate.photo_files(args.photos)
    except ValueError as e:
        raise EvaluationError(str(e)) from None
    if args.model:
        from jwarp import pretrained

        animator = pretrained.load(args.model)
    else:
        from jwarp.animation import Animator

        try:
            animator = Animator.load(args.workdir, args.checkpoint)
        except ValueError as e:
            raise EvaluationError(str(e)) from None
    judge = None
    own = animator.config.data
    smiles = args.smiles_dir
    if smiles is None and own.name == "smiles" and Path(own.data_dir).is_dir():
        smiles = own.data_dir  # the checkout the model was trained on, if it is here
    if smiles:
        from jwarp import judges

        try:
            judge = judges.smile_judge(str(Path(smiles)), aligned=args.judge == "aligned")
        except ValueError as e:  # DataError: not a SMILEsmileD checkout
            raise EvaluationError(f"--smiles-dir: {e}") from None
    else:
        print("note: no SMILEsmileD checkout for the smile judge (--smiles-dir): not judging")
    result = faces_evaluate.evaluate_photos(animator, args.photos, judge, args.max_size, print)
    if judge is not None:
        fitted_on = "aligned faces" if args.judge == "aligned" else "faces as they are"
        result["judge"] = {
            "name": f"smile: logistic regression on HOG of {fitted_on}, real SMILEsmileD "
                    "train split",
            "accuracy": judge.accuracy,
            "smiling_rate_smiling": judge.smiling_rate_smiling,
            "smiling_rate_neutral": judge.smiling_rate_neutral,
        }
    print(faces_evaluate.format_totals(result))
    _write_json(args.json, result)
    return 0


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Exit codes: 0 evaluated, 2 bad input (one line on stderr; ``--debug`` for the
    traceback)."""
    return run_cli(prog, lambda args: _main(args, prog), argv)


if __name__ == "__main__":
    sys.exit(main())
