"""Faces and their five landmarks in any image: YuNet through OpenCV's ``cv2.FaceDetectorYN``.

The network's weights ship inside jwarp (``jwarp/faces/yunet/``: libfacedetection's YuNet,
3-clause BSD, rebuilt as the ONNX graph OpenCV reads; its README says how), so nothing is
downloaded; OpenCV (``opencv-python-headless``) runs it on the CPU in milliseconds. Measured on
real images at the default threshold (docs/faces.md): every face of the 12 colour photos and
of the 64 CK+ camera frames tried, 99.8 % of SMILEsmileD's 64x64 crops, all 360 FEI images,
and no false face on 145 images without one.

* A photo is searched at a working size (its longer side 320 to 640 pixels: the network's
  sweet spot, and 15 ms for a 12-megapixel photo), then once more at 1280 if nothing was found.
* A face that fills the image, or comes near its edge (a tight crop such as SMILEsmileD's or
  FEI's, a selfie), has too little around it for the network: it is often found, but its
  landmarks slide down the face (by 3 to 6 pixels in a 64-pixel SMILEsmileD crop). Such a
  face, or an image without any, is searched again on a copy with a black border of a
  quarter of its size on each side, which puts them where they belong.

Landmarks are ``(row, col)`` pixel centres of the original image, in ``LANDMARKS`` order.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from importlib import resources
from typing import NamedTuple

import numpy as np

from jwarp.faces.align import LANDMARKS

THRESHOLD = 0.8  # faces score 0.89-0.95; the best non-face seen scored 0.75 (docs/faces.md)
NMS = 0.3
WORK_SIDES = (640, 1280)  # longer side of the working copy: the first try, then a second
MIN_SIDE = 320  # smaller photos are enlarged to this first
BORDER = 0.25  # the full-frame retry: black border per side, as a fraction of the size
FRAME_SIDE = 256  # ... and the padded copy's longer side, at least
MODEL = "yunet/yunet.onnx"


class Face(NamedTuple):
    """A face found in an image.

    Attributes:
      landmarks: ``[5, 2]`` ``(row, col)`` of the ``LANDMARKS`` (the person's right eye
        first, which is on the left of the picture).
      box: ``(top, left, height, width)`` of the face's box, pixels.
      score: the detector's confidence in ``[0, 1]``.
    """

    landmarks: np.ndarray
    box: tuple[float, float, float, float]
    score: float

    @property
    def eye_distance(self) -> float:
        """Pixels between the eye centres: the face's scale."""
        return float(np.hypot(*(self.landmarks[1] - self.landmarks[0])))

    @property
    def width(self) -> float:
        """The face's width in pixels (its box's)."""
        return float(self.box[3])


@contextlib.contextmanager
def _quiet_stderr():
    """OpenCV 5 warns on stderr, from C++, that its new graph engine ignores the (default)
    target when the detector is made; nothing a user can act on."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.lru_cache(maxsize=1)
def _detector(threshold: float):
    import cv2  # opencv-python-headless: loaded on first use only

    path = resources.files("jwarp.faces").joinpath(MODEL)
    with resources.as_file(path) as model, _quiet_stderr():
        return cv2.FaceDetectorYN.create(str(model), "", (320, 320), threshold, NMS, 5000)


def _bgr_uint8(image: np.ndarray) -> np.ndarray:
    """``[H, W, C]`` (or ``[H, W]``) floats in ``[0, 1]`` or uint8 -> ``[H, W, 3]`` uint8 BGR;
    alpha is dropped by compositing on black, as everywhere in jwarp."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image: expected [H, W, C] with C in (1, 3, 4), got {image.shape}")
    x = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    if x.shape[-1] == 4:
        x = x[..., :3] * x[..., 3:]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.ascontiguousarray(np.round(np.clip(x[..., ::-1], 0, 1) * 255).astype(np.uint8))


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _run(image: np.ndarray, scale: float, offset: tuple[float, float],
         threshold: float) -> list[Face]:
    """The detector on ``image`` resized by about ``scale`` (each axis by its own rounded
    factor), its results in ``image``'s coordinates less ``offset`` ``(rows, cols)``."""
    resized = _resize(image, scale)
    factor = np.array(resized.shape[:2]) / np.array(image.shape[:2])  # (rows, cols)
    detector = _detector(threshold)
    h, w = resized.shape[:2]
    detector.setInputSize((w, h))
    _, found = detector.detect(resized)
    faces = []
    for f in [] if found is None else found:
        xy = f[4:14].reshape(5, 2).astype(np.float64)
        # OpenCV's (x, y) of pixel centres -> jwarp's (row, col), undoing the resize.
        rc = (xy[:, ::-1] + 0.5) / factor - 0.5 - np.asarray(offset)
        top, left = (np.array([f[1], f[0]]) + 0.5) / factor - 0.5 - np.asarray(offset)
        box = (float(top), float(left), float(f[3] / factor[0]), float(f[2] / factor[1]))
        if np.all(np.isfinite(rc)) and box[2] > 0 and box[3] > 0:
            faces.append(Face(rc, box, float(f[14])))
    return faces


def detect_faces(image: np.ndarray, threshold: float = THRESHOLD) -> list[Face]:
    """Every face in ``image``, best first.

    Args:
      image: ``[H, W, C]`` floats in ``[0, 1]`` or uint8, ``C in {1, 3, 4}`` (grey, RGB, RGBA),
        any size.
      threshold: the smallest detector score kept.

    Returns:
      The faces found (possibly none), by decreasing score.
    """
    bgr = _bgr_uint8(image)
    h, w = bgr.shape[:2]
    longest = max(h, w)
    faces: list[Face] = []
    for side in WORK_SIDES:
        if faces or (side > WORK_SIDES[0] and longest <= WORK_SIDES[0]):
            break
        scale = min(side / longest, 1.0) if longest > MIN_SIDE else MIN_SIDE / longest
        faces = _run(bgr, scale, (0.0, 0.0), threshold)
    if not faces or any(_near_edge(f, h, w) for f in faces):
        import cv2

        ph, pw = round(h * BORDER), round(w * BORDER)
        padded = cv2.copyMakeBorder(bgr, ph, ph, pw, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        side = min(max(max(padded.shape[:2]), FRAME_SIDE), WORK_SIDES[0])
        scale = side / max(padded.shape[:2])
        bordered = _run(padded, scale, (float(ph), float(pw)), threshold)
        # The bordered copy's faces, and the first search's that it lost (small faces of a
        # large photo, shrunk further by the border).
        faces = bordered + [f for f in faces if not any(_same(f, g) for g in bordered)]
    return sorted(faces, key=lambda f: -f.score)


def _near_edge(face: Face, height: int, width: int) -> bool:
    """Whether ``face``'s box, grown by a quarter of its size, leaves the image."""
    top, left, h, w = face.box
    return (top - h / 4 < 0 or left - w / 4 < 0 or top + 1.25 * h > height
            or left + 1.25 * w > width)


def _same(a: Face, b: Face) -> bool:
    """Whether two detections are one face (their boxes' centres within half a width)."""
    ca = np.array([a.box[0] + a.box[2] / 2, a.box[1] + a.box[3] / 2])
    cb = np.array([b.box[0] + b.box[2] / 2, b.box[1] + b.box[3] / 2])
    return float(np.hypot(*(ca - cb))) < 0.5 * max(a.box[3], b.box[3])


__all__ = ["LANDMARKS", "THRESHOLD", "Face", "detect_faces"]
