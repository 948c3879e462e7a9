"""Train a Warping Neural ODE.

    python train.py --mode l2  --data faces      # paired faces, L2 loss (preset faces_l2)
    python train.py --mode gan --data faces      # unpaired faces, WGAN-GP (preset faces_gan)
    python train.py --mode gan --data digits     # 3 -> 4 (preset digits_gan)
    python train.py --config paper_mnist --data-dir ~/mnist   # the authors' settings
    python train.py --config paper_faces --distributed --workdir gs://bucket/faces  # every host

Any field can be set with ``--set section.key=value``; see ``configs/`` and ``jwarp/config.py``.
Training is data parallel over all devices; ``--distributed`` (implied by
``JAX_COORDINATOR_ADDRESS`` or a multi-host TPU slice) joins the processes of a multi-host run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jwarp.cli import ArgumentParser, run_cli
from jwarp.config_args import add_config_args, config_from_args
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
    parser.add_argument(
        "--distributed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one process of a multi-host run: call jax.distributed.initialize() first "
        "(default: when JAX_COORDINATOR_ADDRESS is set or on a multi-host TPU slice)",
    )
    args = parser.parse_args(argv)
    config, preset = config_from_args(args)

    import jax

    from jwarp import parallel

    if args.distributed or (args.distributed is None and parallel.multi_process_env()):
        parallel.initialize_distributed()

    workdir = args.workdir or f"runs/{Path(preset).stem}"
    result = train(config, workdir, resume=args.resume, progress=not args.no_progress)
    if jax.process_index() != 0:
        return 0
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
