"""What every jwarp command does when something goes wrong (``train.py``, ``animate.py``,
``python -m jwarp.evaluate``).

A problem with what the user gave (a missing or unreadable file, an image folder with nothing
usable in it, a config key out of range, a run folder from another configuration, a damaged
checkpoint, a full disk) ends the command with **one line** on stderr, ``PROG: error: MESSAGE``,
where the message names the path or key and what was expected, and exit code 2. An output path
that cannot be written says why (``out/x.json: cannot write: out is a file, not a folder``;
``/proc/x.gif: cannot write: /proc does not accept new files``; a read-only file system, no
permission, a folder where a file should go; ``cannot_write``). A run that fails on its own
(``TrainingError``: a non-finite loss) exits with 1. Ctrl-C outside a training loop prints
``PROG: interrupted`` and exits with 130. ``--debug`` (or ``JWARP_DEBUG=1``) lets the exception
through with its traceback instead, and shows the libraries' log messages.

Usage::

    from jwarp.cli import ArgumentParser, run_cli

    def _main(argv):
        args = ArgumentParser(prog="tool.py", description="...").parse_args(argv)
        ...                      # raise ConfigError, DataError, ... with a one-line message
        return 0

    def main(argv=None):
        return run_cli("tool.py", _main, argv)
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from jwarp import __version__  # jwarp/__init__.py loads its names lazily: light
from jwarp import cache as _cache
from jwarp.errors import USER_ERRORS as _JWARP_ERRORS

# Exit code 2 for bad input, except TrainingError's 1 (see its ``exit_code``).
USER_ERRORS: tuple[type[BaseException], ...] = (
    *_JWARP_ERRORS,
    OSError,  # a missing file, a full disk, no permission, ...
)
MAX_MESSAGE = 1000  # characters; a message is one line, not a page


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with ``--debug`` and ``--version`` flags and one-line usage
    errors.

    argparse prints the whole usage before an error; here a bad flag is one line too:
    ``PROG: error: MESSAGE (see PROG --help)``, exit code 2.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug",
            action="store_true",
            help="on an error, show the full traceback and the libraries' log messages "
            "(default: off; JWARP_DEBUG=1 turns it on too)",
        )
        self.add_argument(
            _cache.FLAG,
            action="store_true",
            help="neither read nor write the compilation cache (default: programs compiled "
            "once are kept in a per-user folder; JWARP_CACHE_DIR=off turns it off too, "
            "JWARP_CACHE_DIR=FOLDER moves it)",
        )
        self.add_argument(
            "--version", action="version", version=f"%(prog)s (jwarp) {__version__}"
        )

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def error_message(error: BaseException) -> str:
    """The one-line text of ``error``: an ``OSError`` as ``path: reason``.

    An ``OSError`` about a path being written says why it cannot be (``cannot_write``): one
    raised on creating a folder or file (a file where a folder is needed, a read-only file
    system), or re-raised naming the path by ``jwarp.files.atomic_file`` (the original error
    names its temporary file beside the path, or a folder above it). A path below a file is
    named as such for a read too; any other reading error keeps the system's words ("No such
    file or directory": the file is missing).
    """
    if isinstance(error, OSError) and error.strerror:
        if error.filename is not None and _is_write_error(error):
            text = cannot_write(error.filename, error)
        else:
            where = f"{error.filename}: " if error.filename is not None else ""
            reason = error.strerror
            if error.filename is not None and error.errno == errno.ENOTDIR:
                above = _first_existing_parent(Path(os.fsdecode(error.filename)))
                if not os.path.isdir(above):
                    reason = f"{_shown(above)} is a file, not a folder"
            text = f"{where}{reason}"
            if error.filename2 is not None:
                text += f" (-> {error.filename2})"
    else:
        text = str(error) or type(error).__name__
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def cannot_write(path: str | os.PathLike, error: OSError) -> str:
    """``"PATH: cannot write: REASON"``, the reason found by looking at ``path`` and the
    folders above it.

    Reasons: a folder above is a file (``out is a file, not a folder``); ``path`` is a folder
    where a file was to go, or a file where a folder was to go; the first existing folder
    above is on a read-only file system, or not writable to this user; it takes no new files
    (``/proc``: "No such file or directory"); else the system's words (a full disk).

    Args:
      path: the file or folder that was to be written, as the user gave it.
      error: what writing it (or making the folders above it) raised.
    """
    path = Path(os.fsdecode(path))
    return f"{path}: cannot write: {_write_reason(path, error, _first_existing_parent(path))}"


def _write_reason(path: Path, error: OSError, above: Path) -> str:
    """Why ``path`` could not be written, ``above`` being where its new entry was to go."""
    code = error.errno
    system = error.strerror or str(error)
    if not os.path.isdir(above):
        reason = f"{_shown(above)} is a file, not a folder"
    elif code == errno.EISDIR:
        reason = "it is a folder, not a file"
    elif code in (errno.EEXIST, errno.ENOTDIR) and os.path.lexists(path):
        reason = "it is a file, not a folder"
    elif code == errno.EROFS:
        reason = f"{_shown(above)} is on a read-only file system"
    elif code in (errno.EACCES, errno.EPERM):
        reason = f"no permission to write in {_shown(above)} ({system})"
    elif code == errno.ENOENT:
        reason = f"{_shown(above)} does not accept new files ({system})"
    else:
        reason = system
    return reason


def output_problem(
    path: str | os.PathLike, *, folder: bool = False, whole: bool = False
) -> str | None:
    """Why ``path`` could not be written (``cannot_write``'s line), or None; checked before
    the work that produces it, so that an impossible output fails first.

    Nothing is left behind: a probe file is made and removed where the new entries would go:
    in the first existing folder above ``path``, or in ``path`` itself when it is an existing
    folder to write into.

    Args:
      path: a file to be written (through a temporary file beside it); with ``folder``, a
        folder to be made or written into.
      folder: ``path`` names a folder rather than a file.
      whole: the folder is written beside ``path`` and renamed into its place
        (``jwarp.files.atomic_folder``), so the folder above must take new entries.
    """
    path = Path(os.fsdecode(path))
    if os.path.isdir(path) != folder and os.path.exists(path):
        code = errno.EISDIR if not folder else errno.ENOTDIR
        return cannot_write(path, OSError(code, os.strerror(code), str(path)))
    above = _first_existing_parent(path)
    if not os.path.isdir(above):
        return cannot_write(path, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)))
    where = path if folder and not whole and os.path.isdir(path) else above
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".jwarp-probe-")
    except OSError as e:
        return f"{path}: cannot write: {_write_reason(path, e, where)}"
    os.close(fd)
    os.unlink(probe)
    return None


def _first_existing_parent(path: Path) -> Path:
    """The nearest folder above ``path`` that exists (or a file in the way); ``path.parent``
    of a relative name is ``.``."""
    for parent in path.parents:
        if os.path.lexists(parent):
            return parent
    return Path(path.anchor or ".")


def _shown(path: Path) -> str:
    return "the current folder" if str(path) == "." else str(path)


def _is_write_error(error: OSError) -> bool:
    """Whether ``error`` was raised writing its path rather than reading it (see
    ``error_message``)."""
    if error.errno in (errno.EROFS, errno.EEXIST):
        return True
    cause = error.__cause__
    if not isinstance(cause, OSError) or cause.filename is None:
        return False
    # Absolute: tempfile names its files so.
    path, other = (Path(os.path.abspath(os.fsdecode(f))) for f in (error.filename, cause.filename))
    if other == path:
        return False
    if other in path.parents:  # making the folders above it
        return True
    try:  # a temporary file or folder beside it (".NAME.xxxx.tmp", or a file in one)
        first = other.relative_to(path.parent).parts[:1]
    except ValueError:
        return False
    return bool(first) and first[0].startswith(".")


def exit_code(error: BaseException) -> int:
    """2 for bad input, or the error's own ``exit_code`` (``TrainingError``: 1)."""
    return int(getattr(error, "exit_code", 2))


def wants_debug(argv: Sequence[str]) -> bool:
    """True for ``--debug`` (or an abbreviation argparse accepts) or ``JWARP_DEBUG=1``."""
    env = os.environ.get("JWARP_DEBUG", "").strip().lower()
    if env not in ("", "0", "false", "no"):
        return True
    return any(a.startswith("--deb") and "--debug".startswith(a) for a in argv)


def run_cli(
    prog: str,
    main: Callable[[list[str]], int | None],
    argv: Sequence[str] | None = None,
    *,
    errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Runs ``main(argv)`` with jwarp's error conventions (see the module docstring).

    Args:
      prog: the command's name in messages, e.g. ``"train.py"``.
      main: parses ``argv`` (with ``ArgumentParser`` for ``--debug``) and does the work;
        returns an exit code (None: 0).
      argv: the arguments; default ``sys.argv[1:]``, which also marks this call as the
        process's entry point (after an error, library threads' "exception ignored"
        reports stay hidden until the process exits).
      errors: more exception types to report in one line (``USER_ERRORS`` always are).

    Returns:
      The exit code: ``main``'s, 2 for bad input, 1 for a failed run, 130 for Ctrl-C.
    """
    entry_point = argv is None  # the process's own arguments: it exits when this returns
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = wants_debug(argv)
    _cache.enable(argv)
    with _quiet_libraries(debug), _one_line_warnings(prog, debug):
        try:
            return int(main(argv) or 0)
        except KeyboardInterrupt:
            if debug:
                raise
            print(f"{prog}: interrupted", file=sys.stderr)
            code = 130
        except (*USER_ERRORS, *errors) as e:
            if debug:
                raise
            print(f"{prog}: error: {error_message(e)}", file=sys.stderr)
            code = exit_code(e)
    if entry_point:
        # The process is about to exit with the error. Threads and futures of a failed
        # checkpoint save or restore may still report until then: noise after the one line
        # that said what matters. (An in-process caller keeps its hooks and log levels.)
        _silence_libraries()
        # So may the coroutines of an abandoned orbax restore, collected at exit: "coroutine
        # ... was never awaited" (seen once in CI after a shape-mismatch restore).
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
    return code


def _ignore(report) -> None:
    pass


# Loggers of libraries that report a failure jwarp reports itself, in one line.
_NOISY_LOGGERS = ("absl", "asyncio")


def _silence_libraries() -> None:
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    sys.unraisablehook = _ignore


@contextlib.contextmanager
def _quiet_libraries(debug: bool) -> Iterator[None]:
    """Hides the libraries' own reports of a failure unless debugging.

    A failed checkpoint save logs a traceback per orbax writer thread (absl); a failed
    restore leaves tensorstore callbacks that find orbax's event loop closed ("exception
    ignored" reports) and gathered futures whose other errors asyncio logs as "never
    retrieved" when they are collected. The one-line error says what matters.
    """
    if debug:
        yield
        return
    levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    unraisable = sys.unraisablehook
    _silence_libraries()
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        sys.unraisablehook = unraisable


@contextlib.contextmanager
def _one_line_warnings(prog: str, debug: bool) -> Iterator[None]:
    """jwarp's own warnings (e.g. skipped image files) as ``PROG: warning: MESSAGE``."""
    show = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        if debug or not category.__module__.startswith("jwarp"):
            return show(message, category, filename, lineno, file, line)
        print(f"{prog}: warning: {' '.join(str(message).split())}", file=file or sys.stderr)

    warnings.showwarning = one_line
    try:
        yield
    finally:
        warnings.showwarning = show


__all__ = [
    "MAX_MESSAGE",
    "USER_ERRORS",
    "ArgumentParser",
    "cannot_write",
    "error_message",
    "exit_code",
    "output_problem",
    "run_cli",
    "wants_debug",
]
