"""Run-folder checkpoints through an orbax ``CheckpointManager``.

A checkpoint holds the training states (generator and, in GAN mode, critic: parameters,
optimiser states and step counters) as one pytree and a small JSON record (step, data
position, seed). Orbax writes each step into a temporary folder and renames it when complete,
so an interrupted save never replaces the previous checkpoint. Paths may be local or ``gs://``.
"""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp


class Checkpoints:
    """The ``checkpoints/`` folder of a run."""

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3):
        directory = str(directory)
        if "://" not in directory:
            directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
            ),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: Any, record: dict) -> None:
        """Saves ``state`` (a pytree of arrays) and ``record`` (JSON) as ``step``."""
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)
            ),
            force=True,
        )
        self.manager.wait_until_finished()

    def restore(self, step: int, target: Any) -> tuple[Any, dict]:
        """Restores ``step`` into the structure, shapes and dtypes of ``target``."""
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), record=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], dict(restored["record"])

    def close(self) -> None:
        self.manager.close()
