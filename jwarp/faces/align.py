"""Faces to a model's canonical crop and back: similarity transforms fitted to landmarks.

A canonical crop (``CanonicalCrop``) says where a face's five landmarks sit in a model's square
input, as fractions of its side: how large the face is, where the eyes and the mouth are and so
how much of the head the crop holds. A face found in a photo (``jwarp.faces.detect``) is
brought there by the similarity (scale, rotation, shift) that best maps its landmarks onto the
crop's (``fit_similarity``, weighted least squares), and ``crop_face`` resamples it.
Coordinates are ``(row, col)`` of pixel centres, as everywhere in jwarp.

Host-side numpy, SciPy and Pillow; no JAX.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from PIL import Image

# YuNet's landmark order (``jwarp.faces.detect``): the person's right eye (on the left of the
# picture), left eye, nose tip, right and left mouth corners.
LANDMARKS = ("right_eye", "left_eye", "nose", "right_mouth", "left_mouth")

# How much each landmark counts in ``fit_similarity``. A smile moves the mouth corners out and
# up, so weighting them fully would shrink smiling faces against neutral ones (a bias a model
# would learn as a zoom); the eyes and the nose barely move with an expression, and the mouth's
# half share still fixes the face's height when the head is turned. On FEI's 180 pairs (one
# person, one camera position) the smiling face's crop comes out 1.8 % smaller than the neutral
# one's, against 1.9 % with equal weights and 2.2 % without the mouth.
LANDMARK_WEIGHTS = (1.0, 1.0, 1.0, 0.5, 0.5)

# The shipped face models' crop: SMILEsmileD's own framing (the mean landmarks of its neutral
# faces, made symmetric): the eyes a quarter of the way down and half the crop's width apart,
# the mouth three quarters down, cheek to cheek.
DEFAULT_CROP = (0.248, 0.25, 0.248, 0.75, 0.515, 0.5, 0.775, 0.3, 0.775, 0.7)


@dataclasses.dataclass(frozen=True)
class CanonicalCrop:
    """Where the landmarks of an aligned face sit in a model's square input.

    Attributes:
      points: ``(row, col)`` of each of the ``LANDMARKS``, as fractions of the crop's side
        (0 and 1 are the outer edges of the first and last pixel), flattened: 10 numbers.
    """

    points: tuple[float, ...]

    def __post_init__(self):
        if len(self.points) != 2 * len(LANDMARKS):
            raise ValueError(
                f"points: expected {2 * len(LANDMARKS)} numbers ((row, col) of "
                f"{', '.join(LANDMARKS)}), got {len(self.points)}"
            )

    def pixels(self, size: int) -> np.ndarray:
        """``[5, 2]`` landmark positions ``(row, col)`` in a ``size`` x ``size`` crop."""
        return np.asarray(self.points, np.float64).reshape(-1, 2) * size - 0.5

    @property
    def eye_distance(self) -> float:
        """Distance between the eyes, as a fraction of the crop's side (the face's scale)."""
        p = np.asarray(self.points).reshape(-1, 2)
        return float(np.hypot(*(p[1] - p[0])))


class Similarity(NamedTuple):
    """``q = matrix[:, :2] @ p + matrix[:, 2]``: a scale, a rotation and a shift, mapping
    ``(row, col)`` points ``p`` of one image to ``q`` of another (no reflection)."""

    matrix: np.ndarray  # [2, 3]

    @property
    def scale(self) -> float:
        """Length in the output per unit length in the input."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """``[..., 2]`` points -> ``[..., 2]``."""
        points = np.asarray(points, np.float64)
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]

    def inverse(self) -> Similarity:
        linear = np.linalg.inv(self.matrix[:, :2])
        return Similarity(np.concatenate([linear, -linear @ self.matrix[:, 2:]], axis=1))

    def then(self, other: Similarity) -> Similarity:
        """``other`` after ``self``: ``p -> other(self(p))``."""
        linear = other.matrix[:, :2] @ self.matrix[:, :2]
        shift = other.matrix[:, :2] @ self.matrix[:, 2] + other.matrix[:, 2]
        return Similarity(np.concatenate([linear, shift[:, None]], axis=1))


def fit_similarity(
    src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
) -> Similarity:
    """The similarity that maps ``src`` onto ``dst`` best in weighted least squares.

    In the complex plane (``z = row + i col``) a similarity without reflection is
    ``z -> a z + b``, and the weighted least-squares ``a`` is the weighted covariance of the
    centred points over the variance of ``src`` (Umeyama's solution, in closed form).

    Args:
      src: ``[N, 2]`` points ``(row, col)``, N >= 2, not all equal.
      dst: ``[N, 2]`` where they should go.
      weights: ``[N]`` non-negative weights (default: equal).

    Returns:
      The ``Similarity`` with ``apply(src) ≈ dst``.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"expected two [N, 2] arrays with N >= 2, got {src.shape}, {dst.shape}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    zs, zd = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    ms, md = np.sum(w * zs), np.sum(w * zd)
    variance = np.sum(w * np.abs(zs - ms) ** 2)
    if variance <= 0:
        raise ValueError("src: the points coincide; no similarity maps them")
    a = np.sum(w * (zd - md) * np.conj(zs - ms)) / variance
    b = md - a * ms
    # z -> a z + b as a real 2x2 matrix on (row, col).
    matrix = np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])
    return Similarity(matrix)


def to_crop(landmarks: np.ndarray, crop: CanonicalCrop, size: int) -> Similarity:
    """The similarity from a photo's coordinates to the ``size``-pixel canonical crop, fitted
    to a face's ``[5, 2]`` landmarks ``(row, col)`` with ``LANDMARK_WEIGHTS``."""
    return fit_similarity(landmarks, crop.pixels(size), np.asarray(LANDMARK_WEIGHTS))


def footprint(to_crop_: Similarity, size: int, shape: tuple[int, int], margin: float = 0.0):
    """The photo's pixel box that holds the crop (grown by ``margin`` photo pixels), clipped to
    the photo: ``(top, left, bottom, right)``, bottom and right exclusive; None when the crop
    lies outside the photo."""
    corners = np.array([[-0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, -0.5],
                        [size - 0.5, size - 0.5]])
    back = to_crop_.inverse().apply(corners)
    top, left = np.floor(back.min(axis=0) - margin).astype(int)
    bottom, right = np.ceil(back.max(axis=0) + margin).astype(int) + 1
    top, left = max(top, 0), max(left, 0)
    bottom, right = min(bottom, shape[0]), min(right, shape[1])
    if top >= bottom or left >= right:
        return None
    return int(top), int(left), int(bottom), int(right)


def _resize_planes(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[H, W, C]`` float32 -> ``[height, width, C]``, Lanczos (antialiased), per channel."""
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), "F").resize(
            (width, height), Image.Resampling.LANCZOS))
        for c in range(image.shape[-1])
    ]
    return np.stack(planes, axis=-1)


def resample(
    image: np.ndarray, to_out: Similarity, shape: tuple[int, int]
) -> np.ndarray:
    """``image`` seen through a similarity: output pixel ``q`` (of an ``shape`` grid) takes
    the image's value at ``to_out.inverse()(q)``, bilinear, the image's edge pixels repeated
    beyond it (``jwarp.sampler``'s ``"border"`` padding). Where the output is smaller than
    the image (``to_out.scale < 1``) the image is first shrunk with an antialiasing filter to
    about the output's scale, so that a 1000-pixel face does not alias into 64 pixels.

    Args:
      image: ``[H, W, C]`` float32 in ``[0, 1]``.
      to_out: image ``(row, col)`` -> output ``(row, col)``.
      shape: ``(height, width)`` of the output.

    Returns:
      ``[height, width, C]`` float32.
    """
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"image: expected [H, W, C], got shape {image.shape}")
    height, width = shape
    margin = 4.0 / min(to_out.scale, 1.0)  # the filter's reach, in image pixels
    corners = np.array([[-0.5, -0.5], [-0.5, width - 0.5], [height - 0.5, -0.5],
                        [height - 0.5, width - 0.5]])
    back = to_out.inverse().apply(corners)
    top, left = np.maximum(np.floor(back.min(axis=0) - margin).astype(int), 0)
    bottom, right = np.ceil(back.max(axis=0) + margin).astype(int) + 1
    bottom, right = min(bottom, image.shape[0]), min(right, image.shape[1])
    if top >= bottom or left >= right:  # nothing of the image in view: its nearest edge
        top, left, bottom, right = 0, 0, image.shape[0], image.shape[1]
    region = image[top:bottom, left:right]
    region_to_out = Similarity(np.array([[1.0, 0.0, top], [0.0, 1.0, left]])).then(to_out)
    factor = min(1.0, 1.25 * to_out.scale)  # shrink to a little above the output's scale
    h, w = region.shape[:2]
    small = (max(1, round(h * factor)), max(1, round(w * factor)))
    if factor < 0.8 and min(small) >= 2:
        region = _resize_planes(region, *small)
        fy, fx = small[0] / h, small[1] / w
        to_small = Similarity(np.array([[fy, 0.0, 0.5 * (fy - 1)], [0.0, fx, 0.5 * (fx - 1)]]))
        region_to_out = to_small.inverse().then(region_to_out)
    grid = np.stack(np.meshgrid(np.arange(height), np.arange(width), indexing="ij"), axis=-1)
    coords = region_to_out.inverse().apply(grid.reshape(-1, 2).astype(np.float64))
    out = bilinear(region, coords)
    return np.clip(out.reshape(height, width, -1), 0.0, 1.0).astype(np.float32)


def bilinear(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """``image`` ``[H, W, C]`` read at ``coords`` ``[N, 2]`` (row, col): bilinear, the edge
    pixels repeated beyond the image (``scipy.ndimage.map_coordinates(order=1,
    mode="nearest")``, without importing scipy: a command's start-up). Returns ``[N, C]``."""
    h, w = image.shape[:2]
    rows = np.clip(coords[:, 0], 0, h - 1)
    cols = np.clip(coords[:, 1], 0, w - 1)
    r0 = np.minimum(np.floor(rows).astype(np.intp), max(h - 2, 0))
    c0 = np.minimum(np.floor(cols).astype(np.intp), max(w - 2, 0))
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    fr, fc = (rows - r0)[:, None], (cols - c0)[:, None]
    top = image[r0, c0] * (1 - fc) + image[r0, c1] * fc
    bottom = image[r1, c0] * (1 - fc) + image[r1, c1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def crop_face(image: np.ndarray, to_crop_: Similarity, size: int) -> np.ndarray:
    """The ``size`` x ``size`` crop of ``image`` that ``to_crop_`` describes (``resample``).

    Args:
      image: ``[H, W, C]`` float32 in ``[0, 1]``.
      to_crop_: photo ``(row, col)`` -> crop ``(row, col)``.
      size: the crop's side in pixels.

    Returns:
      ``[size, size, C]`` float32.
    """
    return resample(image, to_crop_, (size, size))


__all__ = [
    "DEFAULT_CROP",
    "LANDMARKS",
    "LANDMARK_WEIGHTS",
    "CanonicalCrop",
    "Similarity",
    "crop_face",
    "fit_similarity",
    "footprint",
    "resample",
    "to_crop",
]
