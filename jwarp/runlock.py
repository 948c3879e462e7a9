"""One trainer per run folder: an OS lock on ``<run>/.lock`` held for the life of the run.

The lock is ``flock``'s: the kernel releases it when the process ends in any way (``kill -9``
included), so a stale lock cannot outlive its trainer. The file stays (removing it would race
with a trainer that opened it); it holds the holder's process id, for the message. A ``gs://``
run folder cannot be locked this way and is not locked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from jwarp.errors import RunFolderError
from jwarp.files import is_remote

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

LOCK = ".lock"


def _nothing_but_the_lock(folder: Path) -> bool:
    """Whether ``folder`` holds no file but its lock (an empty ``checkpoints/`` is nothing)."""
    walk = os.walk(folder)
    return all(not files or (Path(root) == folder and files == [LOCK]) for root, _, files in walk)


@contextlib.contextmanager
def run_lock(workdir: str | os.PathLike | None) -> Iterator[None]:
    """Holds ``workdir``'s lock (making the folder if needed) until the block ends.

    A folder this call made is removed again if the block leaves nothing in it but the lock and
    empty folders (bad data, a failed start-up or a stop during it must not leave an empty run
    folder). ``None`` (a process
    other than 0) and ``gs://`` folders are not locked.

    Raises:
      RunFolderError: another process holds the lock (one line naming the folder; exit 2).
    """
    if workdir is None or is_remote(workdir) or fcntl is None:
        yield
        return
    folder = Path(workdir)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            who = f" (process {holder})" if holder.isdigit() else ""
            raise RunFolderError(
                f"{folder}: another training run{who} is using this run folder; wait for it "
                "to finish, stop it, or use another --workdir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            if created and _nothing_but_the_lock(folder):
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(fd)  # releases the lock
