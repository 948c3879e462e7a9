"""Regularisers of a warp ``phi = id + u`` (paper Remark 2) and the WGAN-GP gradient penalty.

All spatial penalties take a displacement ``u: [B, H, W, 2]`` in pixels, order ``(dy, dx)``, and
act on the map ``phi = g + u`` itself (not on a velocity), as the paper defines them.
"""

from __future__ import annotations

from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jwarp.sampler import identity_grid


def jacobian_det(disp: Float[Array, "B H W 2"]) -> Float[Array, "B H-1 W-1"]:
    """Jacobian determinant of ``phi = id + u`` by forward differences.

    ``J = (1 + d(dy)/dy) (1 + d(dx)/dx) - d(dy)/dx * d(dx)/dy``, each derivative a forward
    difference anchored at the top-left pixel of every 2x2 cell.

    Args:
      disp: ``[B, H, W, 2]`` displacement ``(dy, dx)``.

    Returns:
      ``[B, H-1, W-1]``; 1 for a translation, ``<= 0`` where the map folds.
    """
    chex.assert_rank(disp, 4)
    chex.assert_axis_dimension(disp, -1, 2)
    uy, ux = disp[..., 0], disp[..., 1]
    dy_dy = uy[:, 1:, :-1] - uy[:, :-1, :-1]
    dy_dx = uy[:, :-1, 1:] - uy[:, :-1, :-1]
    dx_dy = ux[:, 1:, :-1] - ux[:, :-1, :-1]
    dx_dx = ux[:, :-1, 1:] - ux[:, :-1, :-1]
    return (1.0 + dy_dy) * (1.0 + dx_dx) - dy_dx * dx_dy


def negative_jacobian(disp: Float[Array, "B H W 2"]) -> Float[Array, " B"]:
    """Mean negative part of the Jacobian determinant, ``mean_s ½(|J| - J)``.

    Args:
      disp: ``[B, H, W, 2]``.

    Returns:
      ``[B]``, zero iff the map folds nowhere.
    """
    jdet = jacobian_det(disp)
    return jnp.mean(jax.nn.relu(-jdet), axis=(1, 2))


def area_excess(disp: Float[Array, "B H W 2"], band: float = 2.0) -> Float[Array, " B"]:
    """How far the map squeezes or stretches area beyond a factor ``band``:
    ``mean_s relu(|log J| - log band)^2``.

    Symmetric in a map and its inverse (``log J`` changes sign), zero while ``1/band <= J <=
    band``. ``J`` is floored at 1e-3 for the logarithm: folds themselves are ``JD``'s.

    Args:
      disp: ``[B, H, W, 2]``.
      band: the area factor allowed without penalty, ``> 1``.

    Returns:
      ``[B]``.
    """
    log_j = jnp.log(jnp.maximum(jacobian_det(disp), 1e-3))
    return jnp.mean(jax.nn.relu(jnp.abs(log_j) - jnp.log(band)) ** 2, axis=(1, 2))


def out_of_grid(disp: Float[Array, "B H W 2"]) -> Float[Array, " B"]:
    """How far ``phi`` samples outside the frame, in pixels.

    ``mean_s sum_{axis in (row, col)} relu(phi_axis - (size_axis - 1)) + relu(-phi_axis)``.

    Args:
      disp: ``[B, H, W, 2]``.

    Returns:
      ``[B]``, zero iff every sampling position lies inside ``[0, H-1] x [0, W-1]``.
    """
    chex.assert_rank(disp, 4)
    chex.assert_axis_dimension(disp, -1, 2)
    _, h, w, _ = disp.shape
    phi = identity_grid(h, w)[None] + disp
    upper = jnp.array([h - 1.0, w - 1.0], dtype=phi.dtype).reshape(1, 1, 1, 2)
    excess = jax.nn.relu(phi - upper) + jax.nn.relu(-phi)
    return jnp.mean(jnp.sum(excess, axis=-1), axis=(1, 2))


def gradient_penalty(
    critic_fn: Callable[[Float[Array, "B H W C"]], Float[Array, " B"]],
    real: Float[Array, "B H W C"],
    fake: Float[Array, "B H W C"],
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    """WGAN-GP penalty ``mean_b (||grad_x D(x_b)||_2 - 1)^2`` on random interpolates.

    ``x_b = eps_b * real_b + (1 - eps_b) * fake_b`` with ``eps_b ~ U[0, 1]`` per sample
    (Gulrajani et al., 2017). The weight ``lambda`` is applied by the caller. ``eps_b`` is drawn
    from ``fold_in(key, b)``, ``b`` the example's index in the (global) batch: every example gets
    its own stream, whatever the batch size and however the batch is split over devices.

    Args:
      critic_fn: maps ``[B, H, W, C]`` to one score per image ``[B]``; must treat the images of
        a batch independently (no batch statistics), which makes the per-sample gradient the
        gradient of the summed scores.
      real: ``[B, H, W, C]``.
      fake: ``[B, H, W, C]``.
      key: PRNG key for ``eps``.

    Returns:
      Scalar penalty (without ``lambda``).
    """
    chex.assert_equal_shape([real, fake])
    chex.assert_rank(real, 4)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(real.shape[0]))
    eps = jax.vmap(lambda k: jax.random.uniform(k, (1, 1, 1), dtype=real.dtype))(keys)
    interp = eps * real + (1.0 - eps) * fake
    grads = jax.grad(lambda x: jnp.sum(critic_fn(x)))(interp)
    norms = jnp.sqrt(jnp.sum(grads**2, axis=(1, 2, 3)) + 1e-12)
    return jnp.mean((norms - 1.0) ** 2)
