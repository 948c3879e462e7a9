"""Run-folder checkpoints through an orbax ``CheckpointManager``.

A checkpoint holds the training states (generator and, in GAN mode, critic: parameters,
optimiser states and step counters) as one pytree and a small JSON record (step, data
position, seed); nothing is pickled. Orbax writes each step into a temporary folder
(``<step>.orbax-checkpoint-tmp``) and renames it to ``<step>`` when complete, and deletes
older steps only after that, so a save that is killed (even with ``kill -9``) or that fails
(a full disk) never replaces or damages the previous checkpoint: ``latest_step`` only sees
complete ones. A writer (``cleanup=True``, under the run folder's lock: ``jwarp.runlock``)
removes leftover temporary folders when it opens the run. Paths may be local or ``gs://``.

Checkpoints are what they claim: ``save`` refuses a state that is not finite and stores a
SHA-256 digest of the state's arrays and the record in the record; ``restore`` recomputes it and
refuses a checkpoint whose bytes changed since (a damaged disk, a stray edit). Checkpoints
written before digests (jwarp 0.2) restore with ``record["digest"]`` missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
from typing import Any

import jax
import numpy as np

from jwarp.errors import CheckpointError, TrainingError


def _orbax():
    import orbax.checkpoint as ocp  # imported on use: ~0.3 s of a command that needs none

    return ocp

_TMP_SUFFIX = ".orbax-checkpoint-tmp"
DIGEST = "digest"  # the record's key for ``digest``


class NonFiniteStateError(TrainingError):
    """A state to save holds NaN or infinite values (the run failed: exit code 1)."""


def _host(leaf: Any) -> np.ndarray:
    """A leaf as a host array: a replicated ``jax.Array`` through one local copy (every copy
    is the same), PRNG keys through their data."""
    if isinstance(leaf, jax.Array):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if not leaf.is_fully_addressable:
            leaf = leaf.addressable_data(0)
    return np.asarray(jax.device_get(leaf))


def digest(state: Any, record: dict) -> str:
    """``"sha256:<hex>"`` of ``state``'s leaves (in tree order: dtype, shape and bytes) and of
    ``record`` without its digest (canonical JSON). Only the leaves' order matters, so a state
    and its restore into a target of the same structure have the same digest."""
    h = hashlib.sha256()
    plain = {k: v for k, v in record.items() if k != DIGEST}
    h.update(json.dumps(plain, sort_keys=True, separators=(",", ":")).encode())
    for leaf in jax.tree.leaves(state):
        a = np.ascontiguousarray(_host(leaf))
        h.update(f"|{a.dtype.str}{a.shape}|".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def non_finite_leaves(state: Any) -> list[str]:
    """The paths (``jax.tree_util.keystr``) of ``state``'s float leaves holding NaN or inf."""
    return [
        jax.tree_util.keystr(path)
        for path, leaf in jax.tree_util.tree_leaves_with_path(state)
        if np.issubdtype((a := _host(leaf)).dtype, np.inexact) and not np.isfinite(a).all()
    ]


def _reason(error: BaseException) -> str:
    """The first line of an orbax/tensorstore error, without the specs and bound methods they
    append (which run to pages), shortened."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"\s*See full TensorStore details:.*", "", text)
    text = re.sub(r"\s*\[(?:tensorstore_spec|source locations)[^\]]*\]", "", text).strip()
    text = text.split(". ")[0].rstrip(".") if len(text) > 200 else text
    return text if len(text) <= 200 else text[:197] + "..."


# tensorstore's status codes for a data file that is missing, cut short or altered.
_DAMAGE = {
    "NOT_FOUND": "is missing",
    "OUT_OF_RANGE": "is cut short",
    "DATA_LOSS": "cannot be decoded",
    "FAILED_PRECONDITION": "cannot be decoded",
}


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the errors it was raised from (orbax wraps tensorstore's)."""
    out: list[BaseException] = []
    while error is not None and error not in out:
        out.append(error)
        error = error.__cause__ or error.__context__
    return out


def _damage(error: BaseException, step_dir: str) -> str | None:
    """What is damaged or missing in ``step_dir``, when ``error`` (from a restore) says so:
    a file named relative to the step's folder, or the array whose data is unreadable."""
    for e in _chain(error):
        if isinstance(e, json.JSONDecodeError):
            broken = _broken_json(step_dir)
            return f"{broken} is not valid JSON" if broken else "a metadata file is not JSON"
        if isinstance(e, FileNotFoundError):
            m = re.search(r"File (.+?) not found", str(e))
            missing = m.group(1) if m else e.filename
            return f"{_relative(missing, step_dir)} is missing" if missing else "a file is missing"
        if isinstance(e, KeyError) and "was not found in the checkpoint" in str(e):
            m = re.search(r'Item "(\w+)"', str(e))
            return f"{m.group(1) if m else 'a part'}/ is missing"
        status = re.match(r"([A-Z_]+): ", str(e))
        if status and status.group(1) in _DAMAGE:
            array = re.search(r'"([\w.]+)/(?:\.zarray|[\d.]+)"', str(e))
            what = f"the data of {array.group(1)}" if array else "a data file"
            return f"{what} {_DAMAGE[status.group(1)]}"
    return None


def _relative(path: str, folder: str) -> str:
    try:
        return os.path.relpath(path, folder) if "://" not in folder else path
    except ValueError:
        return path


def _broken_json(step_dir: str) -> str | None:
    """The first JSON metadata file of a local checkpoint folder that does not parse."""
    if "://" in step_dir or not os.path.isdir(step_dir):
        return None
    for root, dirs, files in os.walk(step_dir):
        dirs[:] = sorted(d for d in dirs if d != "d")  # "d": the array data (binary)
        for name in sorted(files):
            if name.endswith((".ocdbt", ".txt")):
                continue
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    json.loads(f.read(1 << 24))
            except (OSError, ValueError):
                return _relative(path, step_dir)
    return None


def _join_by(thread: threading.Thread, deadline: float) -> None:
    """Waits until ``deadline`` (``time.monotonic``) for ``thread`` to end.

    ``threading.enumerate`` also lists threads that are starting, which ``join`` refuses
    ("cannot join thread before it is started"); such a thread is waited for to start first.
    """
    while True:
        try:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            return
        except RuntimeError:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.01)


class Checkpoints:
    """The ``checkpoints/`` folder of a run.

    Args:
      directory: the folder (created if missing).
      max_to_keep: older steps are deleted once a newer one is complete.
      cleanup: remove temporary folders left by interrupted saves. Only the run's writer
        should: a reader would delete the save a live training run is making.
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3, *, cleanup=False):
        directory = str(directory)
        local = "://" not in directory
        if local:
            directory = os.path.abspath(directory)
        self.directory = directory
        if cleanup and local:
            self._remove_temporaries()  # now, not in orbax's background thread
        ocp = _orbax()
        self.manager = ocp.CheckpointManager(
            directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                create=True,
                enable_async_checkpointing=False,
                cleanup_tmp_directories=cleanup and not local,
            ),
        )

    def latest_step(self) -> int | None:
        """The newest complete step, or None."""
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        """The complete steps, oldest first."""
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, record: dict) -> None:
        """Saves ``state`` (a pytree of arrays) and ``record`` (JSON; ``digest`` is added) as
        ``step``.

        Raises:
          NonFiniteStateError: ``state`` holds NaN or inf (nothing is written).
          CheckpointError: the save failed (e.g. the disk is full); its partial folder is
            removed and the previous checkpoints are untouched.
        """
        host = jax.tree.map(_host, state)  # from the devices once, for both checks
        bad = non_finite_leaves(host)
        if bad:
            raise NonFiniteStateError(
                f"non-finite values in {bad[0]}"
                + (f" and {len(bad) - 1} more arrays" if len(bad) > 1 else "")
                + f" at step {step}; not saved"
            )
        record = {**record, DIGEST: digest(host, record)}
        threads = set(threading.enumerate())
        ocp = _orbax()
        try:
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)
                ),
                force=True,
            )
            self.manager.wait_until_finished()
        except Exception as e:  # orbax and tensorstore raise many types for I/O failures
            self._discard_partial(step, set(threading.enumerate()) - threads)
            previous = self.latest_step()
            kept = "no earlier checkpoint" if previous is None else f"step {previous} is kept"
            raise CheckpointError(
                f"{self.directory}: cannot save step {step} ({_reason(e)}); {kept}"
            ) from e

    def _discard_partial(self, step: int, writers: set[threading.Thread]) -> None:
        """Removes ``step``'s temporary folder (space matters when the disk is full).

        One failed part of a save does not stop the others: ``writers``, the threads the save
        started, may still be writing into the folder, so they are waited for first.
        """
        try:
            self.manager.wait_until_finished()
        except Exception:
            pass  # the same failure again
        deadline = time.monotonic() + 60
        for thread in writers:
            _join_by(thread, deadline)
        if "://" not in self.directory:  # orbax cleans remote ones when a writer opens the run
            self._remove_temporaries(step)

    def _remove_temporaries(self, step: int | None = None) -> None:
        """Deletes the temporary folders of interrupted saves (of ``step``, or all)."""
        if not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            ours = step is None or name.startswith(f"{step}{_TMP_SUFFIX}")
            if ours and _TMP_SUFFIX in name:
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    def restore(self, step: int, target: Any) -> tuple[Any, dict]:
        """Restores ``step`` into the structure, shapes and dtypes of ``target`` and checks it
        against the digest saved with it.

        Raises:
          CheckpointError: the step is missing, incomplete or damaged (unreadable, or not what
            was saved), or its arrays do not match ``target`` (one line naming the step's
            folder).
        """
        ocp = _orbax()
        try:
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), record=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:  # orbax raises many types for damaged or foreign folders
            step_dir = f"{self.directory}/{step}"
            damage = _damage(e, step_dir)
            what = f"it is damaged or incomplete ({damage})" if damage else _reason(e)
            raise CheckpointError(
                f"{step_dir}: cannot restore this checkpoint: {what}; expected a complete "
                f"checkpoint matching the run's config.toml{self._others(step)}"
            ) from e
        state, record = restored["state"], restored["record"]
        if not isinstance(record, dict):
            raise CheckpointError(
                f"{self.directory}/{step}: cannot restore this checkpoint: it is damaged "
                f"(record/metadata is not a JSON object){self._others(step)}"
            )
        record = dict(record)
        saved = record.get(DIGEST)
        if saved is not None and digest(state, record) != saved:
            raise CheckpointError(
                f"{self.directory}/{step}: this checkpoint is damaged: its contents do not "
                f"match the digest saved with it{self._others(step)}"
            )
        return state, record

    def _others(self, step: int) -> str:
        others = [s for s in self.all_steps() if s != step]
        return f"; other steps here: {', '.join(map(str, others))}" if others else ""

    def newest_intact(self, target: Any, below: int | None = None):
        """The newest step (below ``below``) that restores and matches its digest, as
        ``(step, state, record, damaged)``; ``damaged`` lists ``(step, reason)`` of the newer
        steps that did not. ``step`` is None when there is none."""
        damaged = []
        for step in reversed(self.all_steps()):
            if below is not None and step >= below:
                continue
            try:
                state, record = self.restore(step, target)
            except CheckpointError as e:
                damaged.append((step, str(e)))
                continue
            return step, state, record, damaged
        return None, None, None, damaged

    def set_aside(self, step: int, folder: str | os.PathLike) -> str:
        """Moves local ``step`` out of the way into ``folder`` (kept, not deleted: a damaged
        checkpoint may still be worth a look), so the run can save that step again. Returns
        the new path."""
        os.makedirs(folder, exist_ok=True)
        dest = os.path.join(folder, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
        os.rename(os.path.join(self.directory, str(step)), dest)
        self.manager.reload()
        return dest

    def close(self) -> None:
        self.manager.close()
