"""A run folder's logs: ``metrics.jsonl`` (one JSON record per logged step) and TensorBoard
events, written by process 0 of a training run, and cut back to a resumed step."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from jwarp.files import atomic_write, is_remote
from jwarp.tensorboard import EventWriter, NoEvents, truncate_events


class _Discard:
    """The metrics file of processes other than 0."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class _ObjectLog:
    """``metrics.jsonl`` on an object store, which cannot append: the whole file is uploaded
    again at most every ``every_s`` seconds and on close."""

    def __init__(self, path, every_s: float = 30.0):
        self.path, self.every_s = path, every_s
        self.parts = [path.read_text()] if path.exists() else []
        self.uploaded = time.monotonic()

    def write(self, text: str) -> None:
        self.parts.append(text)

    def flush(self, force: bool = False) -> None:
        if force or time.monotonic() - self.uploaded >= self.every_s:
            self.path.write_text("".join(self.parts))
            self.uploaded = time.monotonic()


@contextlib.contextmanager
def metrics_writer(path, primary: bool):
    """An append-only text file for ``metrics.jsonl`` (``write``, ``flush``)."""
    if not primary:
        yield _Discard()
    elif is_remote(path):
        log = _ObjectLog(path)
        try:
            yield log
        finally:
            log.flush(force=True)
    else:
        with open(path, "a") as f:
            yield f


@contextlib.contextmanager
def events_writer(workdir, step: int, primary: bool, log: Callable[[str], None]):
    """TensorBoard events in ``workdir/tensorboard/`` for a run that starts after ``step`` steps
    (``jwarp.tensorboard.EventWriter``: ``scalars``, ``image``, ``flush``), on process 0 of a
    local run folder; events after ``step`` left there by an earlier run are dropped first, as
    ``metrics.jsonl``'s records are. A ``gs://`` run folder gets none (one line in the log):
    TensorBoard's writers append to files, which an object store cannot do.

    Writing fails as ``metrics.jsonl`` does: an ``OSError`` naming the file, from the training
    loop. Each event is flushed as it is written (as each record of ``metrics.jsonl`` is), and
    the file closed on the way out, whatever happens; closing does not hide the error that
    ends a run.
    """
    if not primary:
        yield NoEvents()
        return
    if is_remote(workdir):
        log(f"{workdir}: TensorBoard events are written in local run folders only; none here")
        yield NoEvents()
        return
    directory = Path(workdir) / "tensorboard"
    truncate_events(directory, step)
    events = EventWriter(directory, step)
    try:
        yield events
    except BaseException:
        with contextlib.suppress(OSError):  # the same full disk, say
            events.close()
        raise
    events.close()


def truncate_metrics(path: Path, step: int, log: Callable[[str], None]) -> None:
    """Drops records after ``step`` (written after the checkpoint a resume starts from), and
    a last line cut short by a killed run. Damaged lines elsewhere (not JSON records, or not
    UTF-8) are dropped too, with a note, after the whole file is copied to
    ``metrics.jsonl.damaged``: nothing is lost."""
    if not path.exists():
        return
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    records = [_parse_record(ln) for ln in lines]
    kept = [ln for ln, r in zip(lines, records) if r is not None and r.get("step", 0) <= step]
    whole = records if data.endswith(b"\n") else records[:-1]  # a line cut short is expected
    damaged = sum(r is None for r in whole)
    if damaged:
        backup = path.with_name(path.name + ".damaged")
        atomic_write(backup, data)
        lines_ = "line" if damaged == 1 else "lines"
        log(f"note: {path}: dropped {damaged} damaged {lines_}; the original is {backup}")
    if len(kept) != len(lines) or not data.endswith(b"\n") and data:
        atomic_write(path, b"".join(ln + b"\n" for ln in kept))


def _parse_record(line: bytes) -> dict | None:
    try:
        record = json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        return None
    return record if isinstance(record, dict) and _is_step(record.get("step")) else None


def _is_step(step) -> bool:
    return isinstance(step, int) and not isinstance(step, bool)
