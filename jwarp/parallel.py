"""Data parallelism over a 1-D device mesh, on one host or many (docs/method.md §9).

The step functions stay ordinary ``jax.jit`` functions with explicit shardings: parameters,
optimiser states and keys are replicated over the mesh's ``"data"`` axis and the global batch
``[B, ...]`` is split along its first axis, ``B / n_devices`` rows per device. The losses are
batch means, so XLA inserts the all-reduce that averages the gradients; every device then
applies the same update to its replica. One device is a 1-device mesh: there is one code path,
and the numbers do not depend on the device count beyond float summation order.

Multi-host: every process runs the same program on the global mesh (the devices of all
processes), loads only the rows of each global batch that land on its own devices
(``local_rows``) and hands them to ``global_batch``, which assembles one global array without
copying data between hosts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jwarp.config import ConfigError

AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D ``"data"`` mesh over ``devices`` (default: every device of every process).

    Devices are ordered by process, so each process's devices form one contiguous block and
    its rows of a global batch are one slice (``local_rows``).
    """
    devices = sorted(devices or jax.devices(), key=lambda d: (d.process_index, d.id))
    return Mesh(np.array(devices), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (parameters, optimiser states, keys, metrics)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Axis 0 split over the devices (batches ``[B, H, W, C]``)."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def stacked_batch_sharded(mesh: Mesh) -> NamedSharding:
    """Axis 1 split over the devices (stacked batches ``[K, B, H, W, C]``)."""
    return NamedSharding(mesh, PartitionSpec(None, AXIS))


def check_batch_size(batch_size: int, n_devices: int) -> None:
    """Raises a one-line ``ConfigError`` unless ``batch_size`` splits evenly over the devices.

    Every process owns the same number of devices on a TPU slice or a GPU cluster, so this also
    makes each process's share of a batch an integer.
    """
    if batch_size % n_devices:
        raise ConfigError(
            f"train.batch_size {batch_size} does not split over {n_devices} devices; "
            f"use a multiple of {n_devices}"
        )


def local_rows(batch_size: int, mesh: Mesh) -> slice:
    """The rows of each global batch of ``batch_size`` that this process loads.

    Args:
      batch_size: the global batch size (a multiple of the device count).
      mesh: a 1-D mesh whose devices are grouped by process (as ``data_mesh`` makes them).

    Returns:
      ``slice(start, stop)`` into the global batch; the whole batch on a single host.
    """
    check_batch_size(batch_size, mesh.devices.size)
    per_device = batch_size // mesh.devices.size
    mine = [i for i, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()]
    if not mine or mine != list(range(mine[0], mine[-1] + 1)):
        raise ValueError(f"process {jax.process_index()}: its devices are not one block of mesh")
    return slice(mine[0] * per_device, (mine[-1] + 1) * per_device)


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows of a batch -> global arrays split over ``mesh`` along axis 0.

    Args:
      local: ``{"x0": [b, H, W, C], ...}``, the ``local_rows`` of the global batch.
      mesh: the data mesh.

    Returns:
      ``{"x0": [B, H, W, C], ...}`` with ``B = b * n_processes``, sharded by ``batch_sharded``.
    """
    return jax.make_array_from_process_local_data(batch_sharded(mesh), dict(local))


def stacked_batch(local: np.ndarray, mesh: Mesh) -> jax.Array:
    """This process's rows of ``K`` stacked batches ``[K, b, ...]`` -> one global array
    ``[K, B, ...]`` split over ``mesh`` along axis 1 (``stacked_batch_sharded``)."""
    return jax.make_array_from_process_local_data(stacked_batch_sharded(mesh), local)


# Environment variables that mean "this process is one of several" (jax.distributed reads the
# first; the rest are our launch convention for clusters JAX cannot detect on its own).
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"


def device_memory() -> int | None:
    """Bytes one local accelerator can hold (``memory_stats``' ``bytes_limit``); None on CPU,
    whose devices share the host's memory, or where the backend does not say."""
    device = jax.local_devices()[0]
    if device.platform == "cpu":
        return None
    try:
        stats = device.memory_stats() or {}
    except Exception:  # some backends do not implement it
        return None
    return stats.get("bytes_limit")


def multi_process_env(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment describes a multi-process run.

    True when ``JAX_COORDINATOR_ADDRESS`` is set, or on a multi-host Cloud TPU slice
    (``TPU_WORKER_HOSTNAMES`` lists more than one worker, or Megascale multi-slice).
    Other clusters (SLURM, Open MPI, Kubernetes) are detected by ``jax.distributed`` itself
    once ``--distributed`` asks for it.
    """
    if environ.get(COORDINATOR_ENV) or environ.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return True
    return "," in environ.get("TPU_WORKER_HOSTNAMES", "")


def initialize_distributed(environ: Mapping[str, str] = os.environ) -> None:
    """Connects this process to the others with ``jax.distributed.initialize``.

    Must run before any other JAX call. ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process
    0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` are passed on when set; otherwise JAX
    detects Cloud TPU, SLURM, Open MPI and Kubernetes clusters.
    """
    num = environ.get(NUM_PROCESSES_ENV)
    pid = environ.get(PROCESS_ID_ENV)
    jax.distributed.initialize(
        coordinator_address=environ.get(COORDINATOR_ENV) or None,
        num_processes=int(num) if num else None,
        process_id=int(pid) if pid else None,
    )


__all__ = [
    "AXIS",
    "batch_sharded",
    "check_batch_size",
    "data_mesh",
    "global_batch",
    "initialize_distributed",
    "local_rows",
    "multi_process_env",
    "replicated",
    "stacked_batch",
    "stacked_batch_sharded",
]
