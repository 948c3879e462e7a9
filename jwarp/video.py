"""H.264 MP4 files written by ffmpeg (the binary ``imageio-ffmpeg`` ships), safely.

* **No fork.** ffmpeg is started with ``os.posix_spawnp`` (the C library's spawn: no
  ``os.fork``, so no at-fork handlers and no JAX warning that forking its threads may
  deadlock; a bare name such as ``IMAGEIO_FFMPEG_EXE=ffmpeg`` is found on ``PATH``), in its
  own process group as imageio-ffmpeg does (Ctrl-C reaches jwarp, which
  stops it). Raw rgb24 frames go to its stdin; its messages to a temporary file.
* **Checked before it replaces anything.** ffmpeg writes a temporary file beside the target
  (``.NAME.mp4.XXXXXXXX.tmp``, ``jwarp.files.atomic_file``), renamed over the target only when
  ffmpeg exited with 0 and the file is a whole MP4: its top-level boxes span the file and
  include ``ftyp``, ``moov`` and ``mdat``. A full disk, a crashed ffmpeg, Ctrl-C or SIGTERM
  leave an existing file as it was and no temporary file (SIGTERM: ``sigterm_unwinds`` stops
  ffmpeg and removes the file, then the process ends by SIGTERM as before).
* **kill -9** cannot clean up. Each writer holds an advisory lock (``flock``) on its temporary
  file, which the kernel drops however the process ends; the next write to the same target
  removes the temporaries of its name that no live writer holds (older than
  ``_STALE_AFTER_S``: the instant between creating one and locking it). On a file system
  without locks the write goes on unlocked, and such temporaries are never removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import stat
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from jwarp.files import atomic_file, sigterm_unwinds

try:
    import fcntl
except ImportError:  # Windows: no locks, so no clean-up of other writers' temporaries
    fcntl = None

VIDEO_EXTRA = 'pip install "jwarp[video]", or from a checkout pip install -e ".[video]"'
_STALE_AFTER_S = 5.0
_MP4_BOXES = {b"ftyp", b"moov", b"mdat"}  # at the top level of every whole MP4 ffmpeg writes
_KNOWN_ERRORS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES)


def ffmpeg_exe() -> str:
    """The ffmpeg binary of ``imageio-ffmpeg``.

    Raises:
      ValueError: one line naming the extra to install, when imageio-ffmpeg or its binary
        is missing.
    """
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()  # RuntimeError: no binary for this platform
    except (ImportError, RuntimeError) as e:
        raise ValueError(
            f"MP4 output needs imageio-ffmpeg and its ffmpeg ({type(e).__name__}): "
            f"{VIDEO_EXTRA}"
        ) from None


def write_h264(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    size: tuple[int, int],
    fps: float,
    crf: int = 18,
) -> Path:
    """Encodes ``frames`` as an H.264 (``yuv420p``) MP4 at ``path`` (see the module docstring).

    Args:
      path: the ``.mp4`` file; replaced only by a whole MP4.
      frames: ``[H, W, 3]`` uint8 RGB frames, C-contiguous, ``W, H = size`` (both even).
      size: ``(width, height)``.
      fps: frames per second (a constant frame rate, passed as a fraction).
      crf: x264's constant rate factor.

    Returns:
      ``path``.

    Raises:
      ValueError: no ffmpeg (``ffmpeg_exe``).
      OSError: naming ``path``: ffmpeg failed (a full disk, ...) or wrote an incomplete file.
    """
    exe = ffmpeg_exe()
    path = Path(path)
    remove_stale_temporaries(path)
    rate = str(Fraction(fps).limit_denominator())
    with sigterm_unwinds(), atomic_file(path) as tmp, _locked(tmp) as fd:
        # imageio-ffmpeg's command for write_frames(codec="libx264", quality=None,
        # macro_block_size=1), so the file is the one it wrote.
        command = [
            exe, "-y", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{size[0]}x{size[1]}",
            "-pix_fmt", "rgb24", "-r", rate, "-i", "-", "-an", "-vcodec", "libx264",
            "-pix_fmt", "yuv420p", "-v", "error", "-crf", str(crf), "-movflags", "+faststart",
            "-f", "mp4", tmp,
        ]  # fmt: skip
        code, messages = _run(command, frames)
        problem = _failure(code, messages) if code else _incomplete_mp4(tmp)
        if problem is not None:
            number, reason = problem
            reason = reason.replace(tmp, str(path))
            raise OSError(number, reason, str(path)) from OSError(number, reason, tmp)
        os.fsync(fd)
    return path


def _run(command: list[str], frames: Iterable[np.ndarray]) -> tuple[int, str]:
    """Runs ffmpeg with ``frames`` on its stdin; ``(exit code, its messages)``. ffmpeg is
    killed if anything (Ctrl-C, SIGTERM, a bad frame) stops the frames midway or the wait
    for it to finish."""
    with tempfile.TemporaryFile() as messages:
        read, write = os.pipe()
        try:
            process = _spawn(command, read, messages.fileno())
        except OSError as e:  # e.g. a binary that cannot run here
            os.close(write)
            exe = command[0]
            if e.errno == errno.ENOENT and os.sep not in exe:  # a bare name: searched on PATH
                raise OSError(e.errno, f"cannot run ffmpeg ({exe!r} is not on PATH)") from None
            raise OSError(e.errno, f"cannot run ffmpeg ({e.strerror}: {exe})") from None
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        try:
            try:
                for frame in frames:
                    view = memoryview(np.ascontiguousarray(frame)).cast("B")
                    while view:  # os.write may take part of it (a signal, a full pipe)
                        view = view[os.write(write, view) :]
            except BrokenPipeError:  # ffmpeg stopped early: its exit code and messages say why
                pass
            finally:
                os.close(write)  # end of input: ffmpeg finishes the file
            code = process.wait()
        except BaseException:  # Ctrl-C, SIGTERM (sigterm_unwinds), a bad frame: even while
            process.kill()  # ffmpeg finishes the file, it is stopped and reaped
            process.wait()
            raise
        messages.seek(0)
        return code, messages.read().decode("utf-8", "replace")


class _Spawned:
    """A child process started by ``os.posix_spawnp``: ``wait`` and ``kill``, as ``Popen``."""

    def __init__(self, pid: int):
        self.pid, self.code = pid, None

    def wait(self) -> int:
        if self.code is None:
            _, status = os.waitpid(self.pid, 0)  # retried after a signal handler (PEP 475)
            self.code = os.waitstatus_to_exitcode(status)
        return self.code

    def kill(self) -> None:
        if self.code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _spawn(command: list[str], stdin: int, stderr: int):
    """Starts ``command`` with ``stdin`` and ``stderr`` (file descriptors; stdout discarded)
    without forking this process."""
    if not hasattr(os, "posix_spawnp"):  # Windows: subprocess does not fork there
        import subprocess

        return subprocess.Popen(command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr)
    low = []  # the child's 0 and 2 are dup2'ed from these: neither may be 0, 1 or 2 itself
    while stdin < 3 or stderr < 3:
        low.append(fd := os.dup(stdin if stdin < 3 else stderr))
        stdin, stderr = (fd, stderr) if stdin < 3 else (stdin, fd)
    try:
        pid = os.posix_spawnp(  # p: a bare name (IMAGEIO_FFMPEG_EXE=ffmpeg) is found on PATH
            command[0], command, os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, stdin, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, stderr, 2),
            ],
            setpgroup=0,  # its own process group: Ctrl-C at a terminal reaches only jwarp
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # Python ignores them; ffmpeg need not
        )  # fmt: skip
    finally:
        for fd in low:
            os.close(fd)
    return _Spawned(pid)


def _failure(code: int, messages: str) -> tuple[int, str]:
    """``(errno, reason)`` for ffmpeg's exit ``code`` and its ``messages``."""
    lines = [line.strip() for line in messages.splitlines() if line.strip()]
    if code < 0:  # killed by a signal
        try:
            name = signal.Signals(-code).name
        except ValueError:  # a number without a name, e.g. a real-time signal
            name = f"signal {-code}"
        if -code == getattr(signal, "SIGXFSZ", None):
            return errno.EFBIG, f"{os.strerror(errno.EFBIG)} (ffmpeg stopped by {name})"
        return errno.EIO, f"ffmpeg was stopped by {name}"
    text = "\n".join(lines)
    for number in _KNOWN_ERRORS:
        if os.strerror(number) in text:
            return number, f"{os.strerror(number)} (ffmpeg)"
    return errno.EIO, f"ffmpeg failed ({lines[-1] if lines else f'exit code {code}'})"


def _incomplete_mp4(path: str) -> tuple[int, str] | None:
    """``(errno, reason)`` unless ``path``'s top-level boxes span the file, with ``ftyp``,
    ``moov`` and ``mdat`` among them (a moov-less or truncated file plays nowhere)."""
    total, offset, seen = os.path.getsize(path), 0, set()
    with open(path, "rb") as f:
        while offset < total:
            f.seek(offset)
            head = f.read(16)
            size, kind = struct.unpack(">I4s", head[:8]) if len(head) >= 8 else (0, b"")
            if size == 1 and len(head) == 16:  # a 64-bit size follows
                size = struct.unpack(">Q", head[8:])[0]
            elif size == 0 and kind:  # the last box runs to the end of the file
                size = total - offset
            if size < 8:
                break
            seen.add(kind)
            offset += size
    if offset != total or not _MP4_BOXES <= seen or total == 0:
        missing = ", ".join(sorted(b.decode() for b in _MP4_BOXES - seen)) or "none"
        return errno.EIO, (f"ffmpeg wrote an incomplete MP4 ({total} bytes; boxes missing: "
                           f"{missing})")
    return None


@contextlib.contextmanager
def _locked(tmp: str) -> Iterator[int]:
    """``tmp`` open and locked (``flock``) while ffmpeg writes it: a live writer's file,
    which ``remove_stale_temporaries`` leaves alone. Yields the descriptor (to ``fsync``)."""
    fd = os.open(tmp, os.O_RDWR)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise
            except OSError:
                # No locks on this file system (ENOLCK, EOPNOTSUPP): written unlocked. The
                # clean-up cannot lock the file either, so it leaves it alone.
                pass
        yield fd
    finally:
        os.close(fd)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Removes the temporary files of writes to ``path`` that a killed writer left
    (``.NAME.XXXXXXXX.tmp``, this user's, unlocked, older than ``_STALE_AFTER_S``); returns
    them. Anything else, and a live writer's file, is left alone."""
    path = Path(path)
    if fcntl is None:
        return []
    name = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in entries:
        if not name.fullmatch(entry.name):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.getuid()
                or time.time() - info.st_mtime < _STALE_AFTER_S
            ):
                continue
            # BlockingIOError: a live writer's. Any other OSError (ENOLCK, EOPNOTSUPP): no
            # locks here, so a killed writer's file cannot be told from a live one's: kept.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


__all__ = ["VIDEO_EXTRA", "ffmpeg_exe", "remove_stale_temporaries", "write_h264"]
