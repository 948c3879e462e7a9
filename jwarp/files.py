"""Run-folder file output: atomic on local disks, and paths that may be ``gs://`` URLs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from etils import epath


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a URL (``gs://bucket/run``) rather than a local path."""
    return "://" in os.fspath(path)


def run_path(path: str | os.PathLike) -> Path | epath.Path:
    """A ``pathlib.Path`` for a local path; an ``etils.epath.Path`` for a URL.

    ``pathlib`` would collapse ``gs://b/run`` to ``gs:/b/run``; ``epath`` keeps the URL and
    reads and writes it through ``gcsfs`` (install it for ``gs://``) with the same methods
    (``/``, ``exists``, ``read_text``, ``write_text``, ``unlink``).
    """
    return epath.Path(path) if is_remote(path) else Path(path)


def cache_dir(*parts: str) -> Path:
    """A folder of jwarp's per-user cache (not created): ``$JWARP_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/jwarp``, else ``~/.cache/jwarp``; then ``parts``."""
    root = os.environ.get("JWARP_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "jwarp")
    return Path(root, *parts)


def _umask() -> int:
    """The process's umask (reading it means setting it: it is put back at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


class _Terminated(BaseException):
    """SIGTERM inside ``sigterm_unwinds``."""


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM inside unwinds what runs there (an ``atomic_file`` or ``atomic_folder`` removes
    its temporary, a child process is stopped), then ends the process by SIGTERM as it would
    have: for long writes (an MP4, a folder of frames).

    Only in the main thread while SIGTERM has its default action (a handler installed by
    someone else, training's ``StopRequest`` or an outer ``sigterm_unwinds``, is theirs). Not
    around every write: a handler installed by C code, which Python does not see (such as
    ``jax.distributed``'s preemption service), would be replaced.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    fired = []

    def stop(signum, frame):
        if not fired:  # once: a second SIGTERM must not interrupt the clean-up
            fired.append(signum)
            raise _Terminated

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if fired:
            signal.raise_signal(signal.SIGTERM)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[str]:
    """A temporary file beside local ``path`` to write; renamed over ``path`` on success.

    The file gets the usual permissions (``0o666`` less the umask), not ``mkstemp``'s 0600.

    Raises:
      OSError: naming ``path`` (not the temporary file), e.g. a full disk; the temporary
        file is removed and an existing ``path`` is left as it was (also on Ctrl-C, and on
        SIGTERM inside ``sigterm_unwinds``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from e
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename != str(path):  # name the file asked for
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes ``data`` to a temporary file beside ``path``, then renames it over ``path``
    (``atomic_file``). A URL (``gs://``) is written in one upload instead: an object store
    replaces an object only once the upload is complete, which is the same guarantee.

    Raises:
      OSError: naming ``path``; an existing ``path`` is left as it was.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if is_remote(path):
        epath.Path(path).write_bytes(payload)
        return
    with atomic_file(path) as tmp, os.fdopen(os.open(tmp, os.O_WRONLY | os.O_TRUNC), "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; on success it takes the place of ``path``
    (an existing folder there is moved aside, the new one renamed in, the old one removed).

    The folder gets the existing folder's permissions, or the usual ones (``0o777`` less the
    umask) rather than ``mkdtemp``'s 0700. ``path`` a link to a folder: the folder it points
    to is replaced. Between the two renames ``path`` is missing for an instant; it never holds
    a partial set.

    Raises:
      OSError: naming ``path``, e.g. a full disk; the temporary folder is removed and an
        existing ``path`` is left as it was (also on ``KeyboardInterrupt``, and on SIGTERM
        inside ``sigterm_unwinds``).
    """
    asked = str(path)
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    except OSError as e:
        raise OSError(e.errno, e.strerror, asked) from e
    try:
        yield tmp
        if os.path.isdir(target):
            mode = stat.S_IMODE(os.stat(target).st_mode)
        else:
            mode = 0o777 & ~_umask()
        os.chmod(tmp, mode)
        _rename_in(tmp, target)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.filename != asked:  # name the folder asked for
            raise OSError(e.errno, e.strerror, asked) from e
        raise


def _rename_in(new: Path, target: Path) -> None:
    """Renames the folder ``new`` to ``target``, replacing a folder there as a whole."""
    old = None
    if os.path.isdir(target):
        # An empty folder that rename(2) may replace: a name nothing else takes meanwhile.
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    try:
        if old is not None:
            os.rename(target, old)
        try:
            os.rename(new, target)
        except BaseException:
            if old is not None:
                os.rename(old, target)
            raise
    except BaseException:
        if old is not None:
            with contextlib.suppress(OSError):
                os.rmdir(old)  # still the empty placeholder unless the restore failed
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
