"""A face's motion carried from its canonical crop back into the whole photo.

A model moves an aligned crop: ``frame_c(q) = crop(q + u_c(q))`` with ``crop(q) =
photo(A^{-1}(q))``, ``A`` the photo-to-crop similarity (``jwarp.faces.align``). The same
motion in the photo is the pull-back

    ``frame(p) = photo(p + u(p))``,  ``u(p) = w(A p) · L^{-1} u_c(A p)``,

with ``L`` the linear part of ``A`` (displacements turn and scale back to photo pixels) and
``w`` a window in crop coordinates: 1 over the middle of the crop, falling smoothly to exactly
0 at its edges (``crop_window``; a model whose velocity has a window of its own,
``model.unet.out_mask``, brings that one). So the motion fades out before the crop's border
and every pixel outside the crop is the photo's own, in every frame. ``u_c`` is first
upsampled with a cubic filter, then sampled bilinearly, so that a 64-pixel field moves a
1000-pixel face without visible facets.

``PhotoAnimation`` renders the frames of a whole photo lazily, a few at a time and only around
the faces, at the photo's size and in all of its channels: the rest of each frame is the photo
itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jwarp.faces.align import Similarity, footprint
from jwarp.sampler import identity_grid, sample, warp

FADE = 0.2  # the default window's ramp, as a fraction of the crop's side, on each edge
WINDOW = (0.0, 0.0, 1.0, 1.0, FADE)  # (top, left, bottom, right, fade): the whole crop
UPSAMPLE = 4  # cubic upsampling of the crop's field before it is sampled bilinearly
CHUNK_PIXELS = 2**23  # frames rendered at once: about this many region pixels per chunk
BOX_MULTIPLE = 32  # region sides are rounded up to this


def _ramp(x: Array) -> Array:
    """0 for ``x <= 0``, 1 for ``x >= 1``, smooth (C1) between."""
    x = jnp.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def crop_window(
    coords: Float[Array, "*dims 2"], size: int, window: tuple[float, ...] = WINDOW
) -> Float[Array, "*dims"]:
    """A window at crop coordinates ``(row, col)``: 1 inside the box ``window = (top, left,
    bottom, right, fade)`` (fractions of the crop's side, as ``jwarp.models.box_window``)
    shrunk by ``fade``, exactly 0 on and beyond the box's edges, smooth (C1) between. The
    default box is the whole crop: the motion stops at its outer edges."""
    top, left, bottom, right, fade = window
    x = (coords + 0.5) / size  # fractions of the side, 0 and 1 the crop's outer edges
    edges = (1,) * (x.ndim - 1) + (2,)
    lo, hi = jnp.reshape(jnp.asarray([top, left]), edges), jnp.reshape(
        jnp.asarray([bottom, right]), edges)
    per_axis = _ramp(jnp.minimum(x - lo, hi - x) / max(fade, 1e-6))  # fade 0: a hard edge
    return per_axis[..., 0] * per_axis[..., 1]


def photo_displacement(
    disp_crop: Float[Array, "T S S 2"],
    region_to_crop: Float[Array, "2 3"],
    shape: tuple[int, int],
    window: tuple[float, ...] = WINDOW,
) -> Float[Array, "T h w 2"]:
    """The photo's displacement ``u(p) = w(A p) L^{-1} u_c(A p)`` over a region of the photo.

    Args:
      disp_crop: ``[T, S, S, 2]`` the crop's displacements ``u_c`` (pixels of the crop).
      region_to_crop: ``[2, 3]`` ``A``: region ``(row, col)`` -> crop ``(row, col)``.
      shape: ``(h, w)`` of the region.
      window: where the motion may be, in the crop (``crop_window``).

    Returns:
      ``[T, h, w, 2]`` displacements in photo pixels, 0 wherever ``A p`` is outside the
      window's box (the crop, by default).
    """
    chex.assert_rank(disp_crop, 4)
    t, size = disp_crop.shape[0], disp_crop.shape[1]
    fine = size * UPSAMPLE
    smooth = jax.image.resize(disp_crop, (t, fine, fine, 2), "cubic")
    matrix = jnp.asarray(region_to_crop, jnp.float32)
    # [h, w, 2] crop coordinates of the region's pixels.
    q = identity_grid(*shape) @ matrix[:, :2].T + matrix[None, None, :, 2]
    q_fine = (q + 0.5) * UPSAMPLE - 0.5
    u = sample(smooth, jnp.broadcast_to(q_fine, (t, *q_fine.shape)), "border")
    u = u * crop_window(q, size, window)[None, :, :, None]
    back = jnp.linalg.inv(matrix[:, :2])
    return u @ back.T


_photo_displacement = jax.jit(photo_displacement, static_argnames=("shape", "window"))


@jax.jit
def _warp_frames(
    sources: Float[Array, "L h w C"], disp: Float[Array, "L T h w 2"], weights: Float[Array, "L T"]
) -> Float[Array, "T h w C"]:
    """``sum_l weights[l, t] warp(sources[l], disp[l, t])`` for every ``t``."""
    def layer(source, u, wt):
        frames = warp(jnp.broadcast_to(source, (u.shape[0], *source.shape)), u)
        return frames * wt[:, None, None, None]

    return jax.vmap(layer)(sources, disp, weights).sum(axis=0)


def _draw_lines(frames: np.ndarray, lines: np.ndarray, opacity: float = 0.9) -> np.ndarray:
    """Grid lines (``[..., 1]`` coverage) over float frames ``[..., C]`` in ``[0, 1]``, as
    ``jwarp.grid.draw_grid`` draws them: cyan (grey frames: mid-grey), opaque over alpha."""
    c = frames.shape[-1]
    colour = np.asarray((0.5,) if c == 1 else (0.0, 0.8, 1.0), np.float32)
    n = min(c, 3)
    weight = opacity * lines
    out = frames.copy()
    out[..., :n] = frames[..., :n] * (1.0 - weight) + colour * weight
    if c == 4:
        out[..., 3:] = np.maximum(frames[..., 3:], weight)
    return out


class FaceMotion(NamedTuple):
    """One face's motion: its photo-to-crop similarity and the crop's displacements.

    Attributes:
      to_crop: photo ``(row, col)`` -> crop ``(row, col)``.
      disp: ``[T, S, S, 2]`` the crop's displacement at each frame, crop pixels ``(dy, dx)``.
    """

    to_crop: Similarity
    disp: np.ndarray


class Layer(NamedTuple):
    """An image warped by the faces' motions and weighted in every frame (a morph has two).

    Attributes:
      image: ``[H, W, C]`` float32 in ``[0, 1]``; the photo's size.
      motions: one ``FaceMotion`` per face (all with the same ``T``).
      weights: ``[T]`` its weight in each frame.
    """

    image: np.ndarray
    motions: Sequence[FaceMotion]
    weights: np.ndarray


class _Region(NamedTuple):
    box: tuple[int, int, int, int]  # top, left, bottom, right (exclusive)
    faces: tuple[int, ...]  # indices into each layer's motions


def _boxes_overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _rounded(lo: int, hi: int, n: int, multiple: int = BOX_MULTIPLE) -> tuple[int, int]:
    """``[lo, hi)`` grown to a multiple of ``multiple`` long, within ``[0, n)`` where it can."""
    length = min(n, -(-(hi - lo) // multiple) * multiple)
    lo = min(lo, n - length)
    return lo, lo + length


def _face_box(motion: FaceMotion, shape: tuple[int, int]):
    """The photo box of a face's moving pixels and of everything they sample from (its sides
    rounded up, so that faces of about the same size share compiled shapes), or None."""
    size = motion.disp.shape[1]
    reach = float(np.max(np.linalg.norm(motion.disp, axis=-1), initial=0.0)) / motion.to_crop.scale
    box = footprint(motion.to_crop, size, shape, margin=math.ceil(reach) + 2)
    if box is None:
        return None
    (top, bottom), (left, right) = (_rounded(box[0], box[2], shape[0]),
                                    _rounded(box[1], box[3], shape[1]))
    return top, left, bottom, right


def _regions(layers: Sequence[Layer], shape: tuple[int, int]) -> list[_Region]:
    """One box per face (holding every layer's motion of it); faces whose boxes overlap share
    one box, so that no pixel is rendered twice."""
    regions = []
    for i in range(len(layers[0].motions)):
        boxes = [b for layer in layers if (b := _face_box(layer.motions[i], shape)) is not None]
        if boxes:
            box = tuple(f(b[k] for b in boxes) for k, f in enumerate((min, min, max, max)))
            regions.append(_Region(box, (i,)))
    while True:
        pair = next(((a, b) for a in range(len(regions)) for b in range(a + 1, len(regions))
                     if _boxes_overlap(regions[a].box, regions[b].box)), None)
        if pair is None:
            return regions
        ra, rb = regions[pair[0]], regions.pop(pair[1])
        box = tuple(f(ra.box[k], rb.box[k]) for k, f in enumerate((min, min, max, max)))
        regions[pair[0]] = _Region(box, ra.faces + rb.faces)


class PhotoAnimation(Sequence):
    """The frames of a whole photo whose faces move, rendered lazily: ``anim[k]`` is frame
    ``k`` as ``uint8 [H, W, C]``, the photo's size and channels.

    Each frame is ``sum_l weights_l[k] warp(image_l, u_l[k])`` around the faces (``u_l`` from
    each layer's ``FaceMotion``s, ``photo_displacement``) and the first layer's image
    everywhere else, bit for bit. The faces' regions are computed a chunk of frames at a time,
    and the latest chunk is kept, so reading the frames in order computes each once; a frame is
    the photo with its regions pasted in, so memory holds one chunk of regions and one frame,
    whatever the photo's size.

    Args:
      layers: one ``Layer`` (an animation) or two (a morph), over the same faces.
      window: where the motion may be in each crop (``crop_window``); the default is the
        whole crop, fading over a fifth of its side.
      grid: draw the deformation grid with this spacing in pixels (0: none): straight lines
        on the photo, carried by the first layer's motion (``jwarp.grid.draw_grid``).
    """

    def __init__(
        self, layers: Sequence[Layer], window: tuple[float, ...] = WINDOW, grid: int = 0
    ):
        self.layers = list(layers)
        base = self.layers[0].image
        if base.ndim != 3:
            raise ValueError(f"image: expected [H, W, C], got shape {base.shape}")
        self.height, self.width, self.channels = base.shape
        self.window = tuple(float(v) for v in window)
        lengths = {len(layer.weights) for layer in self.layers}
        lengths |= {len(m.disp) for layer in self.layers for m in layer.motions}
        if len(lengths) != 1:
            raise ValueError(f"layers: motions and weights of unequal lengths {lengths}")
        self.length = lengths.pop()
        counts = {len(layer.motions) for layer in self.layers}
        if len(counts) != 1:
            raise ValueError("layers: every layer needs one motion per face")
        self.regions = _regions(self.layers, (self.height, self.width))
        self.lines = None
        if grid:
            from jwarp.grid import grid_lines

            self.lines = grid_lines(self.height, self.width, grid)[..., None]
            base = _draw_lines(base, self.lines)
        self.base = _to_uint8(base)
        # (first frame, last frame + 1, the regions' frames of that chunk)
        self._cache: tuple[int, int, list[np.ndarray]] | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.length, self.height, self.width, self.channels

    def __len__(self) -> int:
        return self.length

    def _chunk_size(self) -> int:
        pixels = sum((b[2] - b[0]) * (b[3] - b[1]) for b, _ in self.regions)
        return max(1, min(self.length, CHUNK_PIXELS // max(pixels, 1)))

    def region_frames(self, region: _Region, frames: np.ndarray) -> np.ndarray:
        """``[len(frames), h, w, C]`` uint8: the frames ``frames`` (indices) of one region."""
        top, left, bottom, right = region.box
        shape = (bottom - top, right - left)
        offset = Similarity(np.array([[1.0, 0.0, top], [0.0, 1.0, left]]))
        sources, disps, weights = [], [], []
        for layer in self.layers:
            u = np.zeros((len(frames), *shape, 2), np.float32)
            for i in region.faces:
                m = layer.motions[i]
                matrix = offset.then(m.to_crop).matrix.astype(np.float32)
                u += np.asarray(_photo_displacement(
                    jnp.asarray(m.disp[frames], jnp.float32), matrix, shape, self.window))
            sources.append(layer.image[top:bottom, left:right])
            disps.append(u)
            weights.append(np.asarray(layer.weights, np.float32)[frames])
        out = np.asarray(_warp_frames(jnp.asarray(np.stack(sources), jnp.float32),
                                      jnp.asarray(np.stack(disps)), jnp.asarray(np.stack(weights))))
        if self.lines is not None:  # the lines move with the first layer: the photo's own motion
            lines = self.lines[top:bottom, left:right][None]
            moved = _warp_frames(jnp.asarray(lines), jnp.asarray(disps[0][None]),
                                 jnp.ones((1, len(frames)), jnp.float32))
            out = _draw_lines(out, np.asarray(moved))
        return _to_uint8(out)

    def _regions_chunk(self, start: int) -> list[np.ndarray]:
        """Each region's frames of the chunk from ``start``: always ``_chunk_size()`` of them,
        the last one repeated past the end, so that every chunk runs the same programs."""
        frames = np.minimum(np.arange(start, start + self._chunk_size()), self.length - 1)
        return [self.region_frames(region, frames) for region in self.regions]

    def __getitem__(self, k):
        if isinstance(k, slice):
            return np.stack([self[i] for i in range(*k.indices(self.length))])
        if isinstance(k, np.ndarray | list | tuple):
            return np.stack([self[int(i)] for i in k])
        k = int(k)
        if k < 0:
            k += self.length
        if not 0 <= k < self.length:
            raise IndexError(f"frame {k} of {self.length}")
        if self._cache is None or not self._cache[0] <= k < self._cache[1]:
            start = k - k % self._chunk_size()
            self._cache = (start, start + self._chunk_size(), self._regions_chunk(start))
        frame = self.base.copy()
        for region, pixels in zip(self.regions, self._cache[2]):
            top, left, bottom, right = region.box
            frame[top:bottom, left:right] = pixels[k - self._cache[0]]
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for k in range(self.length):
            yield self[k]

    def displacement(self, k: int, layer: int = 0) -> np.ndarray:
        """``[H, W, 2]`` float32: layer ``layer``'s displacement at frame ``k`` over the whole
        photo (0 away from the faces)."""
        u = np.zeros((self.height, self.width, 2), np.float32)
        for region in self.regions:
            top, left, bottom, right = region.box
            offset = Similarity(np.array([[1.0, 0.0, top], [0.0, 1.0, left]]))
            for i in region.faces:
                m = self.layers[layer].motions[i]
                matrix = offset.then(m.to_crop).matrix.astype(np.float32)
                u[top:bottom, left:right] += np.asarray(_photo_displacement(
                    jnp.asarray(m.disp[k : k + 1], jnp.float32), matrix,
                    (bottom - top, right - left), self.window))[0]
        return u


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


__all__ = [
    "FADE",
    "WINDOW",
    "FaceMotion",
    "Layer",
    "PhotoAnimation",
    "crop_window",
    "photo_displacement",
]
