"""What the data sources share: splits, channel conversion, resizing, folder checks.

Internal to ``jwarp.data`` (only ``split_of`` is re-exported).

RGBA convention (faces, folders, arrays): RGB holds *straight* (unpremultiplied) colours and
alpha the coverage of the foreground; a fully transparent pixel is ``(0, 0, 0, 0)``. Dropping
alpha (``channels=3``) composites on black, i.e. ``rgb * alpha``; ``channels=1`` is the Rec. 601
luminance ``0.299 R + 0.587 G + 0.114 B`` of that composite (what Pillow's ``"L"`` uses).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from jwarp.errors import DataError

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601, as Pillow's "L" conversion
_SPLITS = {"train": 0, "test": 1}


def split_index(split: str) -> int:
    """0 for ``"train"``, 1 for ``"test"``; ``ValueError`` otherwise."""
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _SPLITS[split]


def split_of(key: str, test_percent: int) -> str:
    """``"test"`` for about ``test_percent`` % of keys, else ``"train"``, from a hash of ``key``.

    A file's split depends on its own name only (SHA-256, not Python's salted ``hash``): it
    never changes with the machine, the file order or the other files present.
    """
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
    return "test" if bucket < test_percent else "train"


def check_channels(channels: int) -> None:
    if channels not in (1, 3, 4):
        raise ValueError(f"channels must be 1, 3 or 4, got {channels!r}")


def to_channels(rgb: np.ndarray, alpha: np.ndarray, channels: int) -> np.ndarray:
    """Straight RGB ``[..., 3]`` and alpha ``[...]`` -> ``[..., channels]`` (see module doc)."""
    if channels == 4:
        return np.concatenate([rgb, alpha[..., None]], axis=-1)
    on_black = rgb * alpha[..., None]
    if channels == 3:
        return on_black
    return (on_black @ _LUMA)[..., None]


def resize_float(images: np.ndarray, size: int, resample: int) -> np.ndarray:
    """``[N, H, W, C]`` float -> ``[N, size, size, C]``, channel by channel in Pillow "F" mode."""
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images.astype(np.float32)
    out = np.empty((n, size, size, c), np.float32)
    for i in range(n):
        for j in range(c):
            plane = Image.fromarray(np.ascontiguousarray(images[i, :, :, j], np.float32), "F")
            out[i, :, :, j] = np.asarray(plane.resize((size, size), resample))
    return np.clip(out, 0.0, 1.0)


def center_crop_box(w: int, h: int) -> tuple[int, int, int, int]:
    """The ``(left, top, right, bottom)`` box of the centred square of a ``w x h`` image."""
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return left, top, left + side, top + side


def require_folder(path: Path, expected: str) -> None:
    """``DataError`` ``"<path>: folder not found (<expected>)"`` unless ``path`` is a folder."""
    if not path.is_dir():
        what = "not a folder" if path.exists() else "folder not found"
        raise DataError(f"{path}: {what} ({expected})")


def one_line(error: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__
