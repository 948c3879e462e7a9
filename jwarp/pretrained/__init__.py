"""Trained generators that ship with the package: animate without training.

    python animate.py --model smiles --input 'photos/*.jpg' --out smiles/
    python animate.py --model mnist --input three.png --out four.gif

Each model is a folder beside this file: ``config.toml`` (the run's resolved configuration),
``params.msgpack`` (the generator's inference parameters, flax's msgpack serialisation: arrays
and dicts only, nothing is unpickled) and ``model.json`` (what it is, the exact commands that
trained and exported it, its SHA-256 and its evaluation). ``load`` checks the digest and the
shapes before use. ``export`` (``python -m jwarp.pretrained``) writes such a folder from a run.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jax
from flax import serialization

from jwarp.errors import PretrainedError

PARAMS = "params.msgpack"
CONFIG = "config.toml"
CARD = "model.json"


def _root() -> Path:
    return Path(str(resources.files(__name__)))


def names() -> list[str]:
    """The shipped models, sorted."""
    return sorted(p.name for p in _root().iterdir() if (p / CARD).is_file())


def card(name: str) -> dict[str, Any]:
    """A shipped model's ``model.json`` (or a model folder's): description, commands, digest,
    evaluation."""
    return json.loads((_folder(name) / CARD).read_text())


def _folder(name: str) -> Path:
    """A shipped model's folder; else ``name`` itself when it is a model folder that ``export``
    wrote (a shipped model's name wins)."""
    if name in names():
        return _root() / name
    if (Path(name) / CARD).is_file():
        return Path(name)
    raise PretrainedError(
        f"--model {name}: no such shipped model (available: {', '.join(names()) or 'none'}; "
        "or a folder written by python -m jwarp.pretrained)"
    )


def _param_shapes(config) -> Any:
    """The generator's parameter tree of ``config`` as ``jax.ShapeDtypeStruct`` leaves."""
    from jwarp.optim import create_states

    return jax.eval_shape(lambda: create_states(config, jax.random.key(0), 1)).generator.params


def load(name: str):
    """The shipped model ``name`` (or the model folder at that path) as a
    ``jwarp.animation.Animator``.

    Raises:
      PretrainedError: unknown name, a missing file, a digest or a shape that does not match
        (one line naming the file).
    """
    from jwarp.animation import Animator
    from jwarp.config import ConfigError, load_config

    folder = _folder(name)
    info = card(name)
    path = folder / PARAMS
    try:
        blob = path.read_bytes()
        config = load_config(str(folder / CONFIG))
    except (OSError, ConfigError) as e:
        raise PretrainedError(f"{folder}: cannot read the model ({e})") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != info.get("sha256"):
        raise PretrainedError(
            f"{path}: SHA-256 {digest[:12]}... does not match {CARD} "
            f"({str(info.get('sha256'))[:12]}...); the file is damaged: reinstall jwarp"
        )
    target = _param_shapes(config)
    try:
        params = serialization.from_bytes(target, blob)
    except (ValueError, KeyError, TypeError) as e:
        raise PretrainedError(f"{path}: does not fit {CONFIG} ({e})") from None
    mismatched = [
        jax.tree_util.keystr(k)
        for (k, a), b in zip(jax.tree_util.tree_leaves_with_path(params),
                             jax.tree_util.tree_leaves(target))
        if a.shape != b.shape or a.dtype != b.dtype
    ]
    if mismatched:
        raise PretrainedError(f"{path}: parameters {mismatched[0]} do not fit {CONFIG}")
    return Animator(config, params, step=info.get("step"))


def _portable(config):
    """``config`` without the paths of the machine that trained it: each data folder is
    recorded by its own name (``SMILEsmileD``, ``FEI``), the layout the loaders expect."""
    import dataclasses

    data = config.data
    names = {k: Path(getattr(data, k)).name for k in ("data_dir", "fei_dir") if getattr(data, k)}
    return dataclasses.replace(config, data=dataclasses.replace(data, **names))


def export(
    workdir: str | Path,
    out: str | Path,
    *,
    checkpoint: int | None = None,
    description: str = "",
    commands: list[str] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> Path:
    """Writes the model folder ``out`` from a run's checkpoint (its inference parameters:
    the parameter average when the run keeps one).

    Returns:
      ``out``.
    """
    from jwarp.animation import Animator
    from jwarp.config import save_config
    from jwarp.files import atomic_write

    animator = Animator.load(workdir, checkpoint)
    blob = serialization.to_bytes(jax.device_get(animator.params))
    out = Path(out)
    atomic_write(out / PARAMS, blob)
    save_config(_portable(animator.config), out / CONFIG)
    info = {
        "name": out.name,
        "description": description,
        "step": animator.step,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "commands": commands or [],
        "evaluation": evaluation or {},
    }
    atomic_write(out / CARD, json.dumps(info, indent=2) + "\n")
    return out


def _main(argv: list[str] | None) -> int:
    from jwarp.cli import ArgumentParser

    parser = ArgumentParser(
        prog="python -m jwarp.pretrained",
        description="Write a shipped-model folder (jwarp/pretrained/NAME) from a trained run.",
    )
    parser.add_argument("--workdir", required=True, help="the trained run folder")
    parser.add_argument("--name", required=True, help="the model's name (--model NAME)")
    parser.add_argument("--checkpoint", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument("--description", default="", help="one line: what it does")
    parser.add_argument("--command", action="append", default=[],
                        help="a command that made it (repeat, in order)")
    parser.add_argument("--evaluation", help="the run's `python -m jwarp.evaluate --json` file")
    parser.add_argument("--out", help="folder to write (default: jwarp/pretrained/NAME)")
    args = parser.parse_args(argv)
    evaluation = json.loads(Path(args.evaluation).read_text()) if args.evaluation else None
    commands = args.command + [
        "python -m jwarp.pretrained " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    ]
    out = export(args.workdir, args.out or _root() / args.name, checkpoint=args.checkpoint,
                 description=args.description, commands=commands, evaluation=evaluation)
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m jwarp.pretrained``; errors are one line on stderr, exit code 2."""
    from jwarp.cli import run_cli

    return run_cli("python -m jwarp.pretrained", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
