"""Turning loaded images into training input: minibatches and nearest-neighbour pairs.

``Batches`` turns a ``(source, target)`` pair of arrays into an endless, deterministic and
resumable stream of ``{"x0", "x1"}`` minibatches; ``nearest_pairs`` pairs unpaired data.
"""

from __future__ import annotations

import numpy as np

from jwarp.data.augment import AugmentConfig, apply, draw
from jwarp.errors import DataError


class Batches:
    """Endless, deterministic, resumable minibatches ``{"x0": [B, H, W, C], "x1": ...}``.

    Each epoch visits the data in an order drawn from ``(seed, epoch)`` alone, so the stream
    is reproducible and ``restore(state())`` resumes it exactly. Paired data share one
    permutation (``x1[i]`` stays the partner of ``x0[i]``); unpaired data use independent
    permutations of source and target. An epoch has ``min(N, M) // batch_size`` batches (the
    incomplete last batch is dropped); no item appears twice within an epoch.

    Args:
      x0: source images ``[N, H, W, C]``.
      x1: target images ``[M, H, W, C]`` (``M == N`` when paired).
      batch_size: images per batch, at most ``min(N, M)``.
      paired: whether ``x1[i]`` is the target of ``x0[i]``.
      seed: non-negative shuffling seed.
      rows: the rows of each batch to return (multi-host: this process's share, see
        ``jwarp.parallel.local_rows``); default all. The order and ``state()`` stay those of
        the whole batch, so every process walks the same stream.
      augment: random changes of every batch's images (``jwarp.data.augment``), drawn from
        ``(seed, epoch, index)`` like the order, so a resumed stream is the same; paired
        images share theirs. None (or nothing active): the images as they are.
    """

    def __init__(
        self,
        x0: np.ndarray,
        x1: np.ndarray,
        batch_size: int,
        *,
        paired: bool,
        seed: int = 0,
        rows: slice | None = None,
        augment: AugmentConfig | None = None,
    ):
        self.x0 = np.asarray(x0, np.float32)
        self.x1 = np.asarray(x1, np.float32)
        self.paired = paired
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        if paired and len(self.x0) != len(self.x1):
            raise DataError(
                f"data.paired: paired data need equal sizes (a target for each source), got "
                f"{len(self.x0)} sources and {len(self.x1)} targets"
            )
        n = min(len(self.x0), len(self.x1))
        if not 1 <= self.batch_size <= n:
            raise DataError(
                f"train.batch_size: expected 1 to {n} (the data set's size), got {batch_size}"
            )
        self.steps_per_epoch = n // self.batch_size
        self.rows = slice(None) if rows is None else rows
        self.augment = augment if augment is not None and augment.active else None
        self._epoch = 0
        self._index = 0
        self._perms: tuple[int, np.ndarray, np.ndarray] | None = None

    def _permutations(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if self._perms is None or self._perms[0] != epoch:
            perm0 = np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.x0))
            perm1 = (
                perm0
                if self.paired
                else np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.x1))
            )
            self._perms = (epoch, perm0, perm1)
        return self._perms[1], self._perms[2]

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        perm0, perm1 = self._permutations(self._epoch)
        batch = slice(self._index * self.batch_size, (self._index + 1) * self.batch_size)
        mine0, mine1 = perm0[batch][self.rows], perm1[batch][self.rows]
        out = {"x0": self.x0[mine0], "x1": self.x1[mine1]}
        if self.augment is not None:
            out = self._augmented(out)
        self._index += 1
        if self._index == self.steps_per_epoch:
            self._epoch, self._index = self._epoch + 1, 0
        return out

    def _augmented(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batch's images changed by amounts drawn for the whole batch (then this
        process's rows), the same for a pair's two images."""
        rng = np.random.default_rng([self.seed, self._epoch, self._index, 2])
        amounts = [draw(rng, self.batch_size, self.augment) for _ in range(2)]
        if self.paired:
            amounts[1] = amounts[0]
        return {
            key: apply(batch[key], {k: v[self.rows] for k, v in p.items()}, self.augment)
            for key, p in zip(("x0", "x1"), amounts)
        }

    def state(self) -> dict[str, int]:
        """Position of the next batch: ``{"epoch": e, "index": i}``."""
        return {"epoch": self._epoch, "index": self._index}

    def restore(self, state: dict[str, int]) -> None:
        """Continues from a position returned by ``state()``."""
        epoch, index = int(state["epoch"]), int(state["index"])
        if epoch < 0 or not 0 <= index < self.steps_per_epoch:
            raise ValueError(
                f"invalid batch state {state}: need epoch >= 0 and 0 <= index < "
                f"{self.steps_per_epoch}"
            )
        self._epoch, self._index = epoch, index


def nearest_pairs(
    sources: np.ndarray, targets: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` sources, each with the target nearest to it in mean squared pixel
    difference: pairs for registration from unpaired data (e.g. ``load_smiles``).

    Args:
      sources: ``[N, H, W, C]``; targets: ``[M, H, W, C]``.

    Returns:
      ``(sources[:n], nearest targets [n, H, W, C])``.
    """
    dist = ((sources[:n, None] - targets[None]) ** 2).mean(axis=(2, 3, 4))
    return sources[:n], targets[dist.argmin(axis=1)]
