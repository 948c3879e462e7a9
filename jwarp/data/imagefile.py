"""One image file, read the way all image data is (``open_image``, ``read_image``), and what
the folder loaders share about files: a file's version (``_file_version``), the warning for
skipped files. Below ``jwarp.data.folders`` and ``jwarp.data.aligned``, which both use it.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jwarp.data.common import (
    RESIZE_MODES,
    one_line,
    pad_edges,
    placement,
    resize_float,
    to_channels,
)
from jwarp.errors import DataError


class SkippedFilesWarning(UserWarning):
    """Some files of an image folder could not be read and were left out (one line)."""


# --------------------------------------------------------------------------------------------
# Image files.
# --------------------------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_EXPECTED_IMAGE = "expected a PNG, JPEG, GIF, BMP, WebP or TIFF image"
_HIGH_BIT_MODES = {
    "I;16": 65535.0,
    "I;16B": 65535.0,
    "I;16L": 65535.0,
    "I;16N": 65535.0,
    "I": 65535.0,
    "F": 1.0,
}


class _Unreadable(Exception):
    """A file ``load_folder`` skips; ``str()`` is the short reason."""


def _why_not_there(path: Path, error: OSError) -> str:
    """A short reason why ``path`` cannot be reached (``error``: what ``os.stat`` raised)."""
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(error, FileNotFoundError):
        try:
            return f"dangling symlink to {os.readlink(path)}"
        except OSError:  # not a symlink (or gone)
            return "file not found"
    if isinstance(error, PermissionError):
        return "permission denied"
    return one_line(error)


def _why_not_regular(path: Path) -> str | None:
    """Why ``path`` is no regular file to decode (None when it is one, symlinks followed).

    Asked before opening: opening a FIFO named ``x.png`` would wait for a writer forever.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return _why_not_there(path, e)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO, not a regular file"
    return "a device or socket, not a regular file"


def _why_unreadable(path: Path, error: BaseException) -> str:
    """A short reason for a Pillow failure."""
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"over {Image.MAX_IMAGE_PIXELS} pixels, Pillow's decompression-bomb limit"
    if isinstance(error, OSError) and error.errno in (errno.ENOENT, errno.ELOOP):
        return _why_not_there(path, error)
    if isinstance(error, IsADirectoryError):
        return "a folder, not a file"
    if isinstance(error, PermissionError):
        return "permission denied"
    try:
        if path.stat().st_size == 0:
            return "empty file"
    except OSError:
        pass
    if isinstance(error, UnidentifiedImageError):
        return "not an image file Pillow can identify"
    return f"truncated or damaged: {one_line(error)}"


def _open(path: Path) -> Image.Image:
    why = _why_not_regular(path)
    if why is not None:
        raise _Unreadable(why)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                frames = getattr(img, "n_frames", 1)
                img.seek(0)  # n_frames may have moved an animated file on
                first = img.copy()
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, bomb errors, ...
        raise _Unreadable(_why_unreadable(path, e)) from None
    first.info["n_frames"] = frames
    return first


def open_image(path: str | Path) -> Image.Image:
    """Opens and decodes an image file (the first frame of an animated one).

    Pillow's decompression-bomb guard stays on, and its warning (images over
    ``Image.MAX_IMAGE_PIXELS``) is an error here too: a training or animation input never
    needs that many pixels, and decoding them could exhaust memory.

    Args:
      path: image file.

    Returns:
      The decoded first frame (file closed); ``info["n_frames"]`` holds the file's frame count.

    Raises:
      DataError: one line naming the file and why it cannot be read (missing, a dangling
        symlink or symlink loop, not a regular file, empty, truncated, not an image, too
        large).
    """
    path = Path(path)
    try:
        return _open(path)
    except _Unreadable as e:
        raise _cannot_read(path, e) from None


def _read(
    path: Path, size: int | tuple[int, int] | None, channels: int, resize: str = "crop"
) -> np.ndarray:
    """``read_image`` raising ``_Unreadable``."""
    img = _open(path)
    try:
        img = ImageOps.exif_transpose(img)  # phone photos: honour the orientation tag
        if size is None:
            size = img.size[::-1]
        out_h, out_w = (size, size) if isinstance(size, int) else size
        box, content = placement(*img.size, out_w, out_h, resize)
        fill = content[2:]  # (width, height) the used box is resized to
        if img.mode == "L" and channels == 1:  # grey stays grey: the RGBA route, faster
            img = img.crop(box)
            if img.size != fill:
                img = img.resize(fill, Image.Resampling.LANCZOS)
            grey = np.asarray(img, np.float32) / np.float32(255)
            return pad_edges(grey, content, out_w, out_h)[..., None]
        if img.mode in _HIGH_BIT_MODES:  # 16/32-bit grey: keep the precision, resize in float
            grey = np.asarray(img, np.float32) / np.float32(_HIGH_BIT_MODES[img.mode])
            grey = np.clip(grey, 0.0, 1.0)[box[1] : box[3], box[0] : box[2]]
            grey = resize_float(grey[None, :, :, None], fill[::-1], Image.Resampling.LANCZOS)
            grey = grey[0, ..., 0]
            rgb, alpha = np.repeat(grey[..., None], 3, -1), np.ones_like(grey)
        else:
            # Pillow resamples RGBA with premultiplied alpha, so transparent pixels do not bleed.
            rgba = img.convert("RGBA").crop(box).resize(fill, Image.Resampling.LANCZOS)
            rgba = np.asarray(rgba, np.float32) / np.float32(255)
            rgb, alpha = rgba[..., :3], rgba[..., 3]
    except (OSError, ValueError) as e:  # e.g. a mode Pillow cannot convert to RGBA
        raise _Unreadable(f"cannot convert its {img.mode} pixels: {one_line(e)}") from None
    rgb, alpha = (pad_edges(x, content, out_w, out_h) for x in (rgb, alpha))
    return to_channels(rgb, alpha, channels).astype(np.float32)


def read_image(
    path: str | Path, size: int | tuple[int, int] | None, channels: int, resize: str = "crop"
) -> np.ndarray:
    """One image file -> ``float32 [height, width, channels]`` in ``[0, 1]``, converted as
    ``load_folder`` converts each file (``jwarp.images.load_image`` adds a note saying what
    changed, and can keep the file's own size and channels).

    Args:
      path: image file.
      size: ``height = width = size``, or ``(height, width)``; None: the image's own.
      channels: 1, 3 or 4.
      resize: how a photo of another aspect is fitted (``jwarp.data.common.placement``):
        ``"crop"`` its centre (what training data gets), ``"pad"`` the whole photo with its
        edge pixels repeated outwards (``pad_edges``), ``"stretch"`` the whole photo, aspect
        ignored.

    Raises:
      DataError: the file cannot be read or converted (one line naming it).
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize: expected one of {RESIZE_MODES}, got {resize!r}")
    path = Path(path)
    try:
        return _read(path, size, channels, resize)
    except _Unreadable as e:
        raise _cannot_read(path, e) from None


def _cannot_read(path: Path, reason: _Unreadable) -> DataError:
    return DataError(f"{path}: cannot read image ({reason}); {_EXPECTED_IMAGE}")


def _list_some(items: Sequence, n: int = 3) -> str:
    shown = ", ".join(str(x) for x in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _file_version(path: Path) -> tuple[int, ...] | None:
    """What changes when the file (or, for a symlink, its target) changes: device, inode,
    size, ctime, mtime (ns); the symlink's own for a dangling one or a loop; None if gone."""
    try:
        st = os.stat(path)
    except OSError:
        try:
            st = os.lstat(path)
        except OSError:
            return None
    return st.st_dev, st.st_ino, st.st_size, st.st_ctime_ns, st.st_mtime_ns
