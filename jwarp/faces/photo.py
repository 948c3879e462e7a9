"""Whole photos animated in place: find the faces, move each aligned crop with a model (or a
field fitted to a second photo), and carry the motion back into the photo (docs/faces.md).

* ``find``: the faces of a photo and the similarity that brings each to a canonical crop.
* ``animate_photos``: a trained model's animation of every face of several photos, as one
  ``PhotoAnimation`` per photo (the photo's size and channels, everything but the faces still).
* ``fit_photos``: two photos of one person: both faces aligned by their landmarks, a
  stationary field fitted between the crops, and the first photo animated (or morphed into
  the second) in place.

The model sees exactly what it was trained on: the same detector and the same alignment
(``jwarp.data.aligned``) made its training crops.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jwarp.faces.align import (
    CanonicalCrop,
    Similarity,
    crop_face,
    footprint,
    resample,
    to_crop,
)
from jwarp.faces.detect import Face, detect_faces
from jwarp.faces.inplace import WINDOW, FaceMotion, Layer, PhotoAnimation, crop_window

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # as jwarp.data: Rec. 601
FIT_ZOOM = 1.5  # --fit: the canonical crop zoomed out this much, to hold the whole face
FIT_SIZE = 128  # --fit: the aligned faces' side (fit_field fits at --fit-size, at most)


class Found(NamedTuple):
    """A face found in a photo and the similarity to its model's crop."""

    face: Face
    to_crop: Similarity


def convert(image: np.ndarray, channels: int) -> np.ndarray:
    """``[H, W, C]`` float32 -> ``[H, W, channels]`` as jwarp's data are converted: alpha
    dropped by compositing on black, grey as Rec. 601 luminance, grey repeated to RGB, opaque
    alpha added."""
    c = image.shape[-1]
    if c == channels:
        return image
    rgb = image[..., :3] * image[..., 3:] if c == 4 else image
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    if channels == 1:
        return (rgb @ _LUMA)[..., None].astype(np.float32)
    if channels == 3:
        return rgb.astype(np.float32)
    return np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=-1).astype(np.float32)


def find(image: np.ndarray, crop: CanonicalCrop, size: int) -> list[Found]:
    """Every face of ``image`` ``[H, W, C]`` with its similarity to the ``size``-pixel
    ``crop``, best first."""
    return [Found(f, to_crop(f.landmarks, crop, size)) for f in detect_faces(image)]


def zoomed(crop: CanonicalCrop, factor: float) -> CanonicalCrop:
    """``crop`` zoomed out by ``factor`` about its centre (the face ``factor`` times
    smaller, more of the head around it)."""
    points = (np.asarray(crop.points).reshape(-1, 2) - 0.5) / factor + 0.5
    return CanonicalCrop(tuple(float(v) for v in points.reshape(-1)))


def model_window(config) -> tuple[float, ...]:
    """Where a model's motion may be in its crop: its velocity's own window
    (``model.unet.out_mask``), else the whole crop fading at its edges (``WINDOW``)."""
    return tuple(config.model.unet.out_mask) or WINDOW


def _bucket(n: int) -> int:
    """``n`` rounded up to a power of two: batches of faces share a few compiled shapes."""
    return 1 << max(0, (n - 1).bit_length())


def model_motions(animator, crops: np.ndarray, ts, direction: str) -> np.ndarray:
    """``[T', F, S, S, 2]`` displacements of ``F`` aligned crops (``Animator.displacements``),
    the batch padded to a power of two so that a few compiles serve any number of faces."""
    n = len(crops)
    padded = np.concatenate([crops, np.repeat(crops[-1:], _bucket(n) - n, axis=0)])
    disp = animator.displacements(jnp.asarray(padded), ts, None, direction)
    return np.asarray(jax.device_get(disp))[:, :n]


def animate_photos(
    animator,
    photos: Sequence[np.ndarray],
    found: Sequence[Sequence[Found]],
    ts: np.ndarray,
    direction: str = "forward",
    grid: int | Sequence[int] = 0,
) -> list[tuple[PhotoAnimation, np.ndarray]]:
    """A model's animation of every face of every photo, in place.

    Args:
      animator: a ``jwarp.animation.Animator`` whose model takes aligned crops
        (``config.data.image_size``, ``config.data.channels``) from the start frame alone.
      photos: ``[H, W, C]`` float32 images in ``[0, 1]``, any size and channels.
      found: each photo's faces (``find``), at least one per photo.
      ts: ``[T]`` times in ``[0, 1]``.
      direction: ``"forward"``, ``"backward"`` (from the forward end frame) or
        ``"boomerang"``.
      grid: draw the deformation grid (``PhotoAnimation``): one spacing, or one per photo.

    Returns:
      Per photo: ``(frames, end map)``: a ``PhotoAnimation`` (``uint8 [H, W, C]`` frames) and
      the forward end map ``u_1`` over the whole photo (``[H, W, 2]`` float32, pixels).
    """
    cfg = animator.config.data
    size, channels = cfg.image_size, cfg.channels
    window = model_window(animator.config)
    crops = [crop_face(convert(p, channels), f.to_crop, size)
             for p, faces in zip(photos, found) for f in faces]
    crops = np.stack(crops)
    ts = np.asarray(ts, np.float32)
    one = np.ones(1, np.float32)
    disp = model_motions(animator, crops, ts, direction)  # [T', F, S, S, 2]
    if direction != "backward" and ts[-1] == 1.0:  # the end map is a frame already
        end_maps = disp[len(ts) - 1]
    else:
        end_maps = model_motions(animator, crops, one, "forward")[-1]  # [F, S, S, 2]
    grids = [grid] * len(photos) if isinstance(grid, int) else list(grid)
    out, k = [], 0
    for photo, faces, spacing in zip(photos, found, grids):
        n = len(faces)
        to_crops = [f.to_crop for f in faces]
        ends = [FaceMotion(a, end_maps[k + i][None]) for i, a in enumerate(to_crops)]
        end = PhotoAnimation([Layer(photo, ends, one)], window)
        start = photo
        if direction == "backward":  # the backward flow carries the forward end frame back
            start = end[0].astype(np.float32) / 255.0
        motions = [FaceMotion(a, disp[:, k + i]) for i, a in enumerate(to_crops)]
        weights = np.ones(len(disp), np.float32)
        anim = PhotoAnimation([Layer(start, motions, weights)], window, spacing)
        out.append((anim, end.displacement(0)))
        k += n
    return out


def animate_photo(
    animator, photo: np.ndarray, ts, direction: str = "forward"
) -> tuple[PhotoAnimation, np.ndarray]:
    """``animate_photos`` of one photo with every face it holds, aligned to the model's
    canonical crop (``config.data.canonical_crop``).

    Returns:
      ``(frames, end map)``: ``frames[k]`` is ``uint8 [H, W, C]``, the photo's size and
      channels; the end map is ``u_1``, ``[H, W, 2]`` photo pixels ``(dy, dx)``.

    Raises:
      ValueError: the model was not trained on aligned faces, or the photo has no face.
    """
    crop = animator.config.data.canonical_crop
    if crop is None:
        raise ValueError("this model was not trained on aligned faces (data.align = false)")
    found = find(photo, crop, animator.config.data.image_size)
    if not found:
        raise ValueError("no human face found in the photo")
    return animate_photos(animator, [photo], [found], ts, direction)[0]


@functools.partial(jax.jit, static_argnames=("direction", "solver"))
def _svf_disp(v, times, direction: str, solver):
    from jwarp.flow import animation_loop, integrate_svf

    return integrate_svf(v, times, direction=direction, config=solver,
                         loop=animation_loop(solver), penalties=False).disp


def _svf(v: np.ndarray, times: np.ndarray, direction: str, solver) -> np.ndarray:
    """``[T, S, S, 2]`` displacements of the stationary velocity ``v [1, S, S, 2]`` at
    ``times`` (``"backward"``: the maps to time ``-t``)."""
    out = _svf_disp(jnp.asarray(v), jnp.asarray(times, jnp.float32), direction, solver)
    return np.asarray(out)[:, 0]


def _in_order(layers: list[Layer], order: np.ndarray) -> list[Layer]:
    """The layers' frames in ``order`` (reversed for ``"backward"``, there and back for
    ``"boomerang"``)."""
    return [Layer(layer.image, [FaceMotion(m.to_crop, m.disp[order]) for m in layer.motions],
                  layer.weights[order]) for layer in layers]


class PhotoFit(NamedTuple):
    """``fit_photos``' result.

    Attributes:
      frames: the animation, in place in the first photo.
      end_map: ``[H, W, 2]`` the forward end map ``u_1`` over the first photo.
      crops: ``(source, target)`` aligned crops ``[S, S, C]`` the field was fitted to.
      velocity: ``[S, S, 2]`` the fitted velocity on the crops.
      disp: ``[T, S, S, 2]`` the crop's forward displacement at each frame.
    """

    frames: PhotoAnimation
    end_map: np.ndarray
    crops: tuple[np.ndarray, np.ndarray]
    velocity: np.ndarray
    disp: np.ndarray


def fit_photos(
    source: np.ndarray,
    target: np.ndarray,
    face0: Face,
    face1: Face,
    crop: CanonicalCrop,
    fit,
    ts: np.ndarray,
    direction: str = "forward",
    morph: bool = True,
    grid: int = 0,
    size: int = FIT_SIZE,
) -> PhotoFit:
    """Two photos of one person: both faces aligned to ``crop`` by their landmarks, a
    stationary field fitted from the source's crop to the target's (``fit(x0, x1) -> v``,
    e.g. a compiled ``jwarp.animation.fit_field``), and the source photo animated in place.

    With ``morph`` each frame blends the source carried forward with the target carried back
    (``jwarp.animation.svf_animation``), the target first brought into the source photo's
    place by the two faces' similarities and faded in through the crop's window: the last
    frame shows the target's face in the source photo, and everything away from the face
    stays the source's.

    Args:
      source, target: ``[H, W, C]`` float32 photos with the same channels (any sizes).
      face0, face1: the face of each.
      crop: the canonical crop both are aligned to.
      fit: ``(x0 [1, S, S, C], x1 [1, S, S, C]) -> v [1, S, S, 2]``.
      ts: ``[T]`` times in ``[0, 1]``.
      direction: ``"forward"``, ``"backward"`` or ``"boomerang"``.
      morph: blend in the target (else warp the source alone; ``"backward"`` then starts
        from the target).
      grid: the deformation grid's spacing (0: none).
      size: the aligned crops' side.
    """
    from jwarp.fit import FitConfig

    a0, a1 = to_crop(face0.landmarks, crop, size), to_crop(face1.landmarks, crop, size)
    c0, c1 = crop_face(source, a0, size), crop_face(target, a1, size)
    v = np.asarray(fit(jnp.asarray(c0[None]), jnp.asarray(c1[None])))
    solver = FitConfig().solver
    ts = np.asarray(ts, np.float32)
    fwd = _svf(v, ts, "forward", solver)  # u_t: carries the source to time t
    # The target's face where the source's is, faded in through the window; the rest is the
    # source's own pixels.
    there = source.copy()
    box = footprint(a0, size, source.shape[:2])
    if box is not None:
        top, left, bottom, right = box
        to_box = Similarity(np.array([[1.0, 0.0, -top], [0.0, 1.0, -left]]))
        moved = resample(target, a1.then(a0.inverse()).then(to_box), (bottom - top, right - left))
        rows, cols = np.meshgrid(np.arange(top, bottom), np.arange(left, right), indexing="ij")
        q = a0.apply(np.stack([rows, cols], axis=-1))
        w = np.asarray(crop_window(jnp.asarray(q, jnp.float32), size))[..., None]
        there[top:bottom, left:right] = w * moved + (1.0 - w) * source[top:bottom, left:right]
    motion = lambda d: [FaceMotion(a0, d)]  # noqa: E731
    ones = np.ones_like(ts)
    if morph:  # the source carried forward, blended with the target carried back
        back = _svf(v, 1.0 - ts[::-1], "backward", solver)[::-1]  # u_{t-1}
        layers = [Layer(source, motion(fwd), 1.0 - ts), Layer(there, motion(back), ts)]
        if direction == "backward":
            layers = _in_order(layers, np.arange(len(ts))[::-1])
    elif direction == "backward":  # the target, carried back towards the source
        layers = [Layer(there, motion(_svf(v, ts, "backward", solver)), ones)]
    else:
        layers = [Layer(source, motion(fwd), ones)]
    if direction == "boomerang":
        layers = _in_order(layers, np.r_[np.arange(len(ts)), np.arange(len(ts) - 2, -1, -1)])
    frames = PhotoAnimation(layers, grid=grid)
    end = PhotoAnimation([Layer(source, motion(fwd[-1:]), np.ones(1, np.float32))])
    return PhotoFit(frames, end.displacement(0), (c0, c1), v[0], fwd)


__all__ = [
    "FIT_SIZE",
    "FIT_ZOOM",
    "Found",
    "PhotoFit",
    "animate_photo",
    "animate_photos",
    "convert",
    "find",
    "fit_photos",
    "model_motions",
    "model_window",
    "zoomed",
]
