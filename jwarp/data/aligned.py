"""Real faces aligned to a model's canonical crop, as the model will see faces in photos.

``align_files`` finds the face in each image file (``jwarp.faces.detect``), brings it to the
canonical crop (``jwarp.faces.align``) and returns the crops. Training data and photos go
through the same code, so a model trained on aligned faces sees at inference exactly what it
was trained on. A file without a face is left out and named.

Aligning a data set takes about 5 ms an image, so the crops are kept in jwarp's per-user cache
(``jwarp.files.cache_dir("aligned")``; ``JWARP_CACHE_DIR`` moves it), one ``.npz`` per list of
files, keyed by the files' paths and versions, the crop, the size, the channels and the
detector: a changed file or setting aligns again. The cache file is written atomically, so
runs that start together at worst both compute it, and it holds plain arrays (never pickles).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jwarp.data.imagefile import _file_version, read_image

CACHE_VERSION = 2  # bump when the alignment itself changes


class Aligned(NamedTuple):
    """Crops of the files in which a face was found.

    Attributes:
      images: ``[N, size, size, C]`` float32 in ``[0, 1]``: each kept file's face.
      partners: ``[N, size, size, C]``: each kept file's partner cropped with the file's own
        transform (``align_files(partners=...)``), or None.
      kept: indices of the kept files, increasing.
      missing: the files without a face (or unreadable), each ``"path (why)"``.
    """

    images: np.ndarray
    partners: np.ndarray | None
    kept: np.ndarray
    missing: list[str]


def _key(files, partners, crop, size: int, channels: int) -> str:
    import cv2

    from jwarp.faces import align, detect

    model = (Path(detect.__file__).parent / detect.MODEL).read_bytes()
    listed = [(str(Path(f).absolute()), _file_version(Path(f))) for f in files]
    if partners is not None:
        listed += [(str(Path(f).absolute()), _file_version(Path(f))) for f in partners]
    what = {
        "version": CACHE_VERSION,
        "files": listed,
        "crop": list(crop.points),
        "size": size,
        "channels": channels,
        "detector": hashlib.sha256(model).hexdigest(),
        # What else decides where a face lands: the detector's settings, OpenCV's own
        # post-processing, and the landmarks' weights.
        "settings": [detect.THRESHOLD, detect.NMS, detect.WORK_SIDES, detect.MIN_SIDE,
                     detect.BORDER, detect.FRAME_SIDE, cv2.__version__,
                     align.LANDMARK_WEIGHTS],
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]


def _align(files, partners, crop, size: int, channels: int) -> Aligned:
    from jwarp.errors import DataError
    from jwarp.faces.align import crop_face, to_crop
    from jwarp.faces.detect import detect_faces

    images, pairs, kept, missing = [], [], [], []
    for i, f in enumerate(files):
        try:
            image = read_image(f, None, channels)
            faces = detect_faces(image)
        except DataError as e:
            missing.append(f"{f} ({e})")
            continue
        if not faces:
            missing.append(f"{f} (no face found)")
            continue
        transform = to_crop(faces[0].landmarks, crop, size)
        if partners is not None:
            try:
                partner = read_image(partners[i], None, channels)
            except DataError as e:
                missing.append(f"{partners[i]} ({e})")
                continue
            pairs.append(crop_face(partner, transform, size))
        images.append(crop_face(image, transform, size))
        kept.append(i)
    empty = np.zeros((0, size, size, channels), np.float32)
    return Aligned(
        np.stack(images) if images else empty,
        None if partners is None else (np.stack(pairs) if pairs else empty),
        np.asarray(kept, np.int64),
        missing,
    )


_REPORTED: set[tuple] = set()


def report_missing(where, total: int, aligned: Aligned) -> None:
    """One warning (once per process) that names the files left out of ``total``, or a
    ``DataError`` when none is left."""
    import warnings

    from jwarp.data.imagefile import SkippedFilesWarning, _list_some
    from jwarp.errors import DataError

    if not len(aligned.images):
        raise DataError(f"{where}: no face found in any of the {total} images "
                        f"({_list_some(aligned.missing, 2)})")
    key = (str(where), total, tuple(aligned.missing))
    if aligned.missing and key not in _REPORTED:
        _REPORTED.add(key)
        names = [Path(m.split(" (", 1)[0]).name + (" (" + m.split(" (", 1)[1] if " (" in m else "")
                 for m in aligned.missing]
        warnings.warn(SkippedFilesWarning(
            f"{where}: left out {len(aligned.missing)} of {total} images: {_list_some(names)}"),
            stacklevel=3)


def align_files(
    files: Sequence[str | Path],
    crop,
    size: int,
    channels: int,
    partners: Sequence[str | Path] | None = None,
    cache: bool = True,
) -> Aligned:
    """Each file's face (the best one), aligned to ``crop`` at ``size`` x ``size``.

    Args:
      files: image files, one face each.
      crop: the canonical crop (``jwarp.faces.align.CanonicalCrop``).
      size: the crop's side in pixels.
      channels: 1, 3 or 4.
      partners: optional files of the same shot (e.g. the same person smiling, taken from the
        same place), each cropped with its file's transform, so that a pair stays registered.
      cache: read and write jwarp's cache (``cache_dir("aligned")``).

    Returns:
      ``Aligned``.
    """
    if partners is not None and len(partners) != len(files):
        raise ValueError(f"partners: expected {len(files)} files, got {len(partners)}")
    if not cache:
        return _align(files, partners, crop, size, channels)
    from jwarp.files import atomic_write, cache_dir

    path = cache_dir("aligned") / f"{_key(files, partners, crop, size, channels)}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            partner = z["partners"] if "partners" in z.files else None
            return Aligned(z["images"].astype(np.float32),
                           None if partner is None else partner.astype(np.float32),
                           z["kept"], [str(m) for m in z["missing"]])
    except Exception:  # absent, or damaged in any way (a bad zip, a missing array): again
        pass
    out = _align(files, partners, crop, size, channels)
    arrays = {"images": out.images.astype(np.float16), "kept": out.kept,
              "missing": np.asarray(out.missing, dtype=str)}
    if out.partners is not None:
        arrays["partners"] = out.partners.astype(np.float16)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        atomic_write(path, buffer.getvalue())
    except OSError:  # a read-only home: align each time
        pass
    return out._replace(images=out.images.astype(np.float16).astype(np.float32),
                        partners=None if out.partners is None
                        else out.partners.astype(np.float16).astype(np.float32))


__all__ = ["CACHE_VERSION", "Aligned", "align_files", "report_missing"]
