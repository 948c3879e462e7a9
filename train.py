"""Train a Warping Neural ODE.

    python train.py --mode l2  --data faces      # paired faces, L2 loss (preset faces_l2)
    python train.py --mode gan --data faces      # unpaired faces, WGAN-GP (preset faces_gan)
    python train.py --mode gan --data digits     # 3 -> 4 (preset digits_gan)
    python train.py --config paper_mnist --data-dir ~/mnist   # the authors' settings

Any field can be set with ``--set section.key=value``; see ``configs/`` and ``jwarp/config.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jwarp.cli import ArgumentParser, run_cli
from jwarp.config import add_config_args, config_from_args
from jwarp.training import train


def _main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="train.py",
        description="Train a Warping Neural ODE.",
        epilog="Presets live in configs/.",
    )
    add_config_args(parser)
    parser.add_argument("--workdir", help="run folder (default: runs/<preset>)")
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the run folder's latest checkpoint (default) or start over",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    config, preset = config_from_args(args)
    workdir = args.workdir or f"runs/{Path(preset).stem}"
    result = train(config, workdir, resume=args.resume, progress=not args.no_progress)
    state = "interrupted" if result.interrupted else "done"
    print(
        f"{state} at step {result.step}: checkpoints in {result.workdir}/checkpoints, "
        f"samples in {result.workdir}/samples, metrics in {result.workdir}/metrics.jsonl"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done or stopped by Ctrl-C/SIGTERM (checkpoint saved), 1 the run failed
    (a non-finite loss), 2 bad input (one line on stderr; ``--debug`` for the traceback)."""
    return run_cli("train.py", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
