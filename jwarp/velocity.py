"""Velocity fields ``du/dt = V(u)`` as diffrax vector fields ``f(t, y, args)``.

Two parameterisations (SPEC §3), both autonomous:

* ``neural``: ``du/dt = f_theta(concat[c, u_t])`` -- the paper's: a U-Net pass at every solver
  stage. ``args = (params, cond)``.
* ``stationary``: ``v = f_theta(c)`` once per image, then ``du/dt(s) = v(g(s) + u_t(s))``, a
  bilinear sample of ``v`` at the current position. ``args = v``. The flow of a Lipschitz ``v``
  is a diffeomorphism and ``phi_{-t} = phi_t^{-1}``.

``with_penalties`` appends the running Jacobian-fold and out-of-grid penalties to the state so
that every solver and both adjoints integrate them exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, Float

from jwarp.penalties import negative_jacobian, out_of_grid
from jwarp.sampler import identity_grid, sample

Disp = Float[Array, "B H W 2"]
VectorField = Callable[[Any, Any, Any], Any]
FIELDS = ("neural", "stationary")


def neural_velocity(apply_fn: Callable[[Any, Array], Disp]) -> VectorField:
    """``f(t, u, (params, cond)) = apply_fn(params, concat[cond, u / size])``.

    The displacement fed to the network is divided by the image size so that the input scale
    does not depend on resolution.

    Args:
      apply_fn: ``(params, [B, H, W, C + 2]) -> [B, H, W, 2]`` velocity in pixels per unit time.

    Returns:
      Vector field over ``u: [B, H, W, 2]`` with ``args = (params, cond [B, H, W, C])``.
    """

    def vector_field(t, u, args):
        del t
        params, cond = args
        size = jnp.array(u.shape[1:3], u.dtype).reshape(1, 1, 1, 2)
        return apply_fn(params, jnp.concatenate([cond, u / size], axis=-1))

    return vector_field


def stationary_velocity(padding: str = "border") -> VectorField:
    """``f(t, u, v) = v(g + u)``: a stationary field sampled at the current position.

    Args:
      padding: how ``v`` is extended outside the frame (``"border"`` or ``"zeros"``).

    Returns:
      Vector field over ``u: [B, H, W, 2]`` with ``args = v [B, H, W, 2]``.
    """

    def vector_field(t, u, v):
        del t
        _, h, w, _ = u.shape
        return sample(v, identity_grid(h, w)[None] + u, padding)

    return vector_field


def with_penalties(velocity: VectorField, sign: float = 1.0) -> VectorField:
    """Augments ``velocity`` with ``d JD/dt`` and ``d OG/dt`` as extra state.

    The state is ``(u [B,H,W,2], jd [B], og [B])``. ``sign`` is the direction of time (``-1``
    when integrating towards ``t = -1``) so that the accumulated penalties are
    ``∫ |dt|``-integrals and stay non-negative.
    """

    def vector_field(t, y, args):
        u = y[0]
        return (velocity(t, u, args), sign * negative_jacobian(u), sign * out_of_grid(u))

    return vector_field
