"""Digits framed as MNIST frames them before a model trained on MNIST moves them, and the motion
carried back to the digit as it was given.

MNIST's digits are scaled so that their ink's bounding box fits 20x20 pixels and centred by
their centre of mass in a 28x28 frame (padded to 32x32 here). Other people's digits are framed
otherwise: larger, smaller, off centre; a model that has only seen MNIST's framing turns far
fewer of those into the target class (``benchmarks/mnist_heldout.py``). So the model moves the
digit reframed by a similarity ``A`` (a scale and a shift: ``framed(q) = x(A^{-1} q)``), and
its displacements come back as ``u(p) = L^{-1} u_c(A p)`` (as ``jwarp.faces.inplace``
carries a face's, ``L`` the scale), so the frames are the given digit warped: frame 0 is the
input, pixel for pixel, at its own framing.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jwarp.sampler import identity_grid, sample, warp

BOX = 20 / 32  # the ink's bounding box, as a fraction of the frame's side (MNIST: 20 of 32)
INK = 0.1  # pixels above this fraction of the brightest one are ink


def digit_similarity(image: np.ndarray) -> np.ndarray:
    """``[2, 3]`` ``A``: ``(row, col)`` of ``image`` -> the MNIST-framed square of its size
    (the ink's bounding box scaled to ``BOX`` of the side, its centre of mass to the centre).
    The identity for an image without ink.

    Args:
      image: ``[S, S, C]`` one digit in ``[0, 1]``, ink bright.
    """
    grey = np.asarray(image, np.float64).mean(axis=-1)
    size = grey.shape[0]
    ink = grey > INK * grey.max() if grey.max() > 0 else np.zeros_like(grey, bool)
    if not ink.any():
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    rows, cols = np.nonzero(ink)
    extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    scale = BOX * size / extent
    weights = grey * ink
    centre = np.array([(weights.sum(1) * np.arange(size)).sum(),
                       (weights.sum(0) * np.arange(size)).sum()]) / weights.sum()
    shift = (size - 1) / 2 - scale * centre
    return np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])


@jax.jit
def framed(x: Float[Array, "B S S C"], a: Float[Array, "B 2 3"]) -> Float[Array, "B S S C"]:
    """Each digit reframed: ``framed(q) = x(A^{-1} q)``, black outside the digit's image."""
    chex.assert_rank(x, 4)
    chex.assert_shape(a, (x.shape[0], 2, 3))
    size = x.shape[1]
    inverse = jnp.linalg.inv(a[:, :, :2])
    q = identity_grid(size, size)
    p = jnp.einsum("bij,bhwj->bhwi", inverse, q[None] - a[:, None, None, :, 2])
    return sample(x, p, "zeros")


@jax.jit
def carried_back(
    x: Float[Array, "B S S C"], disp_framed: Float[Array, "T B S S 2"], a: Float[Array, "B 2 3"]
) -> tuple[Float[Array, "T B S S C"], Float[Array, "T B S S 2"]]:
    """The framed digits' displacements carried back to the digits as given, ``u(p) = L^{-1}
    u_c(A p)`` (bilinear; beyond the framed square, its edge's), and the given digits warped
    by them: ``(frames, disp)``. ``u`` is ``u_c`` in other coordinates, so its ``det J`` is
    ``u_c``'s: no window, which would fold a field that does not vanish at the edge."""
    chex.assert_rank(x, 4)
    chex.assert_shape(disp_framed, (None, *x.shape[:3], 2))
    t, b, size = disp_framed.shape[0], x.shape[0], x.shape[1]
    q = jnp.einsum("bij,hwj->bhwi", a[:, :, :2], identity_grid(size, size)) + a[:, None, None, :, 2]
    u = sample(disp_framed.reshape(t * b, size, size, 2),
               jnp.broadcast_to(q, (t, *q.shape)).reshape(t * b, size, size, 2), "border")
    back = jnp.linalg.inv(a[:, :, :2])
    disp = jnp.einsum("bij,tbhwj->tbhwi", back, u.reshape(t, b, size, size, 2))
    frames = jax.vmap(lambda d: warp(x, d))(disp)
    return frames, disp


def similarities(x: np.ndarray) -> np.ndarray:
    """``[B, 2, 3]``: ``digit_similarity`` of each of ``[B, S, S, C]`` digits."""
    return np.stack([digit_similarity(image) for image in np.asarray(x)]).astype(np.float32)


__all__ = ["carried_back", "digit_similarity", "framed", "similarities"]
