"""Velocity fields ``du/dt = V(u)`` as diffrax vector fields ``f(t, y, args)``.

Three parameterisations: the two of docs/method.md §3, both autonomous, and one non-autonomous:

* ``neural``: ``du/dt = f_theta(concat[c, u_t])`` -- the paper's: a U-Net pass at every solver
  stage. ``args = (params, cond)``.
* ``stationary``: ``v = f_theta(c)`` once per image, then ``du/dt(s) = v(g(s) + u_t(s))``, a
  bilinear sample of ``v`` at the current position. ``args = v``. The flow of a Lipschitz ``v``
  is a diffeomorphism and ``phi_{-t} = phi_t^{-1}``.
* ``straight`` (jwarp's addition): ``D = f_theta(c)`` once per image, and every point ``p`` of
  ``x0`` travels the straight line ``psi_t(p) = p + t D(p)`` at constant speed. ``warp`` pulls
  back through ``phi_t = psi_t^{-1}``, which obeys
  ``du/dt = -(I + t grad D(phi_t))^{-1} D(phi_t)`` (differentiate ``psi_t(phi_t(s)) = s``),
  solved for ``t`` in ``[0, 1]``. A stationary field's flow moves and stretches features
  geometrically in ``t`` (``e^{t div v}``); here they move linearly, as the renderer of
  ``faces`` moves them with the smile level. ``args = D``. Going backward, points retrace
  their lines from ``x1``:
  ``phi_{-tau} = psi_1 ∘ phi_{1-tau}`` (``straight_inverse``), so ``phi_{-1} = phi_1^{-1}``
  as for a stationary field (integrating the ODE to ``t = -1`` would give the inverse of
  ``p - D(p)`` instead, which is not ``psi_1``).

``with_penalties`` appends the running Jacobian-fold and out-of-grid penalties to the state so
that every solver and both adjoints integrate them exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, Float

from jwarp.penalties import negative_jacobian, out_of_grid
from jwarp.sampler import identity_grid, sample, sample_with_gradient

Disp = Float[Array, "B H W 2"]
VectorField = Callable[[Any, Any, Any], Any]


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


# The straight field divides by det(I + t grad D). Where psi_t nearly folds, this floor bounds
# the velocity and its gradient (JD penalises the fold itself). With a floor of 0.05, each of
# three faces_l2 runs blew up or collapsed to no motion within 650 steps (gradient norms up to
# 1500); with 0.2 and optim.clip_norm = 20 it trained smoothly on two data seeds.
MIN_DET = 0.2


def straight_velocity(padding: str = "border") -> VectorField:
    """``f(t, u, D) = -(I + t grad D)^{-1} D`` at ``g + u``: straight paths ``p + t D(p)``.

    ``D`` and ``grad D`` are the bilinear interpolant of ``D`` and its derivatives, so the flow
    inverts ``psi_t(p) = p + t D(p)`` for that interpolant up to the solver's error.

    Args:
      padding: how ``D`` is extended outside the frame.

    Returns:
      Vector field over ``u: [B, H, W, 2]`` with ``args = D [B, H, W, 2]``.
    """

    def vector_field(t, u, d):
        _, h, w, _ = u.shape
        val, d_row, d_col = sample_with_gradient(d, identity_grid(h, w)[None] + u, padding)
        dy, dx = val[..., 0], val[..., 1]
        # I + t grad D = [[a, b], [c, e]], rows (Dy, Dx), columns (d/drow, d/dcol).
        a, b = 1 + t * d_row[..., 0], t * d_col[..., 0]
        c, e = t * d_row[..., 1], 1 + t * d_col[..., 1]
        det = jnp.maximum(a * e - b * c, MIN_DET)
        return jnp.stack([b * dx - e * dy, c * dy - a * dx], axis=-1) / det[..., None]

    return vector_field


Penalty = Callable[[Any, Disp, Any], tuple[Array, Array]]


def displacement_penalties(t, u: Disp, args) -> tuple[Array, Array]:
    """``(JD, OG)`` integrands of ``u_t`` itself, each ``[B]`` (docs/method.md §4)."""
    del t, args
    return negative_jacobian(u), out_of_grid(u)


def with_penalties(
    velocity: VectorField, sign: float = 1.0, penalty: Penalty = displacement_penalties
) -> VectorField:
    """Augments ``velocity`` with ``d JD/dt`` and ``d OG/dt`` as extra state.

    The state is ``(u [B,H,W,2], jd, og)``. ``sign`` is the direction of time (``-1`` when
    integrating towards ``t = -1``) so that the accumulated penalties are ``∫ |dt|``-integrals
    and stay non-negative. ``penalty(t, u, args) -> (jd, og)`` gives the integrands (``[B]``
    each, or ``[K, B]`` for ``K`` penalised maps; see ``straight_penalties``).
    """

    def vector_field(t, y, args):
        jd, og = penalty(t, y[0], args)
        return (velocity(t, y[0], args), sign * jd, sign * og)

    return vector_field


def straight_penalties(maps: str, padding: str = "border") -> Penalty:
    """JD and OG integrands of a straight field's solve over ``t in [0, 1]``.

    JD also counts the folds of the motion ``psi_t = id + t D``: where ``psi_t`` folds,
    ``phi_t`` does not exist and the solver's determinant floor (``MIN_DET``) would hide it.

    Args:
      maps: which maps are penalised: ``"forward"`` (``phi_t``), ``"backward"``
        (``psi_1 ∘ phi_t``, the backward map at ``tau = 1 - t``; see ``straight_inverse``) or
        ``"both"`` (``[2, B]`` integrands, forward first).
      padding: as in ``straight_velocity``.
    """

    if maps not in ("forward", "backward", "both"):
        raise ValueError(f"maps: expected 'forward', 'backward' or 'both', got {maps!r}")

    def penalty(t, u, d):
        folds = negative_jacobian(t * d)
        chosen = [] if maps == "backward" else [u]
        if maps != "forward":
            chosen.append(straight_inverse(u, d, padding))
        jd = [negative_jacobian(m) + folds for m in chosen]
        og = [out_of_grid(m) for m in chosen]
        return (jd[0], og[0]) if len(chosen) == 1 else (jnp.stack(jd), jnp.stack(og))

    return penalty


def straight_inverse(u: Disp, d: Disp, padding: str = "border") -> Disp:
    """``psi_1 ∘ phi_t`` for the straight field: ``u + D(g + u)``, ``[B, H, W, 2]``.

    With ``u = u_{1-tau}`` this is the backward map ``phi_{-tau}``: ``warp(x1, .)`` then gives
    the frame at ``1 - tau``, and ``phi_{-1} = psi_1 = phi_1^{-1}``.
    """
    _, h, w, _ = u.shape
    return u + sample(d, identity_grid(h, w)[None] + u, padding)
