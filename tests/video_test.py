"""MP4 writing (jwarp.video): ffmpeg started without a fork, its failures caught before the
file replaces anything, and no temporary file left by SIGTERM or (on the next write) kill -9."""

import errno
import fcntl
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import slow_write_script

from jwarp import media, video

pytest.importorskip("imageio_ffmpeg")


def _frames(t=4, size=16):
    return np.random.default_rng(0).random((t, size, size, 3)).astype(np.float32)


@pytest.fixture
def old_mp4(tmp_path):
    """An existing MP4, and its bytes."""
    path = media.write_mp4(tmp_path / "old.mp4", _frames(), fps=10)
    return path, path.read_bytes()


def _names(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize(
    "code, messages, want",
    [
        (1, "[out#0/mp4] Error writing trailer: No space left on device\n", errno.ENOSPC),
        (-signal.SIGXFSZ, "", errno.EFBIG),
        (69, "", errno.EIO),
        (0, None, errno.EIO),  # ffmpeg said it succeeded, but the file has no moov box
    ],
    ids=["disk-full", "file-size-limit", "ffmpeg-failed", "no-moov"],
)
def test_a_failed_encode_keeps_the_old_file(old_mp4, monkeypatch, code, messages, want):
    path, before = old_mp4

    def ffmpeg(command, frames):
        for _ in frames:
            pass
        with open(command[-1], "wb") as f:  # what a full disk leaves: a file without its moov
            f.write(b"\x00\x00\x00\x20ftypisom" + bytes(20) + b"\x00\x00\x01\x00mdat")
        return code, messages or ""

    monkeypatch.setattr(video, "_run", ffmpeg)
    with pytest.raises(OSError) as info:
        media.write_mp4(path, _frames(t=2), fps=10)
    assert (info.value.errno, info.value.filename) == (want, str(path))
    from jwarp.cli import error_message

    message = error_message(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and ".tmp" not in message
    assert path.read_bytes() == before and _names(path.parent) == ["old.mp4"]


def test_an_ffmpeg_that_cannot_run_is_one_line(old_mp4, monkeypatch):
    path, before = old_mp4
    monkeypatch.setattr(video, "ffmpeg_exe", lambda: str(path.parent / "no" / "ffmpeg"))
    with pytest.raises(OSError) as info:
        media.write_mp4(path, _frames(t=2), fps=10)
    from jwarp.cli import error_message

    assert error_message(info.value) == (
        f"{path}: cannot run ffmpeg (No such file or directory: {path.parent}/no/ffmpeg)")
    assert path.read_bytes() == before and _names(path.parent) == ["old.mp4"]


def test_a_whole_mp4_has_its_boxes(old_mp4):
    path, data = old_mp4
    assert video._incomplete_mp4(str(path)) is None
    path.write_bytes(data[: len(data) // 2])
    assert video._incomplete_mp4(str(path))[0] == errno.EIO
    path.write_bytes(b"")
    assert video._incomplete_mp4(str(path))[0] == errno.EIO


_SLOW_WRITER = slow_write_script("media.write_mp4(sys.argv[1], Slow(), fps=10)", 16)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_killed_mp4_write_leaves_no_temporary_file(old_mp4, python_child, monkeypatch, how):
    path, before = old_mp4
    child = python_child(_SLOW_WRITER, path, cwd=path.parent)
    assert child.stdout.readline() == "writing\n"
    child.send_signal(how)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == -how, stderr
    assert path.read_bytes() == before
    if how == signal.SIGTERM:  # removed at once, and nothing printed
        assert _names(path.parent) == ["old.mp4"] and stderr == ""
        return
    # kill -9: nothing can run; the next write to the same file removes what it left (once
    # the orphaned ffmpeg, which finishes it, is gone).
    (left,) = [p for p in path.parent.iterdir() if p.name != "old.mp4"]
    _wait_until_nothing_runs(str(left))
    assert left.name.startswith(".old.mp4.") and left.name.endswith(".tmp")
    monkeypatch.setattr(video, "_STALE_AFTER_S", 0.0)
    media.write_mp4(path, _frames(t=2), fps=10)
    assert _names(path.parent) == ["old.mp4"] and path.read_bytes() != before


def _wait_until_nothing_runs(argument: str, timeout: float = 20.0) -> None:
    """Waits until no process has ``argument`` on its command line (Linux: /proc)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        running = False
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    running |= argument.encode() in f.read()
            except OSError:
                pass
        if not running:
            return
        time.sleep(0.1)
    raise AssertionError(f"still running: {argument}")


def test_only_stale_temporaries_of_the_same_target_are_removed(tmp_path):
    target = tmp_path / "a.mp4"
    old = time.time() - 60
    names = {
        ".a.mp4.k2j_9xq0.tmp": True,  # a killed writer's: removed
        ".a.mp4.fresh123.tmp": False,  # just made: a writer about to lock it
        ".a.mp4.locked12.tmp": False,  # a live writer's
        ".a.mp4.tmp": False,  # not the pattern
        ".b.mp4.k2j_9xq0.tmp": False,  # another target's
        "a.mp4.k2j_9xq0.tmp": False,  # not hidden: not ours
        ".a.mp4.folder12.tmp": False,  # a folder
    }
    for name in names:
        if name.startswith(".a.mp4.folder"):
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_bytes(b"x")
        if "fresh" not in name:
            os.utime(tmp_path / name, (old, old))
    fd = os.open(tmp_path / ".a.mp4.locked12.tmp", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        removed = video.remove_stale_temporaries(target)
    finally:
        os.close(fd)
    assert [p.name for p in removed] == [".a.mp4.k2j_9xq0.tmp"]
    assert _names(tmp_path) == sorted(n for n, gone in names.items() if not gone)


def test_an_mp4_written_beside_jax_threads_does_not_fork(tmp_path, python_child):
    """JAX warns that os.fork() in its multithreaded process may deadlock: ffmpeg is spawned."""
    script = (
        "import sys, warnings, jax.numpy as jnp, numpy as np\n"
        "from jwarp import media\n"
        "warnings.simplefilter('always')\n"
        "jnp.ones(3).sum().block_until_ready()\n"
        "media.write_mp4(sys.argv[1], np.zeros((2, 8, 8, 3), np.float32), fps=10)\n"
    )
    child = python_child(script, tmp_path / "a.mp4", cwd=tmp_path)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr
    assert "fork" not in stderr and (tmp_path / "a.mp4").stat().st_size > 0


def test_a_bare_ffmpeg_name_is_found_on_path(tmp_path, monkeypatch):
    """``IMAGEIO_FFMPEG_EXE=ffmpeg`` (or imageio-ffmpeg falling back to the system's ffmpeg)
    gives a bare name: it is looked up on PATH, as a shell would."""
    import imageio_ffmpeg

    real = imageio_ffmpeg.get_ffmpeg_exe()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "ffmpeg").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "ffmpeg")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    path = media.write_mp4(tmp_path / "a.mp4", _frames(t=2), fps=10)
    assert video._incomplete_mp4(str(path)) is None
    (tmp_path / "bin" / "ffmpeg").unlink()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(OSError) as info:
        media.write_mp4(path, _frames(t=3), fps=10)
    from jwarp.cli import error_message

    assert error_message(info.value) == f"{path}: cannot run ffmpeg ('ffmpeg' is not on PATH)"
    assert video._incomplete_mp4(str(path)) is None and _names(tmp_path) == ["a.mp4", "bin"]


def test_an_mp4_is_written_where_files_cannot_be_locked(old_mp4, monkeypatch):
    """A file system without locks (ENOLCK, EOPNOTSUPP: some NFS, FUSE) still takes MP4s; a
    temporary that cannot be locked is never taken for a killed writer's."""
    path, before = old_mp4

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    media.write_mp4(path, _frames(t=2), fps=10)
    assert path.read_bytes() != before and _names(path.parent) == ["old.mp4"]
    unlocked = path.parent / ".old.mp4.abcd1234.tmp"  # maybe a live writer's: kept
    unlocked.write_bytes(b"x")
    os.utime(unlocked, (time.time() - 60, time.time() - 60))
    assert video.remove_stale_temporaries(path) == [] and unlocked.exists()


def test_an_unnamed_signal_is_named_by_its_number():
    number = signal.SIGRTMIN + 1  # real-time signals have no name in signal.Signals
    assert video._failure(-number, "") == (errno.EIO, f"ffmpeg was stopped by signal {number}")
    assert video._failure(-signal.SIGKILL, "") == (errno.EIO, "ffmpeg was stopped by SIGKILL")


# An ffmpeg that reads all its input, then takes its time to finish the file.
_SLOW_FFMPEG = """#!/bin/sh
cat > /dev/null
echo $$ > "$0.pid"
exec sleep 30
"""

_WAITING_WRITER = """
import os, sys
import numpy as np
os.environ["IMAGEIO_FFMPEG_EXE"] = sys.argv[2]
from jwarp import media

media.write_mp4(sys.argv[1], np.zeros((2, 8, 8, 3), np.float32), fps=10)
"""


def test_sigterm_while_ffmpeg_finishes_stops_it(old_mp4, python_child):
    """SIGTERM after the last frame, while jwarp waits for ffmpeg to finish the file: ffmpeg
    is stopped too, not left running on its own."""
    path, before = old_mp4
    fake = path.parent / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text(_SLOW_FFMPEG)
    fake.chmod(0o755)
    child = python_child(_WAITING_WRITER, path, fake, cwd=path.parent)
    pid_file = Path(f"{fake}.pid")
    end = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert child.poll() is None and time.monotonic() < end, child.communicate()
        time.sleep(0.02)
    ffmpeg = int(pid_file.read_text())
    time.sleep(0.2)  # into process.wait()
    child.terminate()
    _, stderr = child.communicate(timeout=30)
    try:
        assert child.returncode == -signal.SIGTERM and stderr == "", stderr
        assert not _running(ffmpeg)  # killed and reaped by the writer before it ended
        assert path.read_bytes() == before and _names(path.parent) == ["bin", "old.mp4"]
    finally:
        if _running(ffmpeg):
            os.kill(ffmpeg, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie); Linux: /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
