"""A lower bound on the memory a training run needs, checked before anything is allocated.

``--image-size 100000`` would otherwise fail deep inside numpy or XLA with a traceback about
terabytes. The estimate counts only what surely exists: the data set's images (``faces``,
whose size the config gives) and one batch of images with the U-Net's first feature maps,
its activations and their gradients. The real need is larger, so a refusal is never wrong;
runs that pass may still be too large, which XLA then reports.
"""

from __future__ import annotations

import os

from jwarp.config import Config
from jwarp.errors import ConfigError

F32 = 4  # bytes


def needed_bytes(config: Config, devices: int = 1) -> tuple[int, int]:
    """``(host, device)``: bytes the run needs at least, in host memory (the data set as
    float32) and on each of ``devices`` devices (one batch share through the network)."""
    data = config.data
    pixels = data.image_size * data.image_size
    images = 2 * (data.n_train + data.n_test) if data.name == "faces" else 0
    host = images * pixels * data.channels * F32
    per_device = max(1, config.train.batch_size // max(1, devices))
    first = config.model.unet.encoder[0]
    # the batch's x0 and x1, the velocity and displacement (2 channels each), and the first
    # layer's output, kept for the backward pass, with its gradient
    device = per_device * pixels * F32 * (2 * data.channels + 4 + 2 * first)
    return host, device


def available_host_bytes() -> int | None:
    """Memory available to a new allocation (``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    """``n`` bytes in words: ``3.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError


def check_fits(
    config: Config,
    *,
    devices: int = 1,
    host_bytes: int | None = None,
    device_bytes: int | None = None,
) -> None:
    """Refuses a run whose lower bound (``needed_bytes``) exceeds the memory there is.

    A device's memory counts on accelerators (``device_bytes``, e.g. from
    ``jax.Device.memory_stats``); on CPU the devices share the host's memory.

    Raises:
      ConfigError: one line naming ``data.image_size`` and the sizes.
    """
    host, device = needed_bytes(config, devices)
    host_bytes = available_host_bytes() if host_bytes is None else host_bytes
    if device_bytes is None:  # CPU devices live in host memory
        host, device, device_bytes = host + devices * device, 0, None
    size = config.data.image_size
    hint = "use a smaller --image-size" + (
        " or --batch-size" if config.train.batch_size > 1 else ""
    )
    if host_bytes is not None and host > host_bytes:
        raise ConfigError(
            f"data.image_size = {size}: training {size}x{size} images needs at least "
            f"{format_bytes(host)} of memory, and {format_bytes(host_bytes)} is available; "
            f"{hint}"
        )
    if device_bytes is not None and device > device_bytes:
        raise ConfigError(
            f"data.image_size = {size}: one batch of {size}x{size} images needs at least "
            f"{format_bytes(device)} per device, and a device has "
            f"{format_bytes(device_bytes)}; {hint}"
        )
