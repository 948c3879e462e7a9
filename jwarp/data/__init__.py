"""Data sources for jwarp: real smiles and MNIST, procedural faces, scikit-learn digits,
image folders, arrays; and the minibatches training draws from them.

Every source returns ``float32`` images ``[N, H, W, C]`` with values in ``[0, 1]`` and
``C in {1, 3, 4}`` (docs/method.md §2); RGBA holds straight colours, and dropping alpha
composites on black (``jwarp.data.common``). Everything here is plain numpy + Pillow: no JAX,
no network, and user files are never unpickled.

Sources (docs/method.md §6), by module:

* ``folders``: ``load_smiles``, real 64x64 grey faces of a SMILEsmileD checkout, neutral
  (source) and smiling (target), unpaired (the paper's smile experiment); ``load_folder``,
  ``source/`` and ``target/`` image folders; ``read_image``, one image file.
* ``fei``: ``load_fei``, FEI's frontal images, the same person neutral and smiling (pairs).
* ``aligned``: ``align_files``, faces found and aligned to a canonical crop (cached), for
  ``smiles``, ``fei`` and folders with ``data.align``.
* ``augment``: random changes of training images (light, blur, noise, small shifts, turns and
  scalings), applied by ``Batches``.
* ``digits``: ``load_mnist``, real MNIST digits of two classes (3s -> 4s by default) from the
  standard IDX files, the ``t10k`` files alone being enough (the paper's digit experiment);
  ``digits``, the real 8x8 handwritten digits bundled with scikit-learn, upsampled.
* ``faces``: ``faces`` / ``faces_at``, procedurally rendered, anti-aliased faces; each face
  exists at any smile level ``s in [0, 1]`` and the smile is purely geometric, so
  ``(s=0, s=1)`` pairs are exact and every intermediate frame is known.
* ``arrays``: ``load_array``, ``.npz`` / ``.npy`` arrays.
* ``batching``: ``Batches``, an endless, deterministic and resumable stream of
  ``{"x0", "x1"}`` minibatches; ``nearest_pairs``.

``smiles`` and ``mnist`` split train/test by a hash of each file name or index
(``split_of``), so the split never changes with the machine or with which files are present;
``faces`` and ``digits`` by seeded streams; folders and arrays have no test split.
``load_dataset`` loads the data set a ``jwarp.config.DataConfig`` names.
"""

from __future__ import annotations

import numpy as np

from jwarp.data.arrays import ArrayData, load_array
from jwarp.data.augment import AugmentConfig
from jwarp.data.batching import Batches, nearest_pairs
from jwarp.data.common import split_of
from jwarp.data.digits import (
    MNIST_TEST_PERCENT,
    digits,
    digits_labelled,
    load_mnist,
    mnist_labelled,
    read_idx,
    reframed_digits,
)
from jwarp.data.faces import (
    FaceParams,
    face_params,
    faces,
    faces_at,
    render_face,
    render_faces,
    sample_face_params,
)
from jwarp.data.fei import FEI_TEST_PERCENT, fei_pairs, load_fei
from jwarp.data.folders import (
    IMAGE_EXTENSIONS,
    SMILES_HINT,
    SMILES_NEUTRAL,
    SMILES_SMILING,
    SMILES_TEST_PERCENT,
    SkippedFilesWarning,
    load_folder,
    load_smiles,
    open_image,
    read_image,
    smiles_files,
    smiles_folders,
)
from jwarp.errors import DataError

__all__ = [
    "FEI_TEST_PERCENT",
    "IMAGE_EXTENSIONS",
    "MNIST_TEST_PERCENT",
    "SMILES_HINT",
    "SMILES_NEUTRAL",
    "SMILES_SMILING",
    "SMILES_TEST_PERCENT",
    "ArrayData",
    "AugmentConfig",
    "Batches",
    "DataError",
    "FaceParams",
    "fei_pairs",
    "SkippedFilesWarning",
    "digits",
    "digits_labelled",
    "face_params",
    "faces",
    "faces_at",
    "load_array",
    "load_dataset",
    "load_fei",
    "load_folder",
    "load_mnist",
    "load_smiles",
    "mnist_labelled",
    "nearest_pairs",
    "open_image",
    "read_idx",
    "reframed_digits",
    "read_image",
    "render_face",
    "render_faces",
    "sample_face_params",
    "smiles_files",
    "smiles_folders",
    "split_of",
]


def load_dataset(cfg, split: str = "train", seed: int = 0) -> tuple[np.ndarray, np.ndarray, bool]:
    """Loads the data set a ``jwarp.config.DataConfig`` names.

    Args:
      cfg: the data configuration (``name``, ``data_dir``, ``paired``, ``image_size``,
        ``channels``, ``n_train``, ``n_test``, ``source_class``, ``target_class``; and
        ``canonical_crop``, ``fei_dir`` of a ``DataConfig``: faces aligned, FEI added).
      split: ``"train"`` or ``"test"``. Sources without a test split (folders, arrays) return
        the same images for both; ``smiles`` and ``mnist`` split by a hash of each file name
        or index (``split_of``), ``fei`` by a hash of the subject number.
      seed: data seed (faces and digits).

    Returns:
      ``(x0 [N, H, W, C], x1 [M, H, W, C], paired)``.
    """
    size, channels = cfg.image_size, cfg.channels
    if cfg.name == "faces":
        n = cfg.n_train if split == "train" else cfg.n_test
        x0, x1 = faces(n, size=size, channels=channels, split=split, seed=seed)
        return x0, x1, True
    crop = getattr(cfg, "canonical_crop", None)  # DataConfig's; None for a plain namespace
    if cfg.name == "smiles":
        x0, x1 = load_smiles(cfg.data_dir, split, size, channels, crop)
        if getattr(cfg, "fei_dir", ""):
            f0, f1 = load_fei(cfg.fei_dir, split, size, channels, crop)
            x0, x1 = np.concatenate([x0, f0]), np.concatenate([x1, f1])
        return x0, x1, False
    if cfg.name == "fei":
        x0, x1 = load_fei(cfg.data_dir, split, size, channels, crop)
        return x0, x1, True
    if cfg.name in ("digits", "mnist"):
        classes = cfg.source_class, cfg.target_class
        if cfg.name == "digits":
            x0, x1 = digits(split, size, seed, *classes)
        else:
            x0, x1 = load_mnist(cfg.data_dir, split, size, *classes)
        if channels != 1:
            x0, x1 = np.repeat(x0, channels, axis=-1), np.repeat(x1, channels, axis=-1)
            if channels == 4:  # opaque
                x0[..., 3], x1[..., 3] = 1.0, 1.0
        return x0, x1, False
    if cfg.name == "folder":
        x0, x1 = load_folder(cfg.data_dir, size, channels, paired=cfg.paired, crop=crop)
        return x0, x1, cfg.paired
    if cfg.name == "npy":
        arrays = load_array(cfg.data_dir, size=size, channels=channels)
        return arrays.source, arrays.target, cfg.paired
    raise ValueError(f"data.name: unknown data set {cfg.name!r}")
