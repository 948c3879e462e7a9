"""The TOML presets: ``configs/*.toml`` at the top of a checkout, where users see, copy and
edit them, installed inside the package as ``jwarp/configs/*.toml`` (pyproject.toml maps the
one folder to the other), so an installed jwarp finds them from any folder.

The first line of each preset is a comment giving its purpose in one line (``describe``;
``train.py --list-configs``). This module imports nothing heavy: the command-line parsers list
the presets in ``--help`` without loading JAX. ``jwarp.config`` re-exports these names.
"""

from __future__ import annotations

import os
from pathlib import Path

from jwarp.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent


def _presets_dir() -> Path:
    """``jwarp/configs/`` of an installed wheel, else ``configs/`` beside the package (a
    checkout, used in place or installed editable): one folder in either case. A checkout
    updated from before the move may keep an empty ``jwarp/configs/``: it does not count."""
    installed = _PACKAGE / "configs"
    return installed if any(installed.glob("*.toml")) else _PACKAGE.parent / "configs"


PRESETS_DIR = _presets_dir()


def list_presets() -> list[str]:
    """Names of the shipped presets (``configs/*.toml``), sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def describe(name: str) -> str:
    """The one-line purpose of preset ``name``: its first line, a comment."""
    with open(PRESETS_DIR / f"{name}.toml", encoding="utf-8") as f:
        first = f.readline().strip()
    return first.removeprefix("#").strip() if first.startswith("#") else ""


def presets_listing() -> str:
    """Every shipped preset with its purpose, one a line (``train.py --list-configs``)."""
    names = list_presets()
    width = max(map(len, names), default=0)
    return "".join(f"  {name:<{width}}  {describe(name)}\n" for name in names)


def resolve_preset(name_or_path: str | os.PathLike) -> Path:
    """The TOML file of a preset name (``"faces_l2"``) or a path (anything with ``/`` or
    ending in ``.toml``)."""
    text = os.fspath(name_or_path)
    if text.endswith(".toml") or os.sep in text or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"config file not found: {text}")
        return path
    path = PRESETS_DIR / f"{text}.toml"
    if not path.is_file():
        raise ConfigError(
            f"unknown preset {text!r} (available: {', '.join(list_presets())}; or give a path "
            f"to a .toml file)"
        )
    return path


__all__ = ["PRESETS_DIR", "describe", "list_presets", "presets_listing", "resolve_preset"]
