"""Images from ``.npz`` / ``.npy`` arrays (``load_array``); nothing is ever unpickled.

One rule scales a whole file to ``float32`` in ``[0, 1]`` (``uint8`` / 255, ``uint16`` / 65535;
floats must already be in ``[0, 1]`` and are never rescaled); source and target come back as
``[N, H, W, C]`` (no test split).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from jwarp.data.common import (
    center_crop_box,
    check_channels,
    one_line,
    resize_float,
    to_channels,
)
from jwarp.errors import DataError


class ArrayData(NamedTuple):
    """Images loaded by ``load_array``, and how their values were scaled to ``[0, 1]``."""

    source: np.ndarray  # [N, H, W, C]
    target: np.ndarray  # [M, H, W, C]
    scaling: str  # "uint8/255", "uint16/65535" or "float[0,1]"


_NAMES = ("source", "target")
_EXPECTED_VALUES = "expected floats in [0, 1], uint8 0..255 or uint16 0..65535"


def _scaling_rule(arrays: Sequence[np.ndarray], path: Path) -> tuple[str, float]:
    """One ``[0, 1]`` scaling rule (name, divisor) for the file's ``[source, target]``.

    Floats are never rescaled: values outside ``[0, 1]`` are an error naming the range found,
    since guessing from the maximum (divide by 255 when above 1) silently turns an image in,
    say, ``0..2`` into a near-black one.
    """
    dtype = arrays[0].dtype
    if any(a.dtype != dtype for a in arrays):
        raise DataError(f"{path}: dtypes differ ({', '.join(str(a.dtype) for a in arrays)})")
    if dtype == np.uint8:
        return "uint8/255", 255.0
    if dtype == np.uint16:
        return "uint16/65535", 65535.0
    if dtype.kind != "f":
        raise DataError(f"{path}: unsupported dtype {dtype}; {_EXPECTED_VALUES}")
    for name, a in zip(_NAMES, arrays, strict=True):
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise DataError(
                f"{path} [{name}]: {bad} of {a.size} values are NaN or Inf; {_EXPECTED_VALUES}"
            )
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0 + 1e-6:
            raise DataError(
                f"{path} [{name}]: {dtype} values range {lo:g}..{hi:g}; {_EXPECTED_VALUES} "
                "(floats are never rescaled: save x / 255 for floats in 0..255)"
            )
    return "float[0,1]", 1.0


def _to_nhwc(array: np.ndarray, where: str) -> np.ndarray:
    """``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` -> ``[N, H, W, C]``.

    The channel axis is the one of size 1, 3 or 4 at either end; NHWC wins when both ends
    qualify (e.g. ``[N, 3, 3, 3]``).
    """
    if array.ndim == 3:
        return array[..., None]
    if array.ndim != 4:
        raise DataError(
            f"{where}: rank {array.ndim} (shape {array.shape}), expected [N, H, W, C], "
            "[N, C, H, W] or [N, H, W]"
        )
    if array.shape[3] in (1, 3, 4):
        return array
    if array.shape[1] in (1, 3, 4):
        return np.moveaxis(array, 1, 3)
    raise DataError(f"{where}: shape {array.shape} has no channel axis of size 1, 3 or 4")


def _convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """``[N, H, W, C]`` -> ``[N, H, W, channels]`` with ``jwarp.data.common``'s RGBA convention."""
    c = images.shape[-1]
    if c == channels:
        return images
    if c == 1:
        rgb, alpha = np.repeat(images, 3, -1), np.ones(images.shape[:-1], np.float32)
    else:
        rgb = images[..., :3]
        alpha = images[..., 3] if c == 4 else np.ones(images.shape[:-1], np.float32)
    return to_channels(rgb, alpha, channels)


def _prepare(array: np.ndarray, where: str, scale: float, size, channels) -> np.ndarray:
    images = _to_nhwc(array, where)
    images = np.clip(images.astype(np.float32) / np.float32(scale), 0.0, 1.0)
    if channels is not None:
        images = _convert_channels(images, channels)
    if size is not None:
        left, top, right, bottom = center_crop_box(images.shape[2], images.shape[1])
        images = resize_float(images[:, top:bottom, left:right], size, Image.Resampling.LANCZOS)
    return images.astype(np.float32)


_PICKLE_SUFFIXES = (".pkl", ".pickle", ".p", ".pck", ".joblib", ".pt", ".pth")
_ARRAY_HOW = "expected a .npz with arrays 'source' and 'target', or a .npy [2, N, H, W, C]"


def _read_arrays(path: Path) -> list[np.ndarray]:
    """``[source, target]`` from a ``.npz``/``.npy`` file; nothing is ever unpickled."""
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        # Unpickling runs arbitrary code from the file: never, whatever it holds.
        raise DataError(
            f"{path}: pickle files are never loaded (unpickling can run code); convert it "
            "once with numpy: np.savez('data.npz', source=..., target=...)"
        )
    if not path.is_file():
        what = "a folder" if path.is_dir() else "file not found"
        raise DataError(f"{path}: {what}; {_ARRAY_HOW}")
    try:
        with open(path, "rb") as f:  # a .npz is read lazily, from this open file
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                if not {"source", "target"} <= set(loaded.files):
                    raise DataError(
                        f"{path}: a .npz needs arrays 'source' and 'target', found "
                        f"{sorted(loaded.files)}"
                    )
                arrays = [loaded["source"], loaded["target"]]
            elif loaded.ndim == 5 and loaded.shape[0] == 2:
                arrays = [loaded[0], loaded[1]]
            else:
                raise DataError(
                    f"{path}: a .npy must have shape [2, N, H, W, C] or [2, N, C, H, W] "
                    f"(source, target), found {loaded.shape}; use a .npz for unpaired sets"
                )
    except DataError:
        raise
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise DataError(
                f"{path}: truncated or damaged ({one_line(e)}); {_ARRAY_HOW}"
            ) from None
        if "bject arrays" in str(e):
            raise DataError(
                f"{path}: holds an object array, which only unpickling could read (never done "
                "here); expected numeric arrays (uint8, uint16 or float)"
            ) from None
        raise DataError(
            f"{path}: not a .npy/.npz file (it looks like a pickle, which is never loaded); "
            f"{_ARRAY_HOW}"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: truncated or damaged ({one_line(e)}); {_ARRAY_HOW}") from None
    for name, a in zip(_NAMES, arrays, strict=True):
        if a.dtype.kind not in "uif":
            raise DataError(
                f"{path} [{name}]: dtype {a.dtype}; expected numeric arrays (uint8, uint16 or "
                "float)"
            )
        if a.size == 0:
            raise DataError(
                f"{path} [{name}]: empty array of shape {a.shape}; expected at least one "
                "image, with no dimension of size 0"
            )
    return arrays


def load_array(path: str | Path, size: int | None = None, channels: int | None = None) -> ArrayData:
    """Source and target images from a ``.npz`` or ``.npy`` file (never unpickled).

    Layouts: a ``.npz`` with arrays ``source`` and ``target``, each ``[N, H, W, C]``,
    ``[N, C, H, W]`` or ``[N, H, W]``; or a ``.npy`` of shape ``[2, N, H, W, C]`` or
    ``[2, N, C, H, W]`` holding source and target (paired). ``C`` is 1, 3 or 4 and is found at
    either end of the image axes (NHWC when ambiguous). One rule scales the whole file:
    ``uint8/255``, ``uint16/65535`` or ``float[0,1]`` (kept as they are); floats outside
    ``[0, 1]`` are an error, never rescaled (save ``x / 255`` for floats in ``0..255``), and
    other dtypes are rejected.

    Args:
      path: ``.npz`` or ``.npy`` file.
      size: if given, centre-crop to square and resize (Lanczos) to ``size x size``.
      channels: if given, convert to 1, 3 or 4 channels (alpha dropped by compositing on black).

    Returns:
      ``ArrayData(source [N, H, W, C], target [M, H, W, C], scaling)``, ``float32`` in
      ``[0, 1]``.

    Raises:
      DataError: one line naming the file (and the array) and the problem (missing, not a
        .npy/.npz (a pickle is refused), object dtype, an empty array, NaN/Inf, float values
        outside ``[0, 1]`` (with the range found), wrong rank or keys, source and target images
        of different shapes).
    """
    path = Path(path)
    if channels is not None:
        check_channels(channels)
    arrays = _read_arrays(path)
    rule, scale = _scaling_rule(arrays, path)
    source, target = (
        _prepare(a, f"{path} [{name}]", scale, size, channels)
        for name, a in zip(_NAMES, arrays, strict=True)
    )
    if source.shape[1:] != target.shape[1:]:
        raise DataError(
            f"{path}: source images {source.shape[1:]} and target images {target.shape[1:]} "
            "differ (pass size and channels to convert)"
        )
    return ArrayData(source, target, rule)
