"""TensorBoard event files of a run folder (``<workdir>/tensorboard/``), without TensorFlow.

An event file is a sequence of TFRecord records, each an ``Event`` protocol buffer; the
buffers are tensorboardX's generated classes (it needs ``protobuf`` only), the framing is
written here: a little-endian ``uint64`` length, its masked CRC-32C, the bytes, their masked
CRC-32C. Writes are synchronous, in the calling thread (tensorboardX's ``SummaryWriter`` writes
from a background thread, where a full disk would be lost, or block the training loop on a
full queue), so an ``OSError`` reaches the caller, naming the file, as ``metrics.jsonl``'s do.

Resuming, ``truncate_events`` drops the events after the resumed step from the files there
(as ``jwarp.training`` truncates ``metrics.jsonl``), and the new file starts with a
``SessionLog.START`` at the step after it, which also tells TensorBoard to discard anything
older at later steps (its ``purge_step``).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from jwarp.files import atomic_write

FILE_GLOB = "events.out.tfevents.*"


def _protos():
    from tensorboardX.proto import event_pb2, summary_pb2  # protobuf only; no TensorFlow

    return event_pb2, summary_pb2


def _masked_crc(data: bytes) -> int:
    from tensorboardX.crc32c import crc32c

    x = crc32c(data) & 0xFFFFFFFF
    return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _frame(data: bytes) -> bytes:
    """One TFRecord record around ``data``."""
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", _masked_crc(header))
        + data
        + struct.pack("<I", _masked_crc(data))
    )


def _records(blob: bytes) -> Iterator[bytes]:
    """The records of an event file's bytes, up to the first one cut short or corrupt (a run
    killed mid-write)."""
    pos = 0
    while pos + 12 <= len(blob):
        header = blob[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", blob[pos + 8 : pos + 12])
        end = pos + 12 + length + 4
        if header_crc != _masked_crc(header) or end > len(blob):
            return
        data = blob[pos + 12 : pos + 12 + length]
        if struct.unpack("<I", blob[end - 4 : end])[0] != _masked_crc(data):
            return
        yield data
        pos = end


def event_files(directory: Path) -> list[Path]:
    """A TensorBoard folder's event files, in the order TensorBoard reads them (by name)."""
    return sorted(Path(directory).glob(FILE_GLOB)) if Path(directory).is_dir() else []


def read_events(directory: Path) -> list:
    """Every ``Event`` of a folder's event files, in reading order."""
    event_pb2, _ = _protos()
    events = []
    for path in event_files(directory):
        for data in _records(path.read_bytes()):
            events.append(event_pb2.Event.FromString(data))
    return events


def truncate_events(directory: Path, step: int) -> None:
    """Drops the events after ``step`` from a folder's event files (written after the checkpoint
    a resume starts from), and a last record cut short by a killed run; a file left with no
    summaries is deleted."""
    event_pb2, _ = _protos()
    for path in event_files(directory):
        blob = path.read_bytes()
        records = list(_records(blob))
        kept = [r for r in records if event_pb2.Event.FromString(r).step <= step]
        if not any(event_pb2.Event.FromString(r).HasField("summary") for r in kept):
            path.unlink()
        elif len(kept) != len(records) or sum(len(r) + 16 for r in records) != len(blob):
            atomic_write(path, b"".join(_frame(r) for r in kept))


class EventWriter:
    """A new event file in ``directory`` for a run that starts after ``start_step`` steps:
    scalars and images, each flushed to the operating system as it is written.

    Raises ``OSError`` naming the file (a full disk, no permission), from any method.
    """

    def __init__(self, directory: Path, start_step: int = 0):
        directory = Path(directory)
        stamp = f"{time.time_ns() // 1000:016d}"  # sorts by time: TensorBoard reads in name order
        self.path = directory / f"events.out.tfevents.{stamp}.{socket.gethostname()}.{os.getpid()}"
        event_pb2, _ = _protos()
        with self._naming_errors():
            directory.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "xb")  # noqa: SIM115 (closed by ``close``)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        if start_step > 0:  # TensorBoard drops what it read before at steps >= this one
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._write(
                event_pb2.Event(wall_time=time.time(), step=start_step + 1, session_log=start)
            )

    def scalars(self, step: int, values: Mapping[str, float], prefix: str = "") -> None:
        """One event at ``step`` with a scalar per item, tagged ``prefix + name``."""
        _, summary_pb2 = _protos()
        summary = summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(tag=prefix + k, simple_value=float(v))
                for k, v in values.items()
            ]
        )
        self._summary(step, summary)

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """One ``[H, W, C]`` image (floats in ``[0, 1]``, ``C`` in 1, 3, 4) at ``step``, as PNG."""
        from jwarp.media import encode_png

        _, summary_pb2 = _protos()
        image = np.asarray(image)
        height, width, channels = image.shape
        encoded = summary_pb2.Summary.Image(
            height=height, width=width, colorspace=channels, encoded_image_string=encode_png(image)
        )
        self._summary(
            step, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=encoded)])
        )

    def flush(self) -> None:
        with self._naming_errors():
            self._file.flush()

    def close(self) -> None:
        with self._naming_errors():
            self._file.close()

    def _summary(self, step: int, summary) -> None:
        event_pb2, _ = _protos()
        self._write(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def _write(self, event) -> None:
        with self._naming_errors():
            self._file.write(_frame(event.SerializeToString()))
            self._file.flush()

    def _naming_errors(self):
        return _NamingErrors(self.path)


class _NamingErrors:
    """Re-raises an ``OSError`` as ``path: reason`` (what ``jwarp.cli`` prints)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if isinstance(error, OSError) and error.filename is None:
            raise OSError(error.errno, error.strerror, str(self.path)) from error
        return False


class NoEvents:
    """The event writer of processes other than 0, and of remote run folders."""

    def scalars(self, step: int, values: Mapping[str, float], prefix: str = "") -> None:
        pass

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


__all__ = ["EventWriter", "NoEvents", "event_files", "read_events", "truncate_events"]
