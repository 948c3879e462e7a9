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
import math

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
    }


def _geometry(image: np.ndarray, p: dict, i: int) -> np.ndarray:
    """Image ``i`` shifted, turned, scaled and mirrored about its centre; bilinear, edge
    pixels repeated (as the warps do)."""
    from scipy import ndimage

    h, w, c = image.shape
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    angle, scale = p["rotate"][i], p["scale"][i]
    # Output pixel q samples the input at centre + R^-1 (q - centre - shift) / scale.
    cos, sin = math.cos(angle), math.sin(angle)
    inverse = np.array([[cos, sin], [-sin, cos]]) / scale
    if p["flip"][i]:  # mirrored (about the centre column) before it is turned and scaled
        inverse = np.diag([1.0, -1.0]) @ inverse
    offset = centre - inverse @ (centre + p["shift"][i])
    return np.stack([
        ndimage.affine_transform(image[..., k], inverse, offset, order=1, mode="nearest")
        for k in range(c)
    ], axis=-1)


def apply(images: np.ndarray, p: dict, cfg: AugmentConfig) -> np.ndarray:
    """``[N, H, W, C]`` images in ``[0, 1]`` changed by the amounts ``p`` (``draw``).

    Colour channels change together; an alpha channel (``C = 4``) moves with the geometry and
    keeps its values.
    """
    from scipy import ndimage

    out = np.array(images, np.float32, copy=True)
    colour = slice(0, 3) if out.shape[-1] == 4 else slice(None)
    for i in range(len(out)):
        x = out[i]
        if cfg.geometric:
            x = _geometry(x, p, i)
        v = x[..., colour]
        if p["blur"][i] > 0:
            v = ndimage.gaussian_filter(v, (p["blur"][i], p["blur"][i], 0), mode="nearest")
        if cfg.contrast:
            mean = v.mean()
            v = (v - mean) * p["contrast"][i] + mean
        if cfg.brightness:
            v = v + p["brightness"][i]
        if cfg.gamma:
            v = np.clip(v, 0.0, 1.0) ** p["gamma"][i]
        if p["noise"][i] > 0:
            noise = np.random.default_rng(p["noise_seed"][i]).normal(0, p["noise"][i], v.shape)
            v = v + noise.astype(np.float32)
        x[..., colour] = np.clip(v, 0.0, 1.0)
        out[i] = x
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
