"""The configuration flags of ``train.py``: ``--config``, shortcuts such as ``--data`` and
``--steps``, and ``--set KEY=VALUE`` for any field (see ``jwarp.config`` for the layers).

Building the flags imports nothing heavy (``jwarp.choices``, ``jwarp.presets``), so ``--help``
is quick; ``config_from_args`` loads ``jwarp.config`` (and with it JAX) only once parsed."""

from __future__ import annotations

import argparse
import sys
import tomllib
from typing import TYPE_CHECKING, Any

from jwarp.choices import DATASETS, FIELDS, MODES, UNPAIRED_DATASETS
from jwarp.errors import ConfigError
from jwarp.presets import PRESETS_DIR, list_presets, presets_listing, resolve_preset

if TYPE_CHECKING:
    from jwarp.config import Config


def parse_set(item: str) -> tuple[str, Any]:
    """``"section.key=value"`` -> ``("section.key", value)``; the value is read as TOML.

    ``train.steps=5`` gives 5, ``loss.w_rec=0.1`` 0.1, ``data.paired=false`` False,
    ``model.unet.encoder=[8,8]`` [8, 8]; what is not a TOML value (``flow.solver=heun``,
    ``data.data_dir=/data/mnist``) is kept as a bare string. Quote a string that would read as
    another type: ``data.data_dir='"2024"'``.
    """
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.steps=100")
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return key, text.strip()
    if set(parsed) != {"v"}:  # e.g. a newline smuggling a second assignment in
        return key, text.strip()
    return key, parsed["v"]


# Flag destination -> config key.
_FLAG_KEYS = {
    "data": "data.name",
    "mode": "loss.mode",
    "data_dir": "data.data_dir",
    "steps": "train.steps",
    "batch_size": "train.batch_size",
    "image_size": "data.image_size",
    "field": "flow.field",
    "seed": "train.seed",
    "paired": "data.paired",
    "fei_dir": "data.fei_dir",
}

_DEFAULT_PRESETS = {
    ("faces", "l2"): "faces_l2",
    ("faces", "gan"): "faces_gan",
    ("digits", "gan"): "digits_gan",
    ("mnist", "gan"): "mnist_gan",
    ("smiles", "gan"): "smiles_gan",
    ("fei", "l2"): "fei_l2",
}


def default_preset(data: str, mode: str) -> str | None:
    """The CPU preset for ``--data DATA --mode MODE`` without ``--config``; None means the
    built-in defaults (with ``data.name`` and ``loss.mode`` from the flags)."""
    return _DEFAULT_PRESETS.get((data, mode))


class _ListConfigs(argparse.Action):
    """``--list-configs``: prints every preset with its purpose and exits, as ``--version``."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(
            f"presets in {PRESETS_DIR} (--config NAME, or copy one and give its path):\n"
            f"{presets_listing()}"
        )
        parser.exit(0)


def add_config_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds ``--config``, ``--list-configs``, the common shortcut flags and ``--set KEY=VALUE``
    to ``parser``."""
    g = parser.add_argument_group("configuration (defaults < preset < flags < --set)")
    presets = ", ".join(list_presets())
    g.add_argument(
        "--config",
        metavar="NAME_OR_PATH",
        help=f"a shipped preset ({presets}) or a .toml path (default: the preset of --data and "
        f"--mode, one of {', '.join(_DEFAULT_PRESETS.values())}; else the built-in defaults)",
    )
    g.add_argument(
        "--list-configs",
        action=_ListConfigs,
        help="list the shipped presets, each with its purpose, and exit",
    )
    preset = "the preset's"
    g.add_argument("--mode", choices=MODES, help=f"loss.mode (default: {preset}, else l2)")
    g.add_argument(
        "--data", choices=DATASETS, help=f"data.name (default: {preset}, else faces)"
    )
    g.add_argument(
        "--data-dir",
        help="data.data_dir: SMILEsmileD checkout (smiles), IDX folder (mnist), FEI's frontal "
        f"images (fei), folder (folder) or file (npy) (default: {preset})",
    )
    g.add_argument(
        "--fei-dir",
        help="data.fei_dir, smiles: also FEI's frontal images, their training people, with the "
        f"neutral and the smiling faces (default: {preset}, else none)",
    )
    g.add_argument("--steps", type=int, help=f"train.steps, generator steps (default: {preset})")
    g.add_argument("--batch-size", type=int, help=f"train.batch_size (default: {preset})")
    g.add_argument("--image-size", type=int, help=f"data.image_size (default: {preset})")
    g.add_argument("--field", choices=FIELDS, help=f"flow.field (default: {preset})")
    g.add_argument("--seed", type=int, help=f"train.seed (default: {preset})")
    g.add_argument(
        "--paired",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"data.paired, folder: pair files by name (default: {preset}; --data digits, "
        "mnist and smiles: --no-paired)",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any field, e.g. --set flow.solver=heun --set model.unet.encoder=[8,8] "
        "(default: none; --print-config shows every resolved value)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[Config, str]:
    """The ``Config`` of parsed ``add_config_args`` flags, and the preset used.

    Without ``--config`` the preset is ``default_preset(--data, --mode)`` (flags defaulting to
    ``faces`` and ``l2``). Explicit flags override the preset and ``--set`` overrides
    everything. ``--data digits``/``mnist``/``smiles`` implies ``--no-paired`` unless
    ``--paired`` is given.

    Returns:
      The validated config and the preset's name (its path for a file outside the shipped
      presets, or ``"defaults"`` when none applies).
    """
    values = {dest: getattr(args, dest, None) for dest in _FLAG_KEYS}
    preset = getattr(args, "config", None)
    if preset is None:
        values["data"] = values["data"] or "faces"
        values["mode"] = values["mode"] or "l2"
        preset = default_preset(values["data"], values["mode"])
    if values["data"] in UNPAIRED_DATASETS and values["paired"] is None:
        values["paired"] = False
    overrides = {_FLAG_KEYS[d]: v for d, v in values.items() if v is not None}
    for item in getattr(args, "set", None) or []:
        key, value = parse_set(item)
        overrides.pop(key, None)  # so that --set also wins in the override order
        overrides[key] = value
    from jwarp.config import load_config  # JAX: only once the flags are parsed

    config = load_config(preset, overrides)
    if preset is None:
        return config, "defaults"
    path = resolve_preset(preset)
    return config, path.stem if path.resolve().parent == PRESETS_DIR else str(preset)
