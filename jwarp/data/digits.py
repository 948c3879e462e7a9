"""Handwritten digits, 3s -> 4s by default: scikit-learn's bundled 8x8 digits and MNIST.

* ``digits``: the real 8x8 digits bundled with scikit-learn (no download), upsampled; each
  class split 80/20 into train/test by a seeded permutation.
* ``load_mnist``: real MNIST digits of two classes from the standard IDX files; the ``t10k``
  files alone are enough (the paper's digit experiment). Train/test by a hash of each index
  (``split_of``), so the split never changes with the machine or with which files are present.

Images are ``float32 [N, size, size, 1]`` in ``[0, 1]``; the ``*_labelled`` variants also give
the labels ``[N]`` of any classes (for the digit judge).
"""

from __future__ import annotations

import functools
import gzip
import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from jwarp.data.common import require_folder, resize_float, split_index, split_of
from jwarp.errors import DataError


@functools.cache
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 bundled 8x8 digits (read-only): images ``[1797, 8, 8]`` in 0..16, labels."""
    from sklearn.datasets import load_digits  # ships with scikit-learn; no download

    bunch = load_digits()
    images, labels = bunch.images.astype(np.float32), bunch.target.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def digits(
    split: str = "train", size: int = 32, seed: int = 0, source_class: int = 3,
    target_class: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """The handwritten 3s and 4s (or two other classes) bundled with scikit-learn, upsampled.

    The 8x8 images (values 0..16) are scaled to ``[0, 1]`` and resized bicubically (clipped).
    Each class is split 80/20 into train/test by a permutation seeded with ``(seed, label)``.

    Args:
      split: ``"train"`` or ``"test"``.
      size: output height and width.
      seed: split seed.
      source_class, target_class: the two digits.

    Returns:
      ``(sources [N, size, size, 1], targets [M, size, size, 1])``, ``float32`` in ``[0, 1]``
      (unpaired; for 3s and 4s about 146/145 train and 37/36 test images).
    """
    sources, _ = digits_labelled(split, size, seed, classes=(source_class,))
    targets, _ = digits_labelled(split, size, seed, classes=(target_class,))
    return sources, targets


def digits_labelled(
    split: str = "train", size: int = 32, seed: int = 0, classes: Sequence[int] = tuple(range(10))
) -> tuple[np.ndarray, np.ndarray]:
    """Bundled digits of several classes with their labels, split as ``digits`` splits them.

    The test 3s and 4s of ``digits(split="test")`` are exactly the test images of their classes
    here, so a classifier fitted on ``split="train"`` never sees them.

    Returns:
      ``(images [N, size, size, 1] float32 in [0, 1], labels [N] int64)``, class by class.
    """
    split_id = split_index(split)
    all_images, all_labels = _sklearn_digits()
    images_out, labels_out = [], []
    for label in classes:
        images = all_images[all_labels == label] / np.float32(16)
        perm = np.random.default_rng([seed, label]).permutation(len(images))
        n_train = int(round(0.8 * len(images)))
        keep = np.sort(perm[:n_train] if split_id == 0 else perm[n_train:])
        images_out.append(resize_float(images[keep, :, :, None], size, Image.Resampling.BICUBIC))
        labels_out.append(np.full(len(keep), label, np.int64))
    return np.concatenate(images_out), np.concatenate(labels_out)


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an unsigned-byte IDX file (``.gz`` transparently), e.g. MNIST.

    Args:
      path: the file.

    Returns:
      ``uint8`` array of the shape stored in the header.

    Raises:
      DataError: the header or the data length is not that of a ubyte IDX file.
    """
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # e.g. a cut-off .gz download
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise DataError(f"{path}: cannot read ({reason}); expected an IDX file") from None
    if len(data) < 4 or data[0:3] != b"\x00\x00\x08" or data[3] == 0:
        magic = data[:4].hex() or "<empty>"
        raise DataError(
            f"{path}: not an unsigned-byte IDX file (magic 0x{magic}, expected 0x000008dd)"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header truncated ({len(data)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != math.prod(shape):
        raise DataError(
            f"{path}: IDX shape {shape} needs {math.prod(shape)} data bytes, "
            f"found {len(data) - header}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _find_idx(data_dir: Path, stem: str) -> Path:
    alt = stem.replace("-idx", ".idx")  # e.g. Kaggle's "train-images.idx3-ubyte"
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(
        f"{data_dir}: missing MNIST IDX file {stem} (expected it, or {stem}.gz, in that folder)"
    )


def _read_idx_ndim(path: Path, ndim: int, what: str) -> np.ndarray:
    array = read_idx(path)
    if array.ndim != ndim:
        raise DataError(
            f"{path}: IDX magic 0x000008{array.ndim:02x}, expected 0x000008{ndim:02x} ({what})"
        )
    return array


MNIST_TEST_PERCENT = 20


def _read_mnist_files(data_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, h, w]`` uint8 and labels ``[N]`` of ``{prefix}-*-idx?-ubyte[.gz]``."""
    images_path = _find_idx(data_dir, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(data_dir, f"{prefix}-labels-idx1-ubyte")
    images = _read_idx_ndim(images_path, 3, "MNIST images")
    labels = _read_idx_ndim(labels_path, 1, "MNIST labels")
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}"
        )
    return images, labels


def _has_idx(data_dir: Path, stem: str) -> bool:
    try:
        _find_idx(data_dir, stem)
    except DataError:
        return False
    return True


def mnist_labelled(
    data_dir: str | Path,
    split: str = "train",
    size: int = 32,
    classes: Sequence[int] = tuple(range(10)),
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits of ``classes`` with their labels, from the standard IDX files.

    The test split is the ``MNIST_TEST_PERCENT`` % of the ``t10k`` digits that ``split_of``
    picks by index (``"t10k-<index>"``); the training split is the rest of ``t10k`` plus, when
    the folder has them, all of the ``train-*`` files. So the ``t10k`` files alone are enough,
    and the test split is the same whether or not the training files are there. The 28x28
    digits are zero-padded to 32x32 (the authors' framing) and resized bicubically if
    ``size != 32``.

    Args:
      data_dir: folder holding ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``
        (and optionally ``train-*``).
      split: ``"train"`` or ``"test"``.
      size: output height and width.
      classes: labels to keep, in this order.

    Returns:
      ``(images [N, size, size, 1] float32 in [0, 1], labels [N] int64)``, class by class.

    Raises:
      DataError: an IDX file is missing, damaged or not the expected one, or the counts
        disagree (one line naming the file).
    """
    data_dir = Path(data_dir)
    split_id = split_index(split)
    require_folder(data_dir, "expected a folder with the MNIST IDX files")
    images, labels = _read_mnist_files(data_dir, "t10k")
    in_test = np.array([split_of(f"t10k-{i}", MNIST_TEST_PERCENT) == "test"
                        for i in range(len(images))], bool)
    keep = in_test if split_id == 1 else ~in_test
    images, labels = images[keep], labels[keep]
    if split_id == 0 and _has_idx(data_dir, "train-images-idx3-ubyte"):
        more_images, more_labels = _read_mnist_files(data_dir, "train")
        if more_images.shape[1:] != images.shape[1:]:
            raise DataError(
                f"{data_dir}: train-* images are {more_images.shape[1:]}, t10k-* images "
                f"{images.shape[1:]}; expected the same size"
            )
        images = np.concatenate([more_images, images])
        labels = np.concatenate([more_labels, labels])
    h, w = images.shape[1:]
    top, left = max(32 - h, 0) // 2, max(32 - w, 0) // 2
    images_out, labels_out = [], []
    for label in classes:
        selected = images[labels == label]
        padded = np.zeros((len(selected), max(h, 32), max(w, 32), 1), np.float32)
        padded[:, top : top + h, left : left + w, 0] = selected / np.float32(255)
        images_out.append(resize_float(padded, size, Image.Resampling.BICUBIC))
        labels_out.append(np.full(len(selected), label, np.int64))
    return np.concatenate(images_out), np.concatenate(labels_out)


def load_mnist(
    data_dir: str | Path,
    split: str = "train",
    size: int = 32,
    source_class: int = 3,
    target_class: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits of two classes (3s and 4s by default), split as ``mnist_labelled``.

    Returns:
      ``(sources [N, size, size, 1], targets [M, size, size, 1])``, ``float32`` in ``[0, 1]``.

    Raises:
      DataError: as ``mnist_labelled``, or no digit of a class in the split.
    """
    images, labels = mnist_labelled(data_dir, split, size, (source_class, target_class))
    out = []
    for label in (source_class, target_class):
        if not np.any(labels == label):
            raise DataError(f"{data_dir}: no MNIST digit {label} in the {split} split")
        out.append(images[labels == label])
    return out[0], out[1]


def reframed_digits(images: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The same digits framed and drawn unlike MNIST's padded 28x28 ones, as other people's
    digits are: ``{name: [N, H, W, 1]}`` for ``"larger"`` (x1.25), ``"smaller"`` (x0.75),
    ``"thicker"`` (grey dilation, 3x3), ``"thinner"`` (grey erosion, cross, contrast doubled),
    ``"shifted"`` (up to 3 px each way), ``"turned"`` (up to 20 degrees) and ``"soft"`` (a
    1 px Gaussian blur). Deterministic in ``seed``; for held-out evaluation, never training.

    Args:
      images: ``[N, H, W, 1]`` digits in ``[0, 1]``, ink bright.
    """
    from scipy import ndimage

    g = np.asarray(images, np.float32)[..., 0]
    n = len(g)
    rng = np.random.default_rng(seed)
    shifts, angles = rng.integers(-3, 4, (n, 2)), rng.uniform(-20, 20, n)
    cross = ndimage.generate_binary_structure(2, 1)[None]

    def zoom(factor: float) -> np.ndarray:
        h, w = g.shape[1:]
        # Output pixel q samples centre + (q - centre) / factor (bilinear, zeros outside).
        centre = np.array([(h - 1) / 2, (w - 1) / 2])
        matrix = np.diag([1.0, 1 / factor, 1 / factor])
        offset = np.concatenate([[0.0], centre - centre / factor])
        return ndimage.affine_transform(g, matrix, offset, order=1, mode="constant")

    out = {
        "larger": zoom(1.25),
        "smaller": zoom(0.75),
        "thicker": ndimage.grey_dilation(g, size=(1, 3, 3)),
        "thinner": 2 * ndimage.grey_erosion(g, footprint=cross),
        "shifted": np.stack([ndimage.shift(a, s, order=1) for a, s in zip(g, shifts)]),
        "turned": np.stack([ndimage.rotate(a, t, reshape=False, order=1)
                            for a, t in zip(g, angles)]),
        "soft": ndimage.gaussian_filter(g, (0, 1, 1)),
    }
    return {k: np.clip(v, 0, 1).astype(np.float32)[..., None] for k, v in out.items()}
