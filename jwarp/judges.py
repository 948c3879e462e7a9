"""Independent judges: classifiers fitted on real images only, never on model output.

A judge says whether a warped image reached the target class: a neutral face that now reads as
smiling, a 3 that now reads as a 4. Each is fitted on the training split of the real data set
(the split ``jwarp.data`` gives) and scored on its real test split, and nothing a model made
ever enters a fit. Host-side numpy and scikit-learn; no JAX.

* ``SmileJudge``: logistic regression on HOG features (scikit-image) of real SMILEsmileD faces.
* ``DigitJudge``: an RBF support-vector machine on the pixels of real digits, all ten classes
  (MNIST, or scikit-learn's bundled digits).
"""

from __future__ import annotations

import functools
from pathlib import Path

import chex
import numpy as np
from PIL import Image

from jwarp import data as data_lib

# Chosen by 5-fold cross-validation on the training split (balanced accuracy; C = 1e-4, 3e-4,
# 1e-3, 3e-3, 0.01, 0.03, 0.1 gave 0.880, 0.888, 0.895, 0.892, 0.889, 0.886, 0.879).
SMILE_C = 1e-3
SMILE_SIZE = 64  # SMILEsmileD's own resolution; other sizes are resized to it first


def _grey(images: np.ndarray) -> np.ndarray:
    """``[N, H, W, C]`` in ``[0, 1]`` -> ``[N, H, W]`` luminance (alpha composited on black)."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    chex.assert_rank(images, 4)
    c = images.shape[-1]
    if c == 1:
        return images[..., 0]
    rgb = images[..., :3] * (images[..., 3:] if c == 4 else 1.0)
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def _resized(grey: np.ndarray, size: int) -> np.ndarray:
    """``[N, H, W]`` -> ``[N, size, size]`` (bicubic; unchanged at that size)."""
    if grey.shape[1:] == (size, size):
        return grey
    planes = [Image.fromarray(np.ascontiguousarray(g), "F").resize((size, size),
                                                                   Image.Resampling.BICUBIC)
              for g in grey]
    return np.clip(np.stack([np.asarray(p) for p in planes]), 0.0, 1.0)


def hog_features(images: np.ndarray) -> np.ndarray:
    """HOG descriptors of ``[N, H, W, C]`` images at 64x64: 9 orientations, 8x8-pixel cells,
    2x2-cell blocks (L2-Hys), ``[N, 1764]``."""
    from skimage.feature import hog

    grey = _resized(_grey(images), SMILE_SIZE)
    return np.stack([
        hog(g, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for g in grey
    ]).astype(np.float32)


class SmileJudge:
    """Smiling or not: logistic regression on HOG features, fitted on the training split of a
    SMILEsmileD checkout (neutral and smiling faces, classes weighted equally).

    With ``aligned``, the faces are first aligned to the shipped models' canonical crop
    (``jwarp.faces.align.DEFAULT_CROP``, SMILEsmileD's own framing) by their landmarks, and
    the judge expects faces cropped the same way (``jwarp.faces.photo``): the eyes-to-chin crop
    of any photo's face.

    Attributes:
      accuracy: on the real test faces, both classes pooled.
      smiling_rate_smiling: share of the real smiling test faces judged smiling.
      smiling_rate_neutral: share of the real neutral test faces judged smiling.
    """

    def __init__(self, data_dir: str | Path, aligned: bool = False):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        crop = None
        if aligned:
            from jwarp.faces.align import DEFAULT_CROP, CanonicalCrop

            crop = CanonicalCrop(DEFAULT_CROP)
        self.aligned = aligned
        neutral, smiling = data_lib.load_smiles(data_dir, "train", SMILE_SIZE, 1, crop)
        x = hog_features(np.concatenate([neutral, smiling]))
        y = np.r_[np.zeros(len(neutral)), np.ones(len(smiling))].astype(np.int64)
        self._model = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=SMILE_C, max_iter=3000, class_weight="balanced"),
        ).fit(x, y)
        neutral, smiling = data_lib.load_smiles(data_dir, "test", SMILE_SIZE, 1, crop)
        on_neutral, on_smiling = self.predict(neutral), self.predict(smiling)
        self.smiling_rate_neutral = float(np.mean(on_neutral))
        self.smiling_rate_smiling = float(np.mean(on_smiling))
        self.accuracy = float(
            (np.sum(on_neutral == 0) + np.sum(on_smiling == 1)) / (len(neutral) + len(smiling))
        )

    def predict(self, images: np.ndarray) -> np.ndarray:
        """``[N, H, W, C]`` images in ``[0, 1]`` -> ``[N]`` int, 1 where judged smiling."""
        return self._model.predict(hog_features(images))


class DigitJudge:
    """Which digit: an RBF support-vector machine on the ``size`` x ``size`` pixels, fitted on
    the real digits of all ten classes in the training split of ``jwarp.data``'s ``mnist``
    (``data_dir`` given) or ``digits`` (scikit-learn's, split with ``seed``) data set.

    Attributes:
      accuracy: on the real test digits of all ten classes.
    """

    def __init__(self, size: int = 32, data_dir: str | Path | None = None, seed: int = 0):
        from sklearn.svm import SVC

        if data_dir is None:
            labelled = functools.partial(data_lib.digits_labelled, size=size, seed=seed)
        else:
            labelled = functools.partial(data_lib.mnist_labelled, data_dir, size=size)
        x, y = labelled("train")
        self.size = size
        self._svc = SVC(gamma="scale", C=1.0).fit(x.reshape(len(x), -1), y)
        xt, yt = labelled("test")
        self.accuracy = float(np.mean(self.predict(xt) == yt))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """``[N, size, size, C]`` images in ``[0, 1]`` (ink bright) -> ``[N]`` labels 0..9."""
        grey = _grey(images)
        chex.assert_shape(grey, (None, self.size, self.size))
        return self._svc.predict(grey.reshape(len(grey), -1))


@functools.lru_cache(maxsize=4)
def smile_judge(data_dir: str, aligned: bool = False) -> SmileJudge:
    """The fitted ``SmileJudge`` of a checkout (cached: fitting takes seconds)."""
    return SmileJudge(data_dir, aligned)


@functools.lru_cache(maxsize=4)
def digit_judge(size: int = 32, data_dir: str | None = None, seed: int = 0) -> DigitJudge:
    """The fitted ``DigitJudge`` (cached)."""
    return DigitJudge(size, data_dir, seed)


__all__ = ["DigitJudge", "SmileJudge", "digit_judge", "hog_features", "smile_judge"]
