"""Atomic file output: a killed writer never leaves a partial file under the final name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes ``data`` to a temporary file beside ``path``, then renames it over ``path``.

    The file gets the usual permissions (``0o666`` less the umask), not ``mkstemp``'s 0600.

    Raises:
      OSError: naming ``path`` (not the temporary file), e.g. a full disk; the temporary
        file is removed and an existing ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # name the file asked for, not the temporary one
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
