"""Random changes of training images that a model should not care about: light, blur, noise,
and the small shifts, turns and scalings that face alignment leaves (``AugmentConfig``).

A model trained on one data set's lighting and framing meets other cameras, exposures and
alignment errors in users' photos; drawing such changes afresh for every batch teaches it to
ignore them. Host-side numpy and SciPy, deterministic in the ``numpy.random.Generator`` given
(``jwarp.data.Batches`` draws it from the seed and the batch's position, so a resumed run
sees the same images). Paired images get the same change, so a pair stays registered.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """How much to change training images; every amount is drawn uniformly per image, and 0
    turns that change off (the default: no augmentation).

    Attributes:
      brightness: added to every pixel, up to this much either way.
      contrast: scaled about the image's mean by ``exp(c)``, ``|c|`` up to this.
      gamma: values raised to ``exp(g)``, ``|g|`` up to this.
      blur: a Gaussian blur of up to this many pixels (std), on half of the images.
      noise: Gaussian noise with std up to this.
      shift: moved by up to this many pixels along each axis.
      rotate: turned about the centre by up to this many degrees.
      scale: scaled about the centre by ``exp(s)``, ``|s|`` up to this.
      flip: mirror half of the images left to right.
      stroke: bright strokes (ink on a dark ground: digits) thickened or thinned by up to this
        many pixels (grey dilation or erosion with a 3x3 cross, fractional amounts blended).
    """

    brightness: float = 0.0
    contrast: float = 0.0
    gamma: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    shift: float = 0.0
    rotate: float = 0.0
    scale: float = 0.0
    flip: bool = False
    stroke: float = 0.0

    @property
    def active(self) -> bool:
        return any(dataclasses.astuple(self))

    @property
    def geometric(self) -> bool:
        return bool(self.shift or self.rotate or self.scale or self.flip)


def draw(rng: np.random.Generator, n: int, cfg: AugmentConfig) -> dict[str, np.ndarray]:
    """The random amounts of ``n`` images' changes (``apply`` uses them)."""
    u = lambda limit: rng.uniform(-limit, limit, n)  # noqa: E731
    return {
        "brightness": u(cfg.brightness),
        "contrast": np.exp(u(cfg.contrast)),
        "gamma": np.exp(u(cfg.gamma)),
        "blur": rng.uniform(0, cfg.blur, n) * (rng.uniform(size=n) < 0.5),
        "noise": rng.uniform(0, cfg.noise, n),
        "noise_seed": rng.integers(0, 2**31, n),
        "shift": np.stack([u(cfg.shift), u(cfg.shift)], axis=-1),
        "rotate": np.deg2rad(u(cfg.rotate)),
        "scale": np.exp(u(cfg.scale)),
        "flip": (rng.uniform(size=n) < 0.5) & cfg.flip,
        # Drawn last and only when asked for, so the other amounts (and runs) stay as they were.
        "stroke": u(cfg.stroke) if cfg.stroke else np.zeros(n),
    }


def _geometry(images: np.ndarray, p: dict) -> np.ndarray:
    """Every image shifted, turned, scaled and mirrored about its centre, at once: bilinear,
    the edge pixels repeated (``scipy.ndimage.affine_transform(order=1, mode="nearest")``, as
    the warps clamp)."""
    n, h, w, _ = images.shape
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    cos, sin = np.cos(p["rotate"]), np.sin(p["rotate"])
    # Output pixel q samples the input at centre + F R^-1 (q - centre - shift) / scale, with F
    # the mirror (about the centre column): the image is mirrored, then turned and scaled.
    inverse = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)
    inverse = inverse / p["scale"][:, None, None]
    inverse[:, 1] *= np.where(p["flip"], -1.0, 1.0)[:, None]
    offset = centre - np.einsum("nij,nj->ni", inverse, centre + p["shift"])
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1)
    grid = grid.reshape(-1, 2).astype(np.float32)
    coords = grid @ inverse.transpose(0, 2, 1).astype(np.float32) + offset[:, None, :]
    y = np.clip(coords[..., 0], 0, h - 1)  # [N, H * W]
    x = np.clip(coords[..., 1], 0, w - 1)
    y0 = np.minimum(np.floor(y).astype(np.int64), max(h - 2, 0))
    x0 = np.minimum(np.floor(x).astype(np.int64), max(w - 2, 0))
    wy, wx = (y - y0)[..., None], (x - x0)[..., None]
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    flat = images.reshape(n, h * w, -1)
    at = lambda r, c: np.take_along_axis(flat, (r * w + c)[..., None], axis=1)  # noqa: E731
    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return (top * (1 - wy) + bottom * wy).reshape(images.shape).astype(np.float32)


def _blur(images: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Each image blurred by a Gaussian of its own ``sigma`` (pixels; 0: unchanged), separable,
    the edge pixels repeated, at once for the whole batch."""
    radius = int(np.ceil(3 * sigma.max()))
    if radius == 0:
        return images
    offsets = np.arange(-radius, radius + 1)
    taps = np.exp(-0.5 * (offsets[None] / np.maximum(sigma[:, None], 1e-6)) ** 2)
    taps[sigma == 0] = offsets == 0
    taps = (taps / taps.sum(axis=1, keepdims=True)).astype(np.float32)  # [N, 2r + 1]
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(images, pad, mode="edge")
        n = images.shape[axis]
        images = sum(taps[:, k, None, None, None] * np.take(padded, np.arange(k, k + n), axis=axis)
                     for k in range(2 * radius + 1))
    return images


def _cross_filter(images: np.ndarray, reduce) -> np.ndarray:
    """``reduce`` (``np.maximum`` or ``np.minimum``) over each pixel's 3x3 cross, edges repeated."""
    padded = np.pad(images, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
    h, w = images.shape[1:3]
    out = images
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        out = reduce(out, padded[:, dy : dy + h, dx : dx + w])
    return out


def _stroke(images: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Bright strokes thickened (``amount > 0``) or thinned by ``|amount|`` pixels each: whole
    pixels by repeated grey dilation / erosion, the fraction blended with one more."""
    out = images
    a = np.abs(amount)[:, None, None, None].astype(np.float32)
    grow = (amount > 0)[:, None, None, None]
    for k in range(int(np.ceil(a.max()))):
        step = np.where(grow, _cross_filter(out, np.maximum), _cross_filter(out, np.minimum))
        weight = np.clip(a - k, 0.0, 1.0)
        out = out + weight * (step - out)
    return out


def apply(images: np.ndarray, p: dict, cfg: AugmentConfig) -> np.ndarray:
    """``[N, H, W, C]`` images in ``[0, 1]`` changed by the amounts ``p`` (``draw``).

    Colour channels change together; an alpha channel (``C = 4``) moves with the geometry and
    keeps its values. Vectorised over the batch: a few milliseconds for a batch of faces.
    """
    out = np.array(images, np.float32, copy=True)
    if cfg.stroke:
        colour = slice(0, 3) if out.shape[-1] == 4 else slice(None)
        out[..., colour] = _stroke(out[..., colour], p["stroke"])
    if cfg.geometric:
        out = _geometry(out, p)
    colour = slice(0, 3) if out.shape[-1] == 4 else slice(None)
    v = out[..., colour]
    if cfg.blur:
        v = _blur(v, p["blur"])
    per_image = lambda a: np.asarray(a, np.float32)[:, None, None, None]  # noqa: E731
    if cfg.contrast:
        mean = v.mean(axis=(1, 2, 3), keepdims=True)
        v = (v - mean) * per_image(p["contrast"]) + mean
    if cfg.brightness:
        v = v + per_image(p["brightness"])
    if cfg.gamma:
        v = np.clip(v, 0.0, 1.0) ** per_image(p["gamma"])
    if cfg.noise:
        noise = np.stack([np.random.default_rng(seed).normal(0, 1, v.shape[1:])
                          for seed in p["noise_seed"]])
        v = v + (noise * per_image(p["noise"])).astype(np.float32)
    out[..., colour] = np.clip(v, 0.0, 1.0)
    return out


def augment(
    rng: np.random.Generator, cfg: AugmentConfig, images: np.ndarray, partners=None
):
    """``images`` (and ``partners``, with the same changes) changed at random.

    Returns:
      The changed ``images``, or ``(images, partners)`` when partners are given.
    """
    p = draw(rng, len(images), cfg)
    if partners is None:
        return apply(images, p, cfg)
    return apply(images, p, cfg), apply(partners, p, cfg)


__all__ = ["AugmentConfig", "apply", "augment", "draw"]
