"""The persistent compilation cache of jwarp's commands.

Every command (``train.py``, ``animate.py``, ``python -m jwarp.evaluate``,
``python -m jwarp.pretrained``) keeps what XLA compiles in JAX's own on-disk cache, so that a
second run with the same shapes loads its programs instead of compiling them again. The folder
is per user and per CPU kind (a program compiled for AVX-512 must not run on an AVX2 machine
that shares the home folder)::

    $JWARP_CACHE_DIR, else
    $XDG_CACHE_HOME/jwarp/compile/<cpu>   (Linux; ~/.cache when XDG_CACHE_HOME is unset)
    ~/Library/Caches/jwarp/compile/<cpu>  (macOS)
    %LOCALAPPDATA%/jwarp/compile/<cpu>    (Windows)

It is switched off by ``--no-cache`` on any command or ``JWARP_CACHE_DIR=off``; a cache JAX is
already given (``JAX_COMPILATION_CACHE_DIR``) is used as it is. Two commands may run at once:
JAX's LRU cache takes a file lock (``filelock``) around each read and write, and keeps the
folder under ``MAX_BYTES`` by evicting the least recently used programs. A folder that cannot
be written leaves the command uncached, not failed. The cache is trusted code: the folder is
created readable by its owner only (JAX's warning: whoever can write it can run code as you).

Side effects only (JAX's global config); called by ``jwarp.cli.run_cli``, not by the library.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ENV = "JWARP_CACHE_DIR"
OFF = ("off", "0", "false", "no", "none")
FLAG = "--no-cache"
# Eviction keeps the folder under this size (a command's programs take well under 1 MB).
MAX_BYTES = 2 * 1024**3


def cpu_tag() -> str:
    """A short name for this machine's CPU kind: architecture and a hash of its feature flags
    (``x86_64-3f2a9c1d``); programs compiled for one kind are kept apart from another's."""
    features = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    features = " ".join(sorted(line.split(":", 1)[1].split()))
                    break
    except OSError:
        pass
    if not features:
        features = platform.processor() or platform.platform()
    digest = hashlib.sha256(features.encode()).hexdigest()[:8]
    return f"{platform.machine() or 'cpu'}-{digest}"


def default_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user cache folder for this CPU kind (see the module docstring)."""
    environ = os.environ if environ is None else environ
    home = Path.home()
    if sys.platform == "darwin":
        base = home / "Library" / "Caches"
    elif sys.platform == "win32":
        base = Path(environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    else:
        base = Path(environ.get("XDG_CACHE_HOME") or home / ".cache")
    return base / "jwarp" / "compile" / cpu_tag()


def wants_cache(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> bool:
    """False for ``--no-cache`` (or an abbreviation argparse accepts) or ``JWARP_CACHE_DIR=off``."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV, "").strip().lower() in OFF:
        return False
    return not any(a.startswith("--no-c") and FLAG.startswith(a) for a in argv)


def cache_dir(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder a command with arguments ``argv`` caches in; None when switched off."""
    environ = os.environ if environ is None else environ
    if not wants_cache(argv, environ):
        return None
    given = environ.get(ENV, "").strip()
    return Path(given).expanduser() if given else default_dir(environ)


def _usable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


# JAX reads its settings from these variables when it is imported (and child processes inherit
# them); a JAX already imported is updated through its config as well.
SETTINGS = {
    "JAX_COMPILATION_CACHE_DIR": None,  # the folder
    # Every program: a warm command's many small ones add up, and reading one takes ~1 ms.
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    # A bounded size turns on JAX's LRU eviction and, with it, the file lock that makes
    # concurrent commands safe (without a bound JAX writes entries unlocked).
    "JAX_COMPILATION_CACHE_MAX_SIZE": str(MAX_BYTES),
}
# diffrax checks its arguments at run time through equinox, in a host callback, and JAX does
# not cache a program with one; with "nan" a failed check gives NaN, which every command
# reports as a non-finite result. Read by equinox when it is imported.
EQX_ON_ERROR = ("EQX_ON_ERROR", "nan")


def enable(argv: Sequence[str], environ: dict[str, str] | None = None) -> Path | None:
    """Points JAX's persistent compilation cache at ``cache_dir(argv)``, without importing
    JAX; returns the folder used (the user's own ``JAX_COMPILATION_CACHE_DIR`` if set; None:
    switched off, which also switches that off, or unwritable)."""
    environ = os.environ if environ is None else environ
    jax = sys.modules.get("jax")
    if not wants_cache(argv, environ):
        environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
        if jax is not None:
            jax.config.update("jax_enable_compilation_cache", False)
        return None
    environ.setdefault(*EQX_ON_ERROR)
    own = environ.get("JAX_COMPILATION_CACHE_DIR") or (
        jax is not None and jax.config.jax_compilation_cache_dir
    )
    if own:  # the user's own JAX setting wins
        return Path(own)
    folder = cache_dir(argv, environ)
    if folder is None or not _usable(folder):
        return None
    for name, value in SETTINGS.items():
        value = str(folder) if value is None else value
        environ[name] = value
        if jax is not None:
            typed = float(value) if "SECS" in name else int(value) if value.isdigit() else value
            jax.config.update(name.lower(), typed)
    return folder
