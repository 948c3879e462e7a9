"""Procedural cartoon faces: each face exists at any smile level ``s in [0, 1]``.

The smile is purely geometric (mouth curve, cheeks, lower eyelids), so ``(s=0, s=1)`` pairs are
exact and every intermediate frame is known. Faces are anti-aliased, ``float32 [N, H, W, C]``
in ``[0, 1]``, RGBA by default (alpha = head and hair mask; see ``jwarp.data.common`` for the
RGBA convention). Train and test draw from disjoint seeded streams.

Geometry lives in a face-local frame: origin at the head centre, y pointing down, unit = head
radius R (vertical). Shapes are signed distance functions (negative inside); a pixel's
coverage is the analytic box-filter approximation clip(0.5 - sd * R_px, 0, 1), which
anti-aliases every edge at a cost of one evaluation per pixel. All functions broadcast over
a leading face axis, so a whole batch of faces renders in one pass of numpy ops.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jwarp.data.common import check_channels, split_index, to_channels

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
    seq = np.random.SeedSequence(seed, spawn_key=(split_index(split),))
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
    check_channels(channels)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    out = np.zeros((len(params), size, size, channels), np.float32)
    chunk = max(1, (1 << 20) // (size * size))  # ~4 MB per [N, H, W] temporary
    for start in range(0, len(params), chunk):
        rgb, alpha = _render_chunk(_stack(params[start : start + chunk]), smile, size)
        out[start : start + chunk] = to_channels(rgb, alpha, channels)
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
