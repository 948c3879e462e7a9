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
from typing import NamedTuple

import numpy as np
from PIL import Image

from jwarp.choices import RESIZE_MODES
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


def resize_float(
    images: np.ndarray, size: int | tuple[int, int], resample: int, clip: bool = True
) -> np.ndarray:
    """``[N, H, W, C]`` float -> ``[N, height, width, C]`` (``size``: one side for a square,
    or ``(height, width)``), channel by channel in Pillow "F" mode; clipped to ``[0, 1]``
    unless ``clip`` is False (e.g. displacements)."""
    height, width = (size, size) if isinstance(size, int) else size
    n, h, w, c = images.shape
    if (h, w) == (height, width):
        return images.astype(np.float32)
    out = np.empty((n, height, width, c), np.float32)
    for i in range(n):
        for j in range(c):
            plane = Image.fromarray(np.ascontiguousarray(images[i, :, :, j], np.float32), "F")
            out[i, :, :, j] = np.asarray(plane.resize((width, height), resample))
    return np.clip(out, 0.0, 1.0) if clip else out




def center_crop_box(
    w: int, h: int, out_w: int = 1, out_h: int = 1
) -> tuple[int, int, int, int]:
    """The ``(left, top, right, bottom)`` box of the largest centred region of a ``w x h``
    image with the aspect ``out_w : out_h`` (a square by default)."""
    if w * out_h >= h * out_w:  # wider than the aspect: full height
        bw, bh = min(w, max(1, round(h * out_w / out_h))), h
    else:
        bw, bh = w, min(h, max(1, round(w * out_h / out_w)))
    left, top = (w - bw) // 2, (h - bh) // 2
    return left, top, left + bw, top + bh


def letterbox(w: int, h: int, out_w: int, out_h: int) -> tuple[int, int, int, int]:
    """Where a ``w x h`` image goes, aspect kept, inside ``out_w x out_h``, centred:
    ``(left, top, width, height)`` of its resized copy (it touches two opposite sides)."""
    if w * out_h >= h * out_w:
        cw, ch = out_w, min(out_h, max(1, round(h * out_w / w)))
    else:
        cw, ch = min(out_w, max(1, round(w * out_h / h))), out_h
    return (out_w - cw) // 2, (out_h - ch) // 2, cw, ch


class Placement(NamedTuple):
    """How a ``w x h`` image becomes ``out_w x out_h`` under a resize mode.

    ``box``: the ``(left, top, right, bottom)`` part of the image used; ``content``: the
    ``(left, top, width, height)`` it is resized to inside the output (the rest is padding).
    """

    box: tuple[int, int, int, int]
    content: tuple[int, int, int, int]


def placement(w: int, h: int, out_w: int, out_h: int, resize: str = "crop") -> Placement:
    """``crop``: the centred region of the output's aspect, resized to fill it; ``pad``: the
    whole image resized with its aspect kept (``letterbox``), the rest padding; ``stretch``:
    the whole image resized to the output, aspect ignored."""
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize: expected one of {RESIZE_MODES}, got {resize!r}")
    whole = (0, 0, w, h)
    if resize == "crop":
        return Placement(center_crop_box(w, h, out_w, out_h), (0, 0, out_w, out_h))
    if resize == "pad":
        return Placement(whole, letterbox(w, h, out_w, out_h))
    return Placement(whole, (0, 0, out_w, out_h))


def pad_edges(image: np.ndarray, content: tuple[int, int, int, int], out_w: int, out_h: int):
    """``[height, width, ...]`` placed at ``content = (left, top, width, height)`` of an
    ``out_h x out_w`` image, the border pixels repeated outwards.

    Repeated edges, not a colour: the warp's bilinear sampling clamps at the image's border
    (``jwarp.sampler``), so what a warp pulls in from the padding is what it would pull in
    from beyond the edge of the unpadded photo, and the padding cropped off the output
    frames leaves the frames of the photo itself; a black or grey band could slide in.
    """
    left, top, cw, ch = content
    pads = [(top, out_h - top - ch), (left, out_w - left - cw)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pads, mode="edge")


def require_folder(path: Path, expected: str) -> None:
    """``DataError`` ``"<path>: folder not found (<expected>)"`` unless ``path`` is a folder."""
    if not path.is_dir():
        what = "not a folder" if path.exists() else "folder not found"
        raise DataError(f"{path}: {what} ({expected})")


def one_line(error: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__
