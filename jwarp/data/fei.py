"""The FEI face database's frontal images: the same person neutral (``<n>a``) and smiling
(``<n>b``), real pairs for the paper's paired experiment and more real faces for the
unpaired one.

FEI's terms are research use only, with no redistribution: jwarp ships none of it; a user
brings their own copy (``data_dir``: the folder holding the images, or one holding
``frontal/``). Train and test split by person, from a hash of the subject number, so one
person is never on both sides. Faces are aligned to the canonical crop
(``jwarp.data.aligned``), each pair with the neutral image's transform: FEI's images are
already registered, and one transform keeps the pair so.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from jwarp.data.common import check_channels, split_index, split_of
from jwarp.data.folders import IMAGE_EXTENSIONS
from jwarp.errors import DataError

FEI_TEST_PERCENT = 12
FEI_HINT = (
    "expected FEI's frontal images as <n>a.jpg (neutral) and <n>b.jpg (smiling), in the "
    "folder or in its frontal/"
)
_NAME = re.compile(r"(\d+)([ab])", re.IGNORECASE)


def fei_pairs(data_dir: str | Path, split: str = "train") -> tuple[list[Path], list[Path]]:
    """The neutral and smiling files of the people in ``split``, by subject number.

    A person is in the test split when ``split_of("fei<n>", FEI_TEST_PERCENT)`` says so;
    people with only one of the two images are left out.

    Raises:
      DataError: no pairs in the folder (one line naming it).
    """
    root = Path(data_dir)
    if (root / "frontal").is_dir():
        root = root / "frontal"
    if not root.is_dir():
        raise DataError(f"{data_dir}: not a folder; {FEI_HINT}")
    found: dict[int, dict[str, Path]] = {}
    for f in sorted(root.iterdir()):
        m = _NAME.fullmatch(f.stem)
        if m and f.suffix.lower() in IMAGE_EXTENSIONS and not f.is_dir():
            found.setdefault(int(m.group(1)), {})[m.group(2).lower()] = f
    people = sorted(n for n, both in found.items() if len(both) == 2)
    if not people:
        raise DataError(f"{data_dir}: no neutral/smiling pairs; {FEI_HINT}")
    want = split_index(split)
    mine = [n for n in people if (split_of(f"fei{n}", FEI_TEST_PERCENT) == "test") == (want == 1)]
    if not mine:
        raise DataError(f"{data_dir}: no person falls in the {split} split")
    return [found[n]["a"] for n in mine], [found[n]["b"] for n in mine]


def load_fei(
    data_dir: str | Path, split: str = "train", size: int = 64, channels: int = 1, crop=None
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned FEI pairs: ``(neutral [N, size, size, C], smiling [N, size, size, C])``,
    ``smiling[i]`` the same person as ``neutral[i]``.

    Args:
      data_dir: FEI's frontal images (or the folder holding ``frontal/``).
      split: ``"train"`` or ``"test"``.
      size: the crop's side.
      channels: 1 (FEI's own grey), 3 or 4.
      crop: the canonical crop (``jwarp.faces.align.CanonicalCrop``); default the shipped
        models' (``DEFAULT_CROP``).
    """
    from jwarp.data.aligned import align_files, report_missing
    from jwarp.faces.align import DEFAULT_CROP, CanonicalCrop

    check_channels(channels)
    neutral, smiling = fei_pairs(data_dir, split)
    got = align_files(neutral, crop or CanonicalCrop(DEFAULT_CROP), size, channels,
                      partners=smiling)
    report_missing(data_dir, len(neutral), got)
    return got.images, got.partners


__all__ = ["FEI_HINT", "FEI_TEST_PERCENT", "fei_pairs", "load_fei"]
