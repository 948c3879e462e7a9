"""``jwarp-train`` (and ``python train.py``): train a Warping Neural ODE.

    jwarp-train --mode l2  --data faces      # paired faces, L2 loss (preset faces_l2)
    jwarp-train --mode gan --data faces      # unpaired faces, WGAN-GP (preset faces_gan)
    jwarp-train --mode gan --data digits     # 3 -> 4 (preset digits_gan)
    jwarp-train --config paper_mnist --data-dir ~/mnist   # the authors' settings
    jwarp-train --config paper_faces --distributed --workdir gs://bucket/faces  # every host
    jwarp-train --config smoke --print-config             # the resolved config, no training

Any field can be set with ``--set section.key=value``; the presets are in ``configs/``
(``--list-configs``) and every field is documented in ``jwarp/config.py``. Training is data
parallel over all devices; ``--distributed`` (implied by ``JAX_COORDINATOR_ADDRESS`` or a
multi-host TPU slice) joins the processes of a multi-host run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jwarp.cli import ArgumentParser, run_cli
from jwarp.config_args import add_config_args, config_from_args
from jwarp.presets import presets_listing

PROG = "jwarp-train"
RUNS_DIR = "runs"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The flags of ``jwarp-train``; building it imports nothing heavy."""
    parser = ArgumentParser(
        prog=prog,
        description="Train a Warping Neural ODE.",
        epilog=f"presets (--config NAME; configs/ in a checkout, copy one to edit it):\n"
        f"{presets_listing()}--print-config shows what a preset and the flags resolve to.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the list, a preset a line
    )
    add_config_args(parser)
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the fully resolved config as TOML and exit without training "
        "(default: train)",
    )
    parser.add_argument(
        "--workdir", help=f"run folder (default: {RUNS_DIR}/<preset>, in the current folder)"
    )
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the run folder's latest checkpoint, or start over "
        "(default: --resume)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (default: a progress bar)"
    )
    parser.add_argument(
        "--distributed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one process of a multi-host run: call jax.distributed.initialize() first "
        "(default: when JAX_COORDINATOR_ADDRESS is set or on a multi-host TPU slice)",
    )
    return parser


def _main(argv: list[str], prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.print_config:
        from jwarp.config import to_toml

        sys.stdout.write(to_toml(config_from_args(args)[0]))
        return 0

    from jwarp.stopping import StopRequest

    # Before anything slow (importing JAX with the config, loading data, compiling): a
    # Ctrl-C or SIGTERM in the first seconds ends the command cleanly too, with exit code 0.
    # Each signal is announced at once, even while the first step compiles.
    stop = StopRequest(on_signal=lambda n, training: _announce(prog, n, training))
    try:
        return _train(args, stop)
    finally:
        stop.restore()


def _train(args: argparse.Namespace, stop) -> int:
    config, preset = config_from_args(args)
    if stop.signal is not None:
        print(f"stopped by signal {stop.signal} before training began; nothing changed")
        return 0
    import jax

    from jwarp import parallel
    from jwarp.training import train

    if args.distributed or (args.distributed is None and parallel.multi_process_env()):
        stop.release_sigterm()  # jax.distributed's preemption service takes SIGTERM
        parallel.initialize_distributed()

    workdir = args.workdir or f"{RUNS_DIR}/{Path(preset).stem}"
    result = train(
        config, workdir, resume=args.resume, progress=not args.no_progress, stop=stop
    )
    if jax.process_index() != 0:
        return 0
    if result.states is None:  # stopped during start-up; train said so
        return 0
    state = "interrupted" if result.interrupted else "done"
    outputs = [
        f"{what} in {path}"
        for what, path in (
            ("checkpoints", result.workdir / "checkpoints"),
            ("samples", result.workdir / "samples"),
            ("metrics", result.workdir / "metrics.jsonl"),
        )
        if _written(path)
    ]
    print(f"{state} at step {result.step}" + (f": {', '.join(outputs)}" if outputs else ""))
    return 0


def _written(path) -> bool:
    """Whether the run wrote something at ``path`` (a folder with entries, a file with bytes);
    ``etils.epath`` paths of ``gs://`` run folders too."""
    from jwarp.files import is_remote

    try:
        if path.is_dir():
            return any(path.iterdir())
        return path.exists() and (is_remote(path) or path.stat().st_size > 0)
    except OSError:
        return False


def _announce(prog: str, n: int, training: bool) -> None:
    """What the ``n``-th Ctrl-C or SIGTERM does, said the moment it arrives (the first step's
    compile may hold the loop for minutes)."""
    if n == 1 and training:
        text = ("stopping after the current step, with a checkpoint; Ctrl-C again to stop now, "
                "without one")
    elif n == 1:
        text = "stopping before training begins, with nothing changed; Ctrl-C again to stop now"
    else:
        text = "stopping now, without a checkpoint"
    print(f"\n{prog}: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Exit codes: 0 done or stopped by Ctrl-C/SIGTERM (checkpoint saved), 1 the run failed
    (a non-finite loss), 2 bad input (one line on stderr; ``--debug`` for the traceback)."""
    return run_cli(prog, lambda args: _main(args, prog), argv)


if __name__ == "__main__":
    sys.exit(main())
