"""The TOML presets that ship inside the package (``jwarp/configs/``), found through the
package itself (``importlib.resources``), so an installed jwarp finds them from any folder.

This module imports nothing heavy: the command-line parsers list the presets in ``--help``
without loading JAX. ``jwarp.config`` re-exports these names.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from jwarp.errors import ConfigError

PRESETS_DIR = Path(str(resources.files("jwarp").joinpath("configs")))


def list_presets() -> list[str]:
    """Names of the shipped presets (``jwarp/configs/*.toml``), sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


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


__all__ = ["PRESETS_DIR", "list_presets", "resolve_preset"]
