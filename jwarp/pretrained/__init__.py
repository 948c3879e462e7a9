"""Trained generators that ship with the package: animate without training.

    python animate.py --model smiles --input 'photos/*.jpg' --out smiles/
    python animate.py --model mnist --input three.png --out four.gif

Each model is a folder beside this file: ``config.toml`` (the run's resolved configuration),
``params.msgpack`` (the generator's inference parameters, flax's msgpack serialisation: arrays
and dicts only, nothing is unpickled) and ``model.json`` (what it is, the exact commands that
trained and exported it, the SHA-256 of each of the other two files and its evaluation).
``load`` checks every digest and the shapes before use: a changed byte in either file is an
error naming it. ``export`` (``python -m jwarp.pretrained``) writes such a folder from a run.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jax
from flax import serialization

from jwarp.errors import PretrainedError

PARAMS = "params.msgpack"
CONFIG = "config.toml"
CARD = "model.json"
FILES = (PARAMS, CONFIG)  # what a model is loaded from: each has its digest in CARD


def _root() -> Path:
    return Path(str(resources.files(__name__)))


def names() -> list[str]:
    """The shipped models, sorted."""
    return sorted(p.name for p in _root().iterdir() if (p / CARD).is_file())


def card(name: str) -> dict[str, Any]:
    """A shipped model's ``model.json`` (or a model folder's): description, commands, digests,
    evaluation; checked for the fields ``load`` reads.

    Raises:
      PretrainedError: the file is missing, not JSON or not a model card (one line naming it).
    """
    return _read_card(_folder(name) / CARD)


def _read_json(path: Path, where: str, hint: str) -> Any:
    """The JSON value in ``path``; a file that cannot be read, or is not UTF-8 JSON, is one
    line starting with ``where`` (ending with ``hint`` for invalid JSON)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise PretrainedError(f"{where}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise PretrainedError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise PretrainedError(
            f"{where}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); {hint}"
        ) from None


def _read_card(path: Path) -> dict[str, Any]:
    info = _read_json(path, str(path), "reinstall jwarp or export the model again")
    problem = _card_problem(info)
    if problem:
        raise PretrainedError(f"{path}: {problem}; reinstall jwarp or export the model again")
    return info


def _card_problem(info: Any) -> str | None:
    """What makes ``info`` not a model card, or None."""
    if not isinstance(info, dict):
        return f"expected a JSON object (name, step, sha256, ...), got {_json_type(info)}"
    sums = info.get("sha256")
    if isinstance(sums, str):  # a card of an earlier jwarp: it covered params.msgpack alone
        return f'"sha256" covers {PARAMS} only, not {CONFIG}'
    if not isinstance(sums, dict) or not all(
        isinstance(sums.get(f), str) and re.fullmatch(r"[0-9a-f]{64}", sums[f])
        for f in FILES
    ):
        return f'"sha256" must map {" and ".join(FILES)} to their SHA-256 digests (hex)'
    step = info.get("step")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
        return f'"step" must be a whole number >= 0, got {json.dumps(step)}'
    types = {"name": str, "description": str, "commands": list, "evaluation": dict}
    for key, kind in types.items():
        if key in info and not isinstance(info[key], kind):
            return f'"{key}" must be {_json_type(kind())}, got {_json_type(info[key])}'
    if not all(isinstance(c, str) for c in info.get("commands", [])):
        return '"commands" must be a list of strings'
    return None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def digests(folder: str | Path) -> dict[str, str]:
    """``{file: SHA-256 hex}`` of every file a model folder's model is loaded from
    (``model.json``'s ``"sha256"``)."""
    return {f: hashlib.sha256((Path(folder) / f).read_bytes()).hexdigest() for f in FILES}


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
    """The generator's parameter tree of ``config`` as ``jax.ShapeDtypeStruct`` leaves (its
    initialisation traced alone: no critic or optimiser, a tenth of a second of start-up)."""
    from jwarp.optim import generator_and_input

    unet, x = generator_and_input(config)
    return jax.eval_shape(unet.init, jax.random.key(0), x)


def load(name: str):
    """The shipped model ``name`` (or the model folder at that path) as a
    ``jwarp.animation.Animator``.

    Raises:
      PretrainedError: unknown name, a missing file, a digest or a shape that does not match
        (one line naming the file).
    """
    from jwarp.animation import Animator

    folder = _folder(name)
    info = card(name)
    blobs = {}
    for f in FILES:  # checked before use: every byte the model is made of
        path = folder / f
        try:
            blobs[f] = path.read_bytes()
        except OSError as e:
            raise PretrainedError(f"{path}: cannot read the model ({e.strerror or e})") from None
        digest = hashlib.sha256(blobs[f]).hexdigest()
        if digest != info["sha256"][f]:
            raise PretrainedError(
                f"{path}: SHA-256 {digest[:12]}... does not match {CARD} "
                f"({info['sha256'][f][:12]}...); the file was changed or is damaged: "
                "reinstall jwarp or export the model again"
            )
    config = _config(folder / CONFIG, blobs[CONFIG])
    path, blob = folder / PARAMS, blobs[PARAMS]
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


def _config(path: Path, blob: bytes):
    """The configuration in ``blob``, the checked bytes of ``path``."""
    from jwarp.config import ConfigError, load_config

    try:
        return load_config(None, tomllib.loads(blob.decode("utf-8")))
    except UnicodeDecodeError as e:
        raise PretrainedError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise PretrainedError(f"{path}: not valid TOML ({e})") from None
    except ConfigError as e:
        raise PretrainedError(f"{path}: {e}") from None


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
    the parameter average when the run keeps one), whole or not at all
    (``files.atomic_folder``): a model already there stays as it was if writing fails.

    Returns:
      ``out``.

    Raises:
      PretrainedError: one line: ``out`` is the run folder (or holds it), holds files other
        than a model's, or cannot be written; ``workdir`` is not a run folder.
    """
    from jwarp.animation import Animator
    from jwarp.cli import cannot_write
    from jwarp.config import to_toml
    from jwarp.files import atomic_folder, atomic_write

    out = Path(out)
    problem = _out_problem(Path(workdir), out)
    if problem:
        raise PretrainedError(problem)
    try:
        animator = Animator.load(workdir, checkpoint)
    except ValueError as e:  # not a run folder, no such checkpoint (one line naming it)
        raise PretrainedError(str(e)) from None
    blob = serialization.to_bytes(jax.device_get(animator.params))
    try:
        with atomic_folder(out) as tmp:
            atomic_write(tmp / PARAMS, blob)
            atomic_write(tmp / CONFIG, to_toml(_portable(animator.config)))
            info = {
                "name": out.name,
                "description": description,
                "step": animator.step,
                "sha256": digests(tmp),
                "commands": commands or [],
                "evaluation": evaluation or {},
            }
            atomic_write(tmp / CARD, json.dumps(info, indent=2) + "\n")
    except OSError as e:
        raise PretrainedError(cannot_write(out, e)) from None
    return out


def _out_problem(workdir: Path, out: Path) -> str | None:
    """Why the model folder ``out`` must not be written (it replaces ``out`` as a whole), or
    None: the run folder or a folder holding it, a folder holding anything but a model's
    files (a run's ``checkpoints/``), or a path that cannot be written."""
    import os

    from jwarp.cli import output_problem

    real_out, real_run = (Path(os.path.realpath(p)) for p in (out, workdir))
    if real_out == real_run or real_out in real_run.parents:
        what = "is" if real_out == real_run else "holds"
        return (f"--out {out}: {what} the run folder --workdir {workdir}; its own files would "
                "be replaced: give the model a folder of its own")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in (*FILES, CARD))
        if others:
            return (f"--out {out}: holds {others[0]}, not a model's file; the folder is "
                    "replaced as a whole: give the model a new folder (or a model folder)")
    problem = output_problem(out, folder=True, whole=True)
    return None if problem is None else f"--out {problem}"


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
    evaluation = _read_evaluation(args.evaluation) if args.evaluation else None
    commands = args.command + [
        "python -m jwarp.pretrained " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    ]
    out = export(args.workdir, args.out or _root() / args.name, checkpoint=args.checkpoint,
                 description=args.description, commands=commands, evaluation=evaluation)
    print(f"wrote {out}")
    return 0


def _read_evaluation(path: str) -> dict[str, Any]:
    """``--evaluation FILE``: a ``python -m jwarp.evaluate --json`` file (a JSON object)."""
    where = f"--evaluation {path}"
    evaluation = _read_json(
        Path(path), where, "expected the file python -m jwarp.evaluate --json wrote"
    )
    if not isinstance(evaluation, dict):
        raise PretrainedError(
            f"{where}: expected a JSON object (what python -m jwarp.evaluate --json writes), "
            f"got {_json_type(evaluation)}"
        )
    return evaluation


def main(argv: list[str] | None = None) -> int:
    """``python -m jwarp.pretrained``; errors are one line on stderr, exit code 2."""
    from jwarp.cli import run_cli

    return run_cli("python -m jwarp.pretrained", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
