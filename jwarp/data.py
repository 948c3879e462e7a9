"""Data sources for jwarp: real smiles and MNIST, procedural faces, scikit-learn digits,
image folders, arrays.

Every source returns ``float32`` images ``[N, H, W, C]`` with values in ``[0, 1]`` and
``C in {1, 3, 4}`` (SPEC §2). Everything here is plain numpy + Pillow: no JAX, no network, and
user files are never unpickled.

RGBA convention (faces, folders, arrays): RGB holds *straight* (unpremultiplied) colours and
alpha the coverage of the foreground; a fully transparent pixel is ``(0, 0, 0, 0)``. Dropping
alpha (``channels=3``) composites on black, i.e. ``rgb * alpha``; ``channels=1`` is the Rec. 601
luminance ``0.299 R + 0.587 G + 0.114 B`` of that composite (what Pillow's ``"L"`` uses).

Sources (SPEC §6):

* ``load_smiles``: real 64x64 grey faces of a SMILEsmileD checkout, neutral (source) and
  smiling (target), unpaired; the paper's smile experiment.
* ``load_mnist``: real MNIST digits of two classes (3s -> 4s by default) from the standard IDX
  files; the ``t10k`` files alone are enough. The paper's digit experiment.
* ``faces`` / ``faces_at``: procedurally rendered, anti-aliased faces; each face exists at any
  smile level ``s in [0, 1]`` and the smile is purely geometric (mouth curve, cheeks, lower
  eyelids), so ``(s=0, s=1)`` pairs are exact and every intermediate frame is known.
* ``digits``: the real 8x8 handwritten digits bundled with scikit-learn, 3s (source) and
  4s (target) by default, upsampled.
* ``load_folder``: ``source/`` and ``target/`` image folders.
* ``load_array``: ``.npz`` / ``.npy`` arrays.

``smiles`` and ``mnist`` split train/test by a hash of each file name or index
(``split_of``), so the split never changes with the machine or with which files are present;
``faces`` and ``digits`` by seeded streams; folders and arrays have no test split.

``Batches`` turns a ``(source, target)`` pair of arrays into an endless, deterministic and
resumable stream of ``{"x0", "x1"}`` minibatches.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import math
import struct
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jwarp.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MNIST_TEST_PERCENT",
    "SMILES_TEST_PERCENT",
    "ArrayData",
    "Batches",
    "DataError",
    "FaceParams",
    "SkippedFilesWarning",
    "digits",
    "face_params",
    "faces",
    "faces_at",
    "load_array",
    "load_folder",
    "load_mnist",
    "load_smiles",
    "mnist_labelled",
    "nearest_pairs",
    "open_image",
    "read_idx",
    "render_face",
    "render_faces",
    "sample_face_params",
    "smiles_files",
    "split_of",
]


class SkippedFilesWarning(UserWarning):
    """Some files of an image folder could not be read and were left out (one line)."""


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601, as Pillow's "L" conversion
_SPLITS = {"train": 0, "test": 1}


def _split_id(split: str) -> int:
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _SPLITS[split]


def _check_channels(channels: int) -> None:
    if channels not in (1, 3, 4):
        raise ValueError(f"channels must be 1, 3 or 4, got {channels!r}")


def _to_channels(rgb: np.ndarray, alpha: np.ndarray, channels: int) -> np.ndarray:
    """Straight RGB ``[..., 3]`` and alpha ``[...]`` -> ``[..., channels]`` (see module doc)."""
    if channels == 4:
        return np.concatenate([rgb, alpha[..., None]], axis=-1)
    on_black = rgb * alpha[..., None]
    if channels == 3:
        return on_black
    return (on_black @ _LUMA)[..., None]


# --------------------------------------------------------------------------------------------
# Procedural faces.
#
# Geometry lives in a face-local frame: origin at the head centre, y pointing down, unit = head
# radius R (vertical). Shapes are signed distance functions (negative inside); a pixel's
# coverage is the analytic box-filter approximation clip(0.5 - sd * R_px, 0, 1), which
# anti-aliases every edge at a cost of one evaluation per pixel. All functions broadcast over
# a leading face axis, so a whole batch of faces renders in one pass of numpy ops.
# --------------------------------------------------------------------------------------------

_EYE_WHITE = (0.96, 0.96, 0.94)
_PUPIL = (0.06, 0.05, 0.05)
_SKIN = np.array(
    [
        [0.99, 0.87, 0.77],
        [0.94, 0.75, 0.62],
        [0.80, 0.57, 0.41],
        [0.58, 0.39, 0.26],
        [0.38, 0.24, 0.16],
    ]
)
_HAIR = np.array(
    [
        [0.09, 0.07, 0.06],  # black
        [0.33, 0.20, 0.11],  # brown
        [0.86, 0.72, 0.42],  # blond
        [0.64, 0.27, 0.12],  # auburn
        [0.72, 0.72, 0.74],  # grey
    ]
)
_IRIS = np.array(
    [
        [0.36, 0.21, 0.10],  # brown
        [0.25, 0.46, 0.76],  # blue
        [0.28, 0.56, 0.35],  # green
        [0.47, 0.52, 0.57],  # grey
        [0.56, 0.42, 0.20],  # hazel
    ]
)

# How the smile (s = 0 -> 1) changes the geometry; everything else is fixed per face.
_SMILE_WIDEN = 0.15  # relative mouth widening
_CHEEK_RISE = 0.09  # in units of R
_CHEEK_GROW = 0.12  # relative cheek growth
_LID_RISE = 0.6  # lower lid rise, in units of the eye's vertical radius
_LID_CURVE = 0.35  # lower lid bends into an arch (happy eyes)


@dataclasses.dataclass(frozen=True)
class FaceParams:
    """Everything that defines one face except the smile level.

    Lengths are in units of the head's vertical radius ``R`` in the face-local frame (origin at
    the head centre, y down) unless stated otherwise; colours are RGB in ``[0, 1]``.
    """

    center: tuple[float, float]  # head centre (dy, dx) from the image centre, / size
    radius: float  # R, / size
    aspect: float  # horizontal / vertical head radius
    angle: float  # in-plane head rotation (radians)
    shift: float  # horizontal shift of all features (a hint of yaw)
    skin: tuple[float, float, float]
    lip: tuple[float, float, float]
    eye_color: tuple[float, float, float]
    hair_color: tuple[float, float, float]  # also the brow colour
    has_hair: bool
    hair_line: float  # hairline height at the centre (negative: above the head centre)
    hair_curve: float  # how far the hairline drops towards the temples
    hair_scale: float  # hair cap size relative to the head
    eye_y: float
    eye_dx: float  # half the distance between the eye centres
    eye_rx: float
    eye_ry: float
    iris: float  # iris radius / eye_ry
    gaze: float  # horizontal iris offset / eye_rx
    brow_gap: float  # from the top of the eye to the brow centre line
    brow_len: float  # brow half length
    brow_thick: float  # brow half thickness
    brow_arch: float  # > 0: ends lower than the middle
    brow_tilt: float  # > 0: inner ends lower (stern), < 0: raised (worried)
    nose_y: float  # nose tip height
    nose_w: float  # nose base half width
    mouth_y: float  # height of the neutral mouth line
    mouth_w: float  # neutral mouth half width
    lip_thick: float  # lip line half thickness
    mouth_curve: float  # sag of the neutral mouth (> 0: slightly downturned)
    smile_lift: float  # how far the mouth corners rise at s = 1
    smile_open: float  # how far the lower lip drops below the upper lip at s = 1


def _colour(rng: np.random.Generator, palette: np.ndarray, jitter: float, blend: bool) -> tuple:
    """A palette colour (or, with ``blend``, a mix of two neighbours) with a little jitter."""
    if blend:
        t = rng.uniform(0, len(palette) - 1)
        i = min(int(t), len(palette) - 2)
        colour = palette[i] + (t - i) * (palette[i + 1] - palette[i])
    else:
        colour = palette[rng.integers(len(palette))]
    colour = colour + rng.uniform(-jitter, jitter, 3)
    return tuple(float(c) for c in np.clip(colour, 0.0, 1.0))


def sample_face_params(rng: np.random.Generator) -> FaceParams:
    """Draws the parameters of one random face.

    Consumes a fixed number of draws from ``rng``, so face ``i`` of a stream does not depend on
    how many faces follow it.

    Args:
      rng: numpy random generator.

    Returns:
      A ``FaceParams``.
    """
    u = rng.uniform
    skin = np.array(_colour(rng, _SKIN, 0.03, blend=True))
    lip = np.clip(0.4 * skin + 0.6 * np.array([0.74, 0.24, 0.27]) + u(-0.05, 0.05, 3), 0, 1)
    eye_color = _colour(rng, _IRIS, 0.05, blend=False)
    hair_color = _colour(rng, _HAIR, 0.04, blend=False)
    has_hair = bool(u() < 0.75)
    if not has_hair:  # brows in a darker shade of the skin
        hair_color = tuple(float(c) for c in skin * 0.35)
    eye_rx = u(0.12, 0.17)
    aspect = u(0.78, 0.92)
    return FaceParams(
        center=(float(u(-0.03, 0.03) + 0.03), float(u(-0.03, 0.03))),
        radius=float(u(0.33, 0.38)),
        aspect=float(aspect),
        angle=float(u(-0.1, 0.1)),
        shift=float(u(-0.04, 0.04)),
        skin=tuple(float(c) for c in skin),
        lip=tuple(float(c) for c in lip),
        eye_color=eye_color,
        hair_color=hair_color,
        has_hair=has_hair,
        hair_line=float(u(-0.62, -0.48)),
        hair_curve=float(u(0.1, 0.35)),
        hair_scale=float(u(1.05, 1.1)),
        eye_y=float(u(-0.1, 0.02)),
        eye_dx=float(u(0.33, 0.40) * aspect),
        eye_rx=float(eye_rx),
        eye_ry=float(eye_rx * u(0.6, 0.78)),
        iris=float(u(0.8, 0.98)),
        gaze=float(u(-0.12, 0.12)),
        brow_gap=float(u(0.09, 0.14)),
        brow_len=float(eye_rx * u(1.05, 1.35)),
        brow_thick=float(u(0.025, 0.045)),
        brow_arch=float(u(0.0, 0.08)),
        brow_tilt=float(u(-0.15, 0.15)),
        nose_y=float(u(0.22, 0.34)),
        nose_w=float(u(0.06, 0.1)),
        mouth_y=float(u(0.5, 0.6)),
        mouth_w=float(u(0.22, 0.3)),
        lip_thick=float(u(0.03, 0.045)),
        mouth_curve=float(u(-0.015, 0.02)),
        smile_lift=float(u(0.10, 0.14)),
        smile_open=float(u(0.08, 0.13)),
    )


def face_params(n: int, split: str = "train", seed: int = 0) -> list[FaceParams]:
    """The first ``n`` faces of a split's deterministic stream.

    Train and test use disjoint seed streams (``SeedSequence(seed, spawn_key=(split,))``), and
    ``face_params(m)[:n] == face_params(n)`` for ``m >= n``.

    Args:
      n: number of faces.
      split: ``"train"`` or ``"test"``.
      seed: non-negative dataset seed.

    Returns:
      ``n`` ``FaceParams``.
    """
    seq = np.random.SeedSequence(seed, spawn_key=(_split_id(split),))
    rng = np.random.default_rng(seq)
    return [sample_face_params(rng) for _ in range(n)]


def _stack(params: Sequence[FaceParams]) -> dict[str, np.ndarray]:
    """Per-field arrays broadcastable against ``[N, H, W]`` (colours: ``[N, 1, 1, 3]``)."""
    out = {}
    for field in dataclasses.fields(FaceParams):
        values = np.array([getattr(p, field.name) for p in params], np.float32)
        out[field.name] = values.reshape((len(params), 1, 1) + values.shape[1:])
    return out


def _coverage(sd: np.ndarray, r_px: np.ndarray) -> np.ndarray:
    """Pixel coverage from a signed distance in units of R (box filter, 1 px ramp)."""
    return np.clip(0.5 - sd * r_px, 0.0, 1.0)


def _ellipse_sd(x, y, rx, ry):
    """Approximate signed distance to an axis-aligned ellipse centred at the origin.

    First-order (``f / |grad f|``) with ``f = |(x/rx, y/ry)| - 1``: exact on the boundary,
    which is all that coverage needs. ``|grad f|`` depends only on direction and lies in
    ``[1/max(rx, ry), 1/min(rx, ry)]``; clipping to that range also settles the centre.
    """
    k = np.sqrt((x / rx) ** 2 + (y / ry) ** 2)
    grad = np.sqrt((x / rx**2) ** 2 + (y / ry**2) ** 2) / np.maximum(k, 1e-12)
    grad = np.clip(grad, 1 / np.maximum(rx, ry), 1 / np.minimum(rx, ry))
    return (k - 1) / grad


def _arc_sd(x, y, half_len, sag, tilt=0.0):
    """Unsigned distance to the arc ``y = tilt*x + sag*(x/half_len)^2``, ``|x| <= half_len``.

    A symmetric quadratic Bezier through the origin; subtract a half thickness to get a stroke
    with round caps.
    """
    yc = tilt * x + sag * (x / half_len) ** 2
    slope = tilt + 2 * sag * x / half_len**2
    d_inside = np.abs(y - yc) / np.sqrt(1 + slope**2)
    end_x = np.where(x < 0, -half_len, half_len)
    d_end = np.hypot(x - end_x, y - (tilt * end_x + sag))
    return np.where(np.abs(x) <= half_len, d_inside, d_end)


def _segment_sd(x, y, ax, ay, bx, by):
    """Unsigned distance to the segment from ``(ax, ay)`` to ``(bx, by)``."""
    vx, vy = bx - ax, by - ay
    t = np.clip(((x - ax) * vx + (y - ay) * vy) / (vx**2 + vy**2), 0.0, 1.0)
    return np.hypot(x - ax - t * vx, y - ay - t * vy)


def _mouth_sd(x, y, half_w, dip_top, dip_bottom):
    """Unsigned distance to the closed mouth: the lens between two arcs sharing the corners.

    Corners at ``(+-half_w, 0)``; the upper and lower lip lines pass ``dip_top`` and
    ``dip_bottom`` below the corners at the centre (equal dips give a single line).
    """
    bump = 1 - (x / half_w) ** 2
    dbump = -2 * x / half_w**2
    above_top = (dip_top * bump - y) / np.sqrt(1 + (dip_top * dbump) ** 2)
    below_bottom = (y - dip_bottom * bump) / np.sqrt(1 + (dip_bottom * dbump) ** 2)
    lens = np.maximum(np.maximum(above_top, below_bottom), 0.0)
    corner = np.hypot(np.abs(x) - half_w, y)
    return np.where(np.abs(x) <= half_w, lens, corner)


def _lerp(a, b, s):
    return a + (b - a) * s


def _render_chunk(p: dict[str, np.ndarray], smile: float, size: int):
    """Renders a stacked chunk of faces: straight RGB ``[N, H, W, 3]``, alpha ``[N, H, W]``."""
    s = np.float32(smile)
    r_px = p["radius"] * size  # [N, 1, 1]
    centre = (np.arange(size, dtype=np.float32) + 0.5) - size / 2
    dy = centre[None, :, None] - p["center"][..., 0] * size
    dx = centre[None, None, :] - p["center"][..., 1] * size
    cos, sin = np.cos(p["angle"]), np.sin(p["angle"])
    x = (cos * dx + sin * dy) / r_px  # [N, H, W], face-local frame
    y = (-sin * dx + cos * dy) / r_px
    min_half = 0.5 / r_px  # strokes stay at least 1 px wide at small sizes

    def cov(sd):
        return _coverage(sd, r_px)

    head = cov(_ellipse_sd(x, y, p["aspect"], 1.0))
    fx = x - p["shift"]  # features share a small horizontal shift (yaw)
    layers = [(head, p["skin"])]

    # Cheeks rise, grow a little and move outwards with the smile; a skin/lip blend that is
    # present at s = 0 already.
    cheek_r = 0.13 * (1 + _CHEEK_GROW * s)
    cheek_y = y - (p["mouth_y"] - 0.14 - _CHEEK_RISE * s)
    cheek_x = np.abs(fx) - (p["mouth_w"] + 0.12 + 0.03 * s)
    cheeks = cov(_ellipse_sd(cheek_x, cheek_y, cheek_r * 1.2, cheek_r))
    layers.append((cheeks, 0.75 * p["skin"] + 0.25 * p["lip"]))

    shade = 0.8 * p["skin"]
    nose_x = fx - 0.015
    nose = _arc_sd(nose_x, y - p["nose_y"], p["nose_w"], -0.05)
    half = (p["nose_y"] - p["eye_y"]) / 2 - 0.04  # the bridge: a slanted line down to the tip
    mid_x, mid_y = 0.6 * p["nose_w"], (p["eye_y"] + p["nose_y"]) / 2 + 0.02
    bridge = _segment_sd(
        nose_x, y, mid_x - 0.25 * half, mid_y - half, mid_x + 0.25 * half, mid_y + half
    )
    nose_sd = np.minimum(nose, bridge) - np.maximum(0.022, min_half)
    layers.append((cov(nose_sd), shade))

    # Eyes: the lower lid rises and arches with the smile (iris and pupil are clipped by it).
    ex = np.abs(fx) - p["eye_dx"]
    ey = y - p["eye_y"]
    eye_sd = _ellipse_sd(ex, ey, p["eye_rx"], p["eye_ry"])
    lid_k = _LID_CURVE * s * p["eye_ry"] / p["eye_rx"] ** 2
    lid = p["eye_ry"] * (1.05 - _LID_RISE * s) + lid_k * ex**2
    eye_sd = np.maximum(eye_sd, (ey - lid) / np.sqrt(1 + (2 * lid_k * ex) ** 2))
    iris_x = ex - p["gaze"] * p["eye_rx"] * np.sign(fx)  # both eyes look the same way
    iris_sd = np.hypot(iris_x, ey) - p["iris"] * p["eye_ry"]
    pupil_sd = np.hypot(iris_x, ey) - 0.45 * p["iris"] * p["eye_ry"]
    # Lashes: a dark line along the upper half of the eye outline.
    lash_sd = np.maximum(np.abs(_ellipse_sd(ex, ey, p["eye_rx"], p["eye_ry"])) - 0.022, ey)
    layers += [
        (cov(eye_sd), np.float32(_EYE_WHITE)),
        (cov(np.maximum(iris_sd, eye_sd)), p["eye_color"]),
        (cov(np.maximum(pupil_sd, eye_sd)), np.float32(_PUPIL)),
        (cov(lash_sd - min_half * 0.5), np.float32(_PUPIL)),
    ]

    brow_y = y - (p["eye_y"] - p["eye_ry"] - p["brow_gap"])
    # ex is mirrored (inner ends at ex < 0), so one tilt gives symmetric brows.
    brow_sd = _arc_sd(ex, brow_y, p["brow_len"], p["brow_arch"], -p["brow_tilt"])
    layers.append((cov(brow_sd - np.maximum(p["brow_thick"], min_half)), p["hair_color"]))

    # Mouth: a nearly flat lip line at s = 0 that widens, lifts its corners and opens into a
    # lip-coloured crescent at s = 1.
    lift = s * p["smile_lift"]
    mouth_sd = _mouth_sd(
        fx,
        y - (p["mouth_y"] - lift),
        p["mouth_w"] * (1 + _SMILE_WIDEN * s),
        _lerp(p["mouth_curve"], p["smile_lift"], s),
        _lerp(p["mouth_curve"], p["smile_lift"] + p["smile_open"], s),
    )
    layers.append((cov(mouth_sd - np.maximum(p["lip_thick"], min_half)), p["lip"]))

    # Hair: a cap on top of the head, under the hairline (which drops towards the temples).
    hs = p["hair_scale"]
    cap = _ellipse_sd(x, y + 0.02, p["aspect"] * hs, hs)
    hairline = p["hair_line"] + p["hair_curve"] * x**2
    below = (y - hairline) / np.sqrt(1 + (2 * p["hair_curve"] * x) ** 2)
    hair = cov(np.maximum(cap, below)) * p["has_hair"]
    layers.append((hair, p["hair_color"]))

    # Premultiplied "over" compositing, channel-major for contiguous in-place updates;
    # features are clipped to the head.
    premult = np.zeros((3,) + x.shape, np.float32)
    alpha = np.zeros(x.shape, np.float32)
    for i, (a, colour) in enumerate(layers):
        if 0 < i < len(layers) - 1:
            a = a * head
        keep = 1 - a
        colour = np.broadcast_to(colour, (len(x), 1, 1, 3))
        for c in range(3):
            premult[c] *= keep
            premult[c] += a * colour[..., c]
        alpha *= keep
        alpha += a
    rgb = np.divide(premult, alpha, out=np.zeros_like(premult), where=alpha > 0)
    return np.clip(np.moveaxis(rgb, 0, -1), 0.0, 1.0), np.clip(alpha, 0.0, 1.0)


def render_faces(
    params: Sequence[FaceParams], smile: float, size: int = 64, channels: int = 4
) -> np.ndarray:
    """Renders a batch of faces at one smile level.

    Args:
      params: ``N`` face parameters.
      smile: smile level ``s``; 0 is neutral, 1 a full smile (values in between interpolate
        the geometry linearly).
      size: image height and width in pixels.
      channels: 4 (RGBA, alpha = head and hair mask), 3 (RGB on black) or 1 (luminance).

    Returns:
      ``float32 [N, size, size, channels]`` in ``[0, 1]``.
    """
    _check_channels(channels)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    out = np.zeros((len(params), size, size, channels), np.float32)
    chunk = max(1, (1 << 20) // (size * size))  # ~4 MB per [N, H, W] temporary
    for start in range(0, len(params), chunk):
        rgb, alpha = _render_chunk(_stack(params[start : start + chunk]), smile, size)
        out[start : start + chunk] = _to_channels(rgb, alpha, channels)
    return out


def render_face(params: FaceParams, smile: float, size: int = 64, channels: int = 4) -> np.ndarray:
    """Renders one face at smile level ``smile``.

    Args:
      params: the face, from ``sample_face_params``.
      smile: smile level ``s in [0, 1]``.
      size: image height and width in pixels.
      channels: 4 (RGBA), 3 (RGB on black) or 1 (luminance).

    Returns:
      ``float32 [size, size, channels]`` in ``[0, 1]``.
    """
    return render_faces([params], smile, size, channels)[0]


def faces_at(
    n: int,
    smiles: Sequence[float],
    size: int = 64,
    channels: int = 4,
    split: str = "train",
    seed: int = 0,
) -> np.ndarray:
    """The first ``n`` faces of a split, each rendered at several smile levels.

    Args:
      n: number of faces.
      smiles: ``S`` smile levels in ``[0, 1]``.
      size: image height and width in pixels.
      channels: 4 (RGBA), 3 (RGB on black) or 1 (luminance).
      split: ``"train"`` or ``"test"`` (disjoint face streams).
      seed: dataset seed.

    Returns:
      ``float32 [S, n, size, size, channels]``; ``[k, i]`` is face ``i`` at ``smiles[k]``.
    """
    params = face_params(n, split, seed)
    return np.stack([render_faces(params, s, size, channels) for s in smiles])


def faces(
    n: int,
    size: int = 64,
    channels: int = 4,
    smile: tuple[float, float] = (0.0, 1.0),
    split: str = "train",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Paired neutral/smiling faces.

    Args:
      n: number of faces.
      size: image height and width in pixels.
      channels: 4 (RGBA), 3 (RGB on black) or 1 (luminance).
      smile: smile levels of the source and target frames.
      split: ``"train"`` or ``"test"`` (disjoint face streams).
      seed: dataset seed.

    Returns:
      ``(x0, x1)``, each ``float32 [n, size, size, channels]``; ``x1[i]`` is ``x0[i]`` smiling.
    """
    x0, x1 = faces_at(n, smile, size, channels, split, seed)
    return x0, x1


# --------------------------------------------------------------------------------------------
# Resizing helpers shared by the digit, MNIST, folder and array sources.
# --------------------------------------------------------------------------------------------


def _resize_float(images: np.ndarray, size: int, resample: int) -> np.ndarray:
    """``[N, H, W, C]`` float -> ``[N, size, size, C]``, channel by channel in Pillow "F" mode."""
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images.astype(np.float32)
    out = np.empty((n, size, size, c), np.float32)
    for i in range(n):
        for j in range(c):
            plane = Image.fromarray(np.ascontiguousarray(images[i, :, :, j], np.float32), "F")
            out[i, :, :, j] = np.asarray(plane.resize((size, size), resample))
    return np.clip(out, 0.0, 1.0)


def _center_crop_box(w: int, h: int) -> tuple[int, int, int, int]:
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return left, top, left + side, top + side


# --------------------------------------------------------------------------------------------
# Digits (scikit-learn) and MNIST (IDX files): 3s -> 4s.
# --------------------------------------------------------------------------------------------


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
    split_id = _split_id(split)
    all_images, all_labels = _sklearn_digits()
    images_out, labels_out = [], []
    for label in classes:
        images = all_images[all_labels == label] / np.float32(16)
        perm = np.random.default_rng([seed, label]).permutation(len(images))
        n_train = int(round(0.8 * len(images)))
        keep = np.sort(perm[:n_train] if split_id == 0 else perm[n_train:])
        images_out.append(_resize_float(images[keep, :, :, None], size, Image.Resampling.BICUBIC))
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


def split_of(key: str, test_percent: int) -> str:
    """``"test"`` for about ``test_percent`` % of keys, else ``"train"``, from a hash of ``key``.

    A file's split depends on its own name only (SHA-256, not Python's salted ``hash``): it
    never changes with the machine, the file order or the other files present.
    """
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
    return "test" if bucket < test_percent else "train"


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
    split_id = _split_id(split)
    if not data_dir.is_dir():
        what = "not a folder" if data_dir.exists() else "folder not found"
        raise DataError(f"{data_dir}: {what} (expected a folder with the MNIST IDX files)")
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
        images_out.append(_resize_float(padded, size, Image.Resampling.BICUBIC))
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


# --------------------------------------------------------------------------------------------
# Image folders.
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


def _why_unreadable(path: Path, error: BaseException) -> str:
    """A short reason for a Pillow failure."""
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"over {Image.MAX_IMAGE_PIXELS} pixels, Pillow's decompression-bomb limit"
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, IsADirectoryError):
        return "a folder, not a file"
    try:
        if path.stat().st_size == 0:
            return "empty file"
    except OSError:
        pass
    if isinstance(error, UnidentifiedImageError):
        return "not an image file Pillow can identify"
    text = " ".join(str(error).split()) or type(error).__name__
    return f"truncated or damaged: {text}"


def _open(path: Path) -> Image.Image:
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
      DataError: one line naming the file and why it cannot be read (missing, empty,
        truncated, not an image, too large).
    """
    path = Path(path)
    try:
        return _open(path)
    except _Unreadable as e:
        raise DataError(f"{path}: cannot read image ({e}); {_EXPECTED_IMAGE}") from None


def _read(path: Path, size: int, channels: int) -> np.ndarray:
    """``load_image`` raising ``_Unreadable``."""
    img = _open(path)
    try:
        img = ImageOps.exif_transpose(img)  # phone photos: honour the orientation tag
        box = _center_crop_box(*img.size)
        if img.mode == "L" and channels == 1:  # grey stays grey: the RGBA route, faster
            img = img.crop(box)
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.LANCZOS)
            return (np.asarray(img, np.float32) / np.float32(255))[..., None]
        if img.mode in _HIGH_BIT_MODES:  # 16/32-bit grey: keep the precision, resize in float
            grey = np.asarray(img, np.float32) / np.float32(_HIGH_BIT_MODES[img.mode])
            grey = np.clip(grey, 0.0, 1.0)[box[1] : box[3], box[0] : box[2]]
            grey = _resize_float(grey[None, :, :, None], size, Image.Resampling.LANCZOS)[0, ..., 0]
            rgb, alpha = np.repeat(grey[..., None], 3, -1), np.ones_like(grey)
        else:
            # Pillow resamples RGBA with premultiplied alpha, so transparent pixels do not bleed.
            rgba = img.convert("RGBA").crop(box).resize((size, size), Image.Resampling.LANCZOS)
            rgba = np.asarray(rgba, np.float32) / np.float32(255)
            rgb, alpha = rgba[..., :3], rgba[..., 3]
    except (OSError, ValueError) as e:  # e.g. a mode Pillow cannot convert to RGBA
        reason = " ".join(str(e).split()) or type(e).__name__
        raise _Unreadable(f"cannot convert its {img.mode} pixels: {reason}") from None
    return _to_channels(rgb, alpha, channels).astype(np.float32)


def load_image(path: str | Path, size: int, channels: int) -> np.ndarray:
    """One image file -> ``float32 [size, size, channels]`` (see ``load_folder``).

    Raises:
      DataError: the file cannot be read or converted (one line naming it).
    """
    path = Path(path)
    try:
        return _read(path, size, channels)
    except _Unreadable as e:
        raise DataError(f"{path}: cannot read image ({e}); {_EXPECTED_IMAGE}") from None


def _list_some(items: Sequence, n: int = 3) -> str:
    shown = ", ".join(str(x) for x in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "folder not found"
        raise DataError(f"{folder}: {what} (expected a folder of images)")
    entries = sorted(folder.iterdir())
    files = [f for f in entries if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
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


def _read_all(files: list[Path], size: int, channels: int) -> tuple[list, list[str]]:
    """Images (None where unreadable) and ``"name (reason)"`` for each unreadable file."""
    images, skipped = [], []
    for f in files:
        try:
            images.append(_read(f, size, channels))
        except _Unreadable as e:
            images.append(None)
            skipped.append(f"{f.parent.name}/{f.name} ({e})")
    return images, skipped


def _report_skipped(
    where, unit: str, total: int, n_skipped: int, reasons: list[str], images: list
) -> None:
    """One ``SkippedFilesWarning`` naming the ``reasons`` why ``n_skipped`` of ``total`` items
    were left out, or a ``DataError`` when no image of ``images`` (None: unreadable) is left."""
    if all(x is None for x in images):
        raise DataError(
            f"{where}: none of the {total} {unit} can be read ({_list_some(reasons, 2)}); "
            f"{_EXPECTED_IMAGE}"
        )
    if n_skipped:
        warnings.warn(
            SkippedFilesWarning(
                f"{where}: skipped {n_skipped} of {total} {unit} that cannot be read: "
                f"{_list_some(reasons)}"
            ),
            stacklevel=3,
        )


def load_folder(
    data_dir: str | Path, size: int, channels: int, paired: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Images from ``data_dir/source/`` and ``data_dir/target/``.

    Files with the extensions in ``IMAGE_EXTENSIONS`` (any case) are read in name order; other
    files are ignored. Any Pillow mode is accepted: 16-bit grey (and 32-bit integer grey) is
    scaled by 65535, float grey is clipped to ``[0, 1]``, other modes (palette, CMYK, grey
    with alpha, ...) go through RGBA, and alpha is dropped by compositing on black (see the
    module doc). Animated files (GIF, APNG, multi-page TIFF) give their first frame. Each
    image is centre-cropped to a square and resized with Lanczos filtering.

    Files that cannot be read (empty, truncated, not an image, over Pillow's
    decompression-bomb limit) are skipped with one ``SkippedFilesWarning`` per folder (per
    data set when paired: the partner of a skipped file is left out too) that counts and
    names them. A folder (or paired set) with nothing readable left is an error.

    Args:
      data_dir: folder with ``source/`` and ``target/`` subfolders.
      size: output height and width.
      channels: 1 (luminance), 3 (RGB) or 4 (RGBA; opaque images get alpha 1).
      paired: pair ``source/x.*`` with ``target/x.*`` by file stem.

    Returns:
      ``(source [N, size, size, channels], target [M, size, size, channels])``, ``float32`` in
      ``[0, 1]``; with ``paired=True``, ``N == M`` and ``target[i]`` pairs with ``source[i]``.

    Raises:
      DataError: a folder is missing, has no image files or none that can be read, or
        (paired) names do not match; one line naming the folder or files.
    """
    _check_channels(channels)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        what = "not a folder" if data_dir.exists() else "folder not found"
        raise DataError(
            f"{data_dir}: {what} (expected a folder with source/ and target/ image folders)"
        )
    source = _image_files(data_dir / "source")
    target = _image_files(data_dir / "target")
    if paired:
        source, target = _pair_by_stem(data_dir, source, target)
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
    split_id = _split_id(split)
    out = []
    for folder in smiles_folders(data_dir):
        files = [f for f in _image_files(folder)
                 if (split_of(f.name, SMILES_TEST_PERCENT) == "test") == (split_id == 1)]
        if not files:
            raise DataError(f"{folder}: no image file falls in the {split} split")
        out.append(files)
    return out[0], out[1]


def load_smiles(
    data_dir: str | Path, split: str = "train", size: int = 64, channels: int = 1
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

    Returns:
      ``(neutral [N, size, size, channels], smiling [M, size, size, channels])``, ``float32``
      in ``[0, 1]``.

    Raises:
      DataError: not a SMILEsmileD checkout, or a folder with nothing readable (one line).
    """
    _check_channels(channels)
    out = []
    for files in smiles_files(data_dir, split):
        images, skipped = _read_all(files, size, channels)
        _report_skipped(files[0].parent, "image files", len(files), len(skipped), skipped, images)
        out.append(np.stack([x for x in images if x is not None]))
    return out[0], out[1]


def nearest_pairs(
    sources: np.ndarray, targets: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` sources, each with the target nearest to it in mean squared pixel
    difference: pairs for registration from unpaired data (e.g. ``load_smiles``).

    Args:
      sources: ``[N, H, W, C]``; targets: ``[M, H, W, C]``.

    Returns:
      ``(sources[:n], nearest targets [n, H, W, C])``.
    """
    dist = ((sources[:n, None] - targets[None]) ** 2).mean(axis=(2, 3, 4))
    return sources[:n], targets[dist.argmin(axis=1)]

# --------------------------------------------------------------------------------------------
# Arrays (.npz / .npy).
# --------------------------------------------------------------------------------------------


class ArrayData(NamedTuple):
    """Images loaded by ``load_array``, and how their values were scaled to ``[0, 1]``."""

    source: np.ndarray  # [N, H, W, C]
    target: np.ndarray  # [M, H, W, C]
    scaling: str  # "uint8/255", "uint16/65535", "float[0,1]" or "float[0,255]/255"


def _scaling_rule(arrays: Sequence[np.ndarray], where: str) -> tuple[str, float]:
    """One ``[0, 1]`` scaling rule (name, divisor) for arrays of one dtype."""
    dtype = arrays[0].dtype
    if any(a.dtype != dtype for a in arrays):
        raise DataError(f"{where}: dtypes differ ({', '.join(str(a.dtype) for a in arrays)})")
    if dtype == np.uint8:
        return "uint8/255", 255.0
    if dtype == np.uint16:
        return "uint16/65535", 65535.0
    if dtype.kind != "f":
        raise DataError(
            f"{where}: unsupported dtype {dtype} (use uint8, uint16, or float in [0, 1] or "
            "[0, 255])"
        )
    if not all(np.isfinite(a).all() for a in arrays):
        bad = sum(int(np.size(a) - np.isfinite(a).sum()) for a in arrays)
        raise DataError(f"{where}: {bad} values are NaN or Inf; expected finite values")
    lo = min(float(a.min()) for a in arrays)
    hi = max(float(a.max()) for a in arrays)
    if lo >= 0.0 and hi <= 1.0 + 1e-6:
        return "float[0,1]", 1.0
    if lo >= 0.0 and hi <= 255.0 + 1e-4:
        return "float[0,255]/255", 255.0
    raise DataError(f"{where}: float values in [{lo:g}, {hi:g}], expected [0, 1] or [0, 255]")


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
    """``[N, H, W, C]`` -> ``[N, H, W, channels]`` with the module's RGBA conventions."""
    c = images.shape[-1]
    if c == channels:
        return images
    if c == 1:
        rgb, alpha = np.repeat(images, 3, -1), np.ones(images.shape[:-1], np.float32)
    else:
        rgb = images[..., :3]
        alpha = images[..., 3] if c == 4 else np.ones(images.shape[:-1], np.float32)
    return _to_channels(rgb, alpha, channels)


def _prepare(array: np.ndarray, where: str, scale: float, size, channels) -> np.ndarray:
    images = _to_nhwc(array, where)
    if images.shape[0] == 0 or min(images.shape[1:3]) == 0:
        raise DataError(f"{where}: empty array of shape {array.shape}")
    images = np.clip(images.astype(np.float32) / np.float32(scale), 0.0, 1.0)
    if channels is not None:
        images = _convert_channels(images, channels)
    if size is not None:
        left, top, right, bottom = _center_crop_box(images.shape[2], images.shape[1])
        images = _resize_float(images[:, top:bottom, left:right], size, Image.Resampling.LANCZOS)
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
            reason = " ".join(str(e).split())
            raise DataError(f"{path}: truncated or damaged ({reason}); {_ARRAY_HOW}") from None
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
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"{path}: truncated or damaged ({reason}); {_ARRAY_HOW}") from None
    for name, a in zip(("source", "target"), arrays, strict=True):
        if a.dtype.kind not in "uif":
            raise DataError(
                f"{path} [{name}]: dtype {a.dtype}; expected numeric arrays (uint8, uint16 or "
                "float)"
            )
    return arrays


def load_array(path: str | Path, size: int | None = None, channels: int | None = None) -> ArrayData:
    """Source and target images from a ``.npz`` or ``.npy`` file (never unpickled).

    Layouts: a ``.npz`` with arrays ``source`` and ``target``, each ``[N, H, W, C]``,
    ``[N, C, H, W]`` or ``[N, H, W]``; or a ``.npy`` of shape ``[2, N, H, W, C]`` or
    ``[2, N, C, H, W]`` holding source and target (paired). ``C`` is 1, 3 or 4 and is found at
    either end of the image axes (NHWC when ambiguous). One rule scales the whole file:
    ``uint8/255``, ``uint16/65535``, ``float[0,1]`` (kept) or ``float[0,255]/255`` (floats
    with a maximum above 1); other dtypes are rejected.

    Args:
      path: ``.npz`` or ``.npy`` file.
      size: if given, centre-crop to square and resize (Lanczos) to ``size x size``.
      channels: if given, convert to 1, 3 or 4 channels (alpha dropped by compositing on black).

    Returns:
      ``ArrayData(source [N, H, W, C], target [M, H, W, C], scaling)``, ``float32`` in
      ``[0, 1]``.

    Raises:
      DataError: one line naming the file and the problem (missing, not a .npy/.npz (a pickle
        is refused), object dtype, NaN/Inf, wrong rank or keys, values out of range, source
        and target images of different shapes).
    """
    path = Path(path)
    if channels is not None:
        _check_channels(channels)
    arrays = _read_arrays(path)
    rule, scale = _scaling_rule(arrays, str(path))
    source, target = (
        _prepare(a, f"{path} [{name}]", scale, size, channels)
        for name, a in zip(("source", "target"), arrays, strict=True)
    )
    if source.shape[1:] != target.shape[1:]:
        raise DataError(
            f"{path}: source images {source.shape[1:]} and target images {target.shape[1:]} "
            "differ (pass size and channels to convert)"
        )
    return ArrayData(source, target, rule)


# --------------------------------------------------------------------------------------------
# Minibatches.
# --------------------------------------------------------------------------------------------


class Batches:
    """Endless, deterministic, resumable minibatches ``{"x0": [B, H, W, C], "x1": ...}``.

    Each epoch visits the data in an order drawn from ``(seed, epoch)`` alone, so the stream
    is reproducible and ``restore(state())`` resumes it exactly. Paired data share one
    permutation (``x1[i]`` stays the partner of ``x0[i]``); unpaired data use independent
    permutations of source and target. An epoch has ``min(N, M) // batch_size`` batches (the
    incomplete last batch is dropped); no item appears twice within an epoch.

    Args:
      x0: source images ``[N, H, W, C]``.
      x1: target images ``[M, H, W, C]`` (``M == N`` when paired).
      batch_size: images per batch, at most ``min(N, M)``.
      paired: whether ``x1[i]`` is the target of ``x0[i]``.
      seed: non-negative shuffling seed.
      rows: the rows of each batch to return (multi-host: this process's share, see
        ``jwarp.parallel.local_rows``); default all. The order and ``state()`` stay those of
        the whole batch, so every process walks the same stream.
    """

    def __init__(
        self,
        x0: np.ndarray,
        x1: np.ndarray,
        batch_size: int,
        *,
        paired: bool,
        seed: int = 0,
        rows: slice | None = None,
    ):
        self.x0 = np.asarray(x0, np.float32)
        self.x1 = np.asarray(x1, np.float32)
        self.paired = paired
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        if paired and len(self.x0) != len(self.x1):
            raise DataError(
                f"data.paired: paired data need equal sizes (a target for each source), got "
                f"{len(self.x0)} sources and {len(self.x1)} targets"
            )
        n = min(len(self.x0), len(self.x1))
        if not 1 <= self.batch_size <= n:
            raise DataError(
                f"train.batch_size: expected 1 to {n} (the data set's size), got {batch_size}"
            )
        self.steps_per_epoch = n // self.batch_size
        self.rows = slice(None) if rows is None else rows
        self._epoch = 0
        self._index = 0
        self._perms: tuple[int, np.ndarray, np.ndarray] | None = None

    def _permutations(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if self._perms is None or self._perms[0] != epoch:
            perm0 = np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.x0))
            perm1 = (
                perm0
                if self.paired
                else np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.x1))
            )
            self._perms = (epoch, perm0, perm1)
        return self._perms[1], self._perms[2]

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        perm0, perm1 = self._permutations(self._epoch)
        batch = slice(self._index * self.batch_size, (self._index + 1) * self.batch_size)
        mine0, mine1 = perm0[batch][self.rows], perm1[batch][self.rows]
        out = {"x0": self.x0[mine0], "x1": self.x1[mine1]}
        self._index += 1
        if self._index == self.steps_per_epoch:
            self._epoch, self._index = self._epoch + 1, 0
        return out

    def state(self) -> dict[str, int]:
        """Position of the next batch: ``{"epoch": e, "index": i}``."""
        return {"epoch": self._epoch, "index": self._index}

    def restore(self, state: dict[str, int]) -> None:
        """Continues from a position returned by ``state()``."""
        epoch, index = int(state["epoch"]), int(state["index"])
        if epoch < 0 or not 0 <= index < self.steps_per_epoch:
            raise ValueError(
                f"invalid batch state {state}: need epoch >= 0 and 0 <= index < "
                f"{self.steps_per_epoch}"
            )
        self._epoch, self._index = epoch, index


# --------------------------------------------------------------------------------------------
# Data sets by configuration.
# --------------------------------------------------------------------------------------------


def load_dataset(cfg, split: str = "train", seed: int = 0) -> tuple[np.ndarray, np.ndarray, bool]:
    """Loads the data set a ``jwarp.config.DataConfig`` names.

    Args:
      cfg: the data configuration (``name``, ``data_dir``, ``paired``, ``image_size``,
        ``channels``, ``n_train``, ``n_test``, ``source_class``, ``target_class``).
      split: ``"train"`` or ``"test"``. Sources without a test split (folders, arrays) return
        the same images for both; ``smiles`` and ``mnist`` split by a hash of each file name
        or index (``split_of``).
      seed: data seed (faces and digits).

    Returns:
      ``(x0 [N, H, W, C], x1 [M, H, W, C], paired)``.
    """
    size, channels = cfg.image_size, cfg.channels
    if cfg.name == "faces":
        n = cfg.n_train if split == "train" else cfg.n_test
        x0, x1 = faces(n, size=size, channels=channels, split=split, seed=seed)
        return x0, x1, True
    if cfg.name == "smiles":
        x0, x1 = load_smiles(cfg.data_dir, split, size, channels)
        return x0, x1, False
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
        x0, x1 = load_folder(cfg.data_dir, size, channels, paired=cfg.paired)
        return x0, x1, cfg.paired
    if cfg.name == "npy":
        arrays = load_array(cfg.data_dir, size=size, channels=channels)
        return arrays.source, arrays.target, cfg.paired
    raise ValueError(f"data.name: unknown data set {cfg.name!r}")
