"""Image files, image folders and SMILEsmileD, as ``float32 [N, size, size, C]`` in ``[0, 1]``.

* ``open_image`` / ``read_image`` (from ``jwarp.data.imagefile``): one image file, decoded
  (Pillow) or converted to an array the way all image data is: EXIF orientation applied,
  centre-cropped to a square (or, for ``read_image``, padded or stretched: ``resize``),
  Lanczos resampling, channels as in ``jwarp.data.common``'s RGBA convention.
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

import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from jwarp.data.common import (
    check_channels,
    require_folder,
    split_index,
    split_of,
)
from jwarp.data.imagefile import (  # noqa: F401 (open_image, read_image: public here too)
    _EXPECTED_IMAGE,
    IMAGE_EXTENSIONS,
    SkippedFilesWarning,
    _file_version,
    _list_some,
    _read,
    _Unreadable,
    open_image,
    read_image,
)
from jwarp.errors import DataError

# --------------------------------------------------------------------------------------------
# Image folders.
# --------------------------------------------------------------------------------------------


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

