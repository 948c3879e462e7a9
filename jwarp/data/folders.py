"""Image files, image folders and SMILEsmileD, as ``float32 [N, size, size, C]`` in ``[0, 1]``.

* ``open_image`` / ``read_image``: one image file, decoded (Pillow) or converted to an array
  the way all image data is: EXIF orientation applied, centre-cropped to a square (or, for
  ``read_image``, padded or stretched: ``resize``), Lanczos resampling, channels as in
  ``jwarp.data.common``'s RGBA convention.
* ``load_folder``: ``source/`` and ``target/`` image folders (no test split).
* ``load_smiles``: real 64x64 grey faces of a SMILEsmileD checkout, neutral (source) and
  smiling (target), unpaired; the paper's smile experiment. Train/test by a hash of each file
  name (``split_of``), so the split never changes with the machine or with which files are
  present.

Unreadable files (including dangling symlinks and symlink loops) are skipped with one
``SkippedFilesWarning`` per folder and process, however often the folder is loaded: a folder's
decoded images are kept (``_read_all``), so loading the train split, the test split and the
samples of one run reads and warns once.
"""

from __future__ import annotations

import errno
import os
import stat
import time
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jwarp.data.common import (
    RESIZE_MODES,
    check_channels,
    one_line,
    pad_edges,
    placement,
    require_folder,
    resize_float,
    split_index,
    split_of,
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


# --------------------------------------------------------------------------------------------
# Image folders.
# --------------------------------------------------------------------------------------------


def _list_some(items: Sequence, n: int = 3) -> str:
    shown = ", ".join(str(x) for x in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _image_files(folder: Path) -> list[Path]:
    """The entries of ``folder`` with an image extension, in name order, but folders.

    Dangling symlinks, symlink loops and other non-regular files are kept, so that reading
    them fails and names them in the skipped-files warning instead of dropping them silently.
    """
    require_folder(folder, "expected a folder of images")
    entries = sorted(folder.iterdir())
    files = [f for f in entries if f.suffix.lower() in IMAGE_EXTENSIONS and not f.is_dir()]
    if not files:
        others = [f.name for f in entries]
        found = f"found only {_list_some(others)}" if others else "the folder is empty"
        raise DataError(
            f"{folder}: no image files ({found}); expected files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)}"
        )
    return files


def _pair_by_stem(
    data_dir: Path, source: list[Path], target: list[Path]
) -> tuple[list[Path], list[Path]]:
    def by_stem(files: list[Path]) -> dict[str, Path]:
        stems: dict[str, Path] = {}
        for f in files:
            if f.stem in stems:
                raise DataError(
                    f"{f}: same name as {stems[f.stem]}; paired folders need one file per name"
                )
            stems[f.stem] = f
        return stems

    src, tgt = by_stem(source), by_stem(target)
    unmatched = [str(src[k]) for k in sorted(src.keys() - tgt.keys())]
    unmatched += [str(tgt[k]) for k in sorted(tgt.keys() - src.keys())]
    if unmatched:
        raise DataError(
            f"{data_dir}: paired folders need the same file names in source/ and target/; "
            f"no partner for {_list_some(unmatched)}"
        )
    keys = sorted(src)
    return [src[k] for k in keys], [tgt[k] for k in keys]


# Decoded folders, most recently used last: {key: (images, skipped)} (see ``_read_all``).
_READ_CACHE: OrderedDict[tuple, tuple[list, list[str]]] = OrderedDict()
_READ_CACHE_BYTES = 256 * 2**20  # kept images in all; a bigger folder is decoded each time
_WARNED: set[tuple] = set()  # the skipped-files warnings given (``_report_skipped``)
# A file changed this recently may change again within its timestamp's granularity (coarse
# on Linux: a clock tick) and keep its version: such a folder is not kept (git's "racy" files).
_RACY_NS = 2 * 10**9


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


def _read_all(files: list[Path], size: int, channels: int) -> tuple[list, list[str]]:
    """Images (None where unreadable) and ``"name (reason)"`` for each unreadable file.

    Memoized per process on the files' paths and versions (``_file_version``: device, inode,
    size, ctime, mtime) and on ``size`` and ``channels``, up to ``_READ_CACHE_BYTES`` of
    images (least recently used dropped first): one run loads its data set for the train
    split, the test split and the samples, and decoding a folder of photos is the slow part.
    Pure from the caller's view: a changed file is read again (files changed in the last
    ``_RACY_NS`` are never kept, since a second change may not show in their version), and
    the returned lists are new (their arrays are only ever copied out, by ``np.stack``).
    """
    start_ns = time.time_ns()
    versions = tuple((str(f.absolute()), _file_version(f)) for f in files)
    key = (size, channels, versions)
    if key in _READ_CACHE:
        _READ_CACHE.move_to_end(key)
        images, skipped = _READ_CACHE[key]
        return list(images), list(skipped)
    images, skipped = [], []
    for f in files:
        try:
            images.append(_read(f, size, channels))
        except _Unreadable as e:
            images.append(None)
            skipped.append(f"{f.parent.name}/{f.name} ({e})")
    racy = any(v is not None and max(v[3:]) > start_ns - _RACY_NS for _, v in versions)
    if not racy and _cached_bytes((images, skipped)) <= _READ_CACHE_BYTES:
        _READ_CACHE[key] = (images, skipped)
        while sum(_cached_bytes(v) for v in _READ_CACHE.values()) > _READ_CACHE_BYTES:
            _READ_CACHE.popitem(last=False)
    return list(images), list(skipped)


def _cached_bytes(entry: tuple[list, list[str]]) -> int:
    return sum(x.nbytes for x in entry[0] if x is not None)


def _report_skipped(
    where, unit: str, total: int, n_skipped: int, reasons: list[str], images: list
) -> None:
    """One ``SkippedFilesWarning`` naming every one of the ``reasons`` why ``n_skipped`` of
    ``total`` items were left out, or a ``DataError`` when no image of ``images`` (None:
    unreadable) is left.

    The warning is given once per process for a folder and the same skipped files: loading a
    data set again (the test split, the samples) does not repeat it.
    """
    if all(x is None for x in images):
        raise DataError(
            f"{where}: none of the {total} {unit} can be read ({_list_some(reasons, 2)}); "
            f"{_EXPECTED_IMAGE}"
        )
    seen = (str(Path(where).absolute()), unit, total, n_skipped, tuple(reasons))
    if n_skipped and seen not in _WARNED:
        _WARNED.add(seen)
        warnings.warn(
            SkippedFilesWarning(
                f"{where}: skipped {n_skipped} of {total} {unit} that cannot be read: "
                f"{', '.join(reasons)}"
            ),
            stacklevel=3,
        )


def load_folder(
    data_dir: str | Path, size: int, channels: int, paired: bool = False, crop=None
) -> tuple[np.ndarray, np.ndarray]:
    """Images from ``data_dir/source/`` and ``data_dir/target/``.

    Files with the extensions in ``IMAGE_EXTENSIONS`` (any case) are read in name order; other
    files are ignored. Any Pillow mode is accepted: 16-bit grey (and 32-bit integer grey) is
    scaled by 65535, float grey is clipped to ``[0, 1]``, other modes (palette, CMYK, grey
    with alpha, ...) go through RGBA, and alpha is dropped by compositing on black (see
    ``jwarp.data.common``). Animated files (GIF, APNG, multi-page TIFF) give their first frame. Each
    image is centre-cropped to a square and resized with Lanczos filtering.

    Files that cannot be read (empty, truncated, not an image, over Pillow's
    decompression-bomb limit, a dangling symlink or a symlink loop, not a regular file) are
    skipped with one ``SkippedFilesWarning`` per folder (per data set when paired: the partner
    of a skipped file is left out too) that counts them and names each with its reason, given
    once per process however often the folder is loaded (the decoded folder is kept:
    ``_read_all``). A folder (or paired set) with nothing readable left is an error.

    Args:
      data_dir: folder with ``source/`` and ``target/`` subfolders.
      size: output height and width.
      channels: 1 (luminance), 3 (RGB) or 4 (RGBA; opaque images get alpha 1).
      paired: pair ``source/x.*`` with ``target/x.*`` by file stem.
      crop: a canonical crop (``jwarp.faces.align.CanonicalCrop``): each face aligned to it
        instead of the centre square (``jwarp.data.aligned``; a pair with the source's
        transform); files without a face are left out like unreadable ones.

    Returns:
      ``(source [N, size, size, channels], target [M, size, size, channels])``, ``float32`` in
      ``[0, 1]``; with ``paired=True``, ``N == M`` and ``target[i]`` pairs with ``source[i]``.

    Raises:
      DataError: a folder is missing, has no image files or none that can be read, or
        (paired) names do not match; one line naming the folder or files.
    """
    check_channels(channels)
    data_dir = Path(data_dir)
    require_folder(data_dir, "expected a folder with source/ and target/ image folders")
    source = _image_files(data_dir / "source")
    target = _image_files(data_dir / "target")
    if paired:
        source, target = _pair_by_stem(data_dir, source, target)
    if crop is not None:
        return _load_aligned(data_dir, source, target, size, channels, paired, crop)
    x0, skipped0 = _read_all(source, size, channels)
    x1, skipped1 = _read_all(target, size, channels)
    if paired:
        keep = [a is not None and b is not None for a, b in zip(x0, x1, strict=True)]
        x0 = [x for x, k in zip(x0, keep, strict=True) if k]
        x1 = [x for x, k in zip(x1, keep, strict=True) if k]
        groups = [(data_dir, "pairs", len(keep), keep.count(False), skipped0 + skipped1, x0)]
    else:
        groups = [
            (data_dir / side, "image files", len(files), len(skipped), skipped, images)
            for side, files, skipped, images in (
                ("source", source, skipped0, x0),
                ("target", target, skipped1, x1),
            )
        ]
    for group in groups:
        _report_skipped(*group)
    return (
        np.stack([x for x in x0 if x is not None]),
        np.stack([x for x in x1 if x is not None]),
    )


# --------------------------------------------------------------------------------------------
# SMILEsmileD: real faces, neutral and smiling.
# --------------------------------------------------------------------------------------------

# The layout of a clone of https://github.com/hromi/SMILEsmileD.
def _load_aligned(data_dir, source, target, size, channels, paired, crop):
    """``load_folder`` with each face aligned to ``crop``."""
    from jwarp.data.aligned import align_files, report_missing

    if paired:
        got = align_files(source, crop, size, channels, partners=target)
        report_missing(data_dir, len(source), got)
        return got.images, got.partners
    out = []
    for side, files in (("source", source), ("target", target)):
        got = align_files(files, crop, size, channels)
        report_missing(data_dir / side, len(files), got)
        out.append(got.images)
    return out[0], out[1]


SMILES_NEUTRAL = ("SMILEs", "negatives", "negatives7")
SMILES_SMILING = ("SMILEs", "positives", "positives7")
SMILES_TEST_PERCENT = 10
SMILES_HINT = (
    "expected a SMILEsmileD checkout (git clone https://github.com/hromi/SMILEsmileD) with "
    "SMILEs/negatives/negatives7/*.jpg and SMILEs/positives/positives7/*.jpg"
)


def smiles_folders(data_dir: str | Path) -> tuple[Path, Path]:
    """The neutral and smiling image folders of a SMILEsmileD checkout (or of its ``SMILEs/``).

    Raises:
      DataError: one line naming ``data_dir`` when either folder is missing.
    """
    root = Path(data_dir)
    if not (root / SMILES_NEUTRAL[0]).is_dir() and (root / SMILES_NEUTRAL[1]).is_dir():
        root = root.parent  # the SMILEs/ folder itself was given
    folders = root.joinpath(*SMILES_NEUTRAL), root.joinpath(*SMILES_SMILING)
    for folder in folders:
        if not folder.is_dir():
            what = "not a folder" if Path(data_dir).is_file() else f"no {folder.relative_to(root)}/"
            raise DataError(f"{data_dir}: {what}; {SMILES_HINT}")
    return folders


def smiles_files(data_dir: str | Path, split: str = "train") -> tuple[list[Path], list[Path]]:
    """The neutral and smiling image files of ``split``, in name order.

    A file is in the test split when ``split_of(<file name>, SMILES_TEST_PERCENT)`` says so
    (about 10 %), whatever else the folders hold.
    """
    split_id = split_index(split)
    out = []
    for folder in smiles_folders(data_dir):
        files = [f for f in _image_files(folder)
                 if (split_of(f.name, SMILES_TEST_PERCENT) == "test") == (split_id == 1)]
        if not files:
            raise DataError(f"{folder}: no image file falls in the {split} split")
        out.append(files)
    return out[0], out[1]


def load_smiles(
    data_dir: str | Path, split: str = "train", size: int = 64, channels: int = 1, crop=None
) -> tuple[np.ndarray, np.ndarray]:
    """Real faces of a SMILEsmileD checkout: neutral (source) and smiling (target), unpaired.

    The split is ``smiles_files``'s (by a hash of each file name). Files are read as in
    ``load_folder`` (64x64 grey JPEGs, kept as they are at ``size = 64``); unreadable ones are
    skipped with one ``SkippedFilesWarning`` per folder.

    Args:
      data_dir: the checkout (holding ``SMILEs/``), or its ``SMILEs/`` folder.
      split: ``"train"`` or ``"test"``.
      size: output height and width.
      channels: 1 (grey, the data's own), 3 or 4 (opaque).
      crop: a canonical crop (``jwarp.faces.align.CanonicalCrop``): each face aligned to it
        (``jwarp.data.aligned``; the few files without a face found are left out, with a
        warning), instead of the files as they are.

    Returns:
      ``(neutral [N, size, size, channels], smiling [M, size, size, channels])``, ``float32``
      in ``[0, 1]``.

    Raises:
      DataError: not a SMILEsmileD checkout, or a folder with nothing readable (one line).
    """
    check_channels(channels)
    out = []
    for files in smiles_files(data_dir, split):
        if crop is not None:
            from jwarp.data.aligned import align_files, report_missing

            got = align_files(files, crop, size, channels)
            report_missing(files[0].parent, len(files), got)
            out.append(got.images)
            continue
        images, skipped = _read_all(files, size, channels)
        _report_skipped(files[0].parent, "image files", len(files), len(skipped), skipped, images)
        out.append(np.stack([x for x in images if x is not None]))
    return out[0], out[1]

