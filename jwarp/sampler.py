"""Bilinear resampling of images and fields at pixel coordinates.

Conventions (docs/method.md §2): images are ``[B, H, W, C]``; coordinates and displacements are in
**pixel units** with channel order ``(row, col)`` = ``(dy, dx)``; pixel centres sit at integer
coordinates ``0 .. H-1`` / ``0 .. W-1``. Warping is a pull-back, ``warp(x, u)(s) = x(s + u(s))``.

Out-of-bounds policy:
  * ``"border"`` clamps every coordinate to ``[0, H-1] x [0, W-1]`` before interpolating, so a
    sample outside the frame takes the value of the nearest edge pixel. This is exactly
    ``scipy.ndimage.map_coordinates(order=1, mode="nearest")``.
  * ``"zeros"`` treats every pixel outside the frame as 0 and interpolates with it, so values
    fade to 0 over the one-pixel band outside the frame (``mode="grid-constant"`` in scipy,
    ``padding_mode="zeros"`` in PyTorch's ``grid_sample``).
"""

from __future__ import annotations

from typing import Literal

import chex
import jax.numpy as jnp
from jaxtyping import Array, Float

Padding = Literal["border", "zeros"]
PADDINGS = ("border", "zeros")


def identity_grid(height: int, width: int) -> Float[Array, "H W 2"]:
    """Pixel-centre coordinates ``g(s) = (row, col)``.

    Args:
      height: ``H``.
      width: ``W``.

    Returns:
      ``[H, W, 2]`` float32 with ``g[i, j] = (i, j)``.
    """
    rows = jnp.arange(height, dtype=jnp.float32)
    cols = jnp.arange(width, dtype=jnp.float32)
    return jnp.stack(jnp.meshgrid(rows, cols, indexing="ij"), axis=-1)


def sample(
    field: Float[Array, "B H W C"],
    coords: Float[Array, "B Ho Wo 2"],
    padding: Padding = "border",
) -> Float[Array, "B Ho Wo C"]:
    """Bilinearly samples ``field`` at pixel coordinates ``coords``.

    Differentiable in both ``field`` and ``coords`` (the coordinate gradient is the usual
    piecewise-linear one; it is undefined exactly on integer coordinates).

    Args:
      field: ``[B, H, W, C]`` values on the pixel grid.
      coords: ``[B, Ho, Wo, 2]`` sampling positions ``(row, col)`` in pixels.
      padding: ``"border"`` or ``"zeros"``; see the module docstring.

    Returns:
      ``[B, Ho, Wo, C]`` with the dtype of ``field``.
    """
    (v00, v01, v10, v11), wy, wx, _ = _corners(field, coords, padding)
    top = v00 + wx * (v01 - v00)
    bottom = v10 + wx * (v11 - v10)
    out = top + wy * (bottom - top)
    return out.astype(field.dtype)


def sample_with_gradient(
    field: Float[Array, "B H W C"],
    coords: Float[Array, "B Ho Wo 2"],
    padding: Padding = "border",
) -> tuple[Float[Array, "B Ho Wo C"], Float[Array, "B Ho Wo C"], Float[Array, "B Ho Wo C"]]:
    """``sample`` and the derivatives of the bilinear interpolant along rows and columns.

    The derivatives come from the same four corners (one gather). Within a cell they are
    exact; on a cell edge they take the cell below/right of it. Outside the frame, under
    ``"border"``, the interpolant is constant along a clamped axis, so its derivative there
    is 0.

    Args:
      field, coords, padding: as in ``sample``.

    Returns:
      ``(values, d values / d row, d values / d col)``, each ``[B, Ho, Wo, C]``.
    """
    (v00, v01, v10, v11), wy, wx, inside = _corners(field, coords, padding)
    top = v00 + wx * (v01 - v00)
    bottom = v10 + wx * (v11 - v10)
    d_row = bottom - top
    d_col = (v01 - v00) + wy * ((v11 - v10) - (v01 - v00))
    out = top + wy * d_row
    if inside is not None:
        d_row = jnp.where(inside[0][..., None], d_row, 0.0)
        d_col = jnp.where(inside[1][..., None], d_col, 0.0)
    return tuple(a.astype(field.dtype) for a in (out, d_row, d_col))


def _corners(field, coords, padding):
    """The four corner values of every sample, its fractional offsets, and under
    ``"border"`` masks of the coordinates that were not clamped (None under ``"zeros"``).
    """
    chex.assert_rank([field, coords], 4)
    chex.assert_axis_dimension(coords, -1, 2)
    chex.assert_equal_shape_prefix([field, coords], 1)
    if padding not in PADDINGS:
        raise ValueError(f"padding: expected one of {PADDINGS}, got {padding!r}")
    b, h, w, c = field.shape
    _, ho, wo, _ = coords.shape
    y, x = coords[..., 0], coords[..., 1]
    if padding == "border":
        y = jnp.clip(y, 0.0, h - 1.0)
        x = jnp.clip(x, 0.0, w - 1.0)
    y0, x0 = jnp.floor(y), jnp.floor(x)
    wy, wx = (y - y0)[..., None], (x - x0)[..., None]
    y0i, x0i = y0.astype(jnp.int32), x0.astype(jnp.int32)

    # The four corners in one gather: XLA compiles chains of many small gathers (an unrolled
    # integration) far more slowly than chains of one.
    yi = jnp.stack([y0i, y0i, y0i + 1, y0i + 1], axis=-1)  # [B, Ho, Wo, 4]
    xi = jnp.stack([x0i, x0i + 1, x0i, x0i + 1], axis=-1)
    # Clamping keeps the gather in range; under "border" a clamped corner only ever has
    # weight 0, under "zeros" the mask below removes it.
    idx = jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)
    vals = jnp.take_along_axis(
        field.reshape(b, h * w, c),
        idx.reshape(b, ho * wo * 4, 1),
        axis=1,
        mode="promise_in_bounds",
    ).reshape(b, ho, wo, 4, c)
    if padding == "zeros":
        inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        vals = jnp.where(inside[..., None], vals, jnp.zeros((), vals.dtype))
    unclamped = None
    if padding == "border":
        yr, xr = coords[..., 0], coords[..., 1]
        unclamped = ((yr >= 0) & (yr <= h - 1.0), (xr >= 0) & (xr <= w - 1.0))
    return tuple(vals[..., k, :] for k in range(4)), wy, wx, unclamped


def warp(
    images: Float[Array, "B H W C"],
    disp: Float[Array, "B H W 2"],
    padding: Padding = "border",
) -> Float[Array, "B H W C"]:
    """Pull-back warp ``warp(x, u)(s) = x(g(s) + u(s))``, bilinear.

    Args:
      images: ``[B, H, W, C]``.
      disp: ``[B, H, W, 2]`` displacement ``(dy, dx)`` in pixels.
      padding: ``"border"`` (default) or ``"zeros"``.

    Returns:
      ``[B, H, W, C]`` warped images.
    """
    chex.assert_rank([images, disp], 4)
    chex.assert_equal_shape_prefix([images, disp], 3)
    chex.assert_axis_dimension(disp, -1, 2)
    _, h, w, _ = images.shape
    return sample(images, identity_grid(h, w)[None] + disp, padding)


def compose(
    disp_outer: Float[Array, "B H W 2"],
    disp_inner: Float[Array, "B H W 2"],
) -> Float[Array, "B H W 2"]:
    """Displacement of the composed map ``phi_outer ∘ phi_inner``.

    ``(phi_a ∘ phi_b)(s) = phi_b(s) + u_a(phi_b(s))``; ``u_a`` is extended beyond the frame by
    its edge values (``"border"``).

    Args:
      disp_outer: ``[B, H, W, 2]`` displacement ``u_a`` of the map applied last.
      disp_inner: ``[B, H, W, 2]`` displacement ``u_b`` of the map applied first.

    Returns:
      ``[B, H, W, 2]`` displacement of the composition.
    """
    chex.assert_equal_shape([disp_outer, disp_inner])
    return disp_inner + warp(disp_outer, disp_inner, "border")
