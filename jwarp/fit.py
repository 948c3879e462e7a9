"""Fit one stationary velocity field to one image pair by optimisation (no training set).

The field is parameterised on a coarse grid and upsampled bilinearly, which keeps it smooth
(and its flow a diffeomorphism) without an explicit smoothness term.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from jwarp.flow import SolverConfig, integrate_svf
from jwarp.sampler import warp


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Settings of ``fit_pair``.

    Attributes:
      steps: Adam steps.
      learning_rate: Adam learning rate, in pixels per unit time.
      grid: the field lives on a ``ceil(H / grid) x ceil(W / grid)`` grid.
      w_jd: weight of the integrated Jacobian-fold penalty.
      w_og: weight of the integrated out-of-grid penalty.
      solver: integration settings.
    """

    steps: int = 300
    learning_rate: float = 0.1
    grid: int = 4
    w_jd: float = 1.0
    w_og: float = 1.0
    solver: SolverConfig = SolverConfig(solver="euler", step_size=0.05)


class FitState(NamedTuple):
    coarse: Float[Array, "B h w 2"]
    opt_state: optax.OptState


def upsample_field(coarse: Float[Array, "B h w 2"], height: int, width: int):
    """Bilinear upsampling of a coarse velocity grid to ``[B, H, W, 2]``."""
    b = coarse.shape[0]
    return jax.image.resize(coarse, (b, height, width, 2), "linear")


def fit_loss(coarse, x0, x1, config: FitConfig):
    """L2 endpoint error summed over pixels, averaged over the batch, plus penalties."""
    _, h, w, _ = x0.shape
    v = upsample_field(coarse, h, w)
    res = integrate_svf(v, (1.0,), config=config.solver)
    x1_hat = warp(x0, res.disp[-1])
    fit = jnp.mean(jnp.sum((x1_hat - x1) ** 2, axis=(1, 2, 3)))
    return fit + jnp.mean(config.w_jd * res.jd + config.w_og * res.og), fit


@functools.partial(jax.jit, static_argnames="config")
def fit_pair(
    x0: Float[Array, "B H W C"],
    x1: Float[Array, "B H W C"],
    config: FitConfig = FitConfig(),
) -> Float[Array, "B H W 2"]:
    """Finds ``v`` such that the time-1 flow of ``v`` warps ``x0`` onto ``x1``.

    Args:
      x0: ``[B, H, W, C]`` start frames.
      x1: ``[B, H, W, C]`` end frames.
      config: optimisation settings.

    Returns:
      ``[B, H, W, 2]`` stationary velocity field (pixels per unit time), for ``integrate_svf``.
    """
    chex.assert_equal_shape([x0, x1])
    chex.assert_rank(x0, 4)
    b, h, w, _ = x0.shape
    coarse0 = jnp.zeros((b, -(-h // config.grid), -(-w // config.grid), 2), jnp.float32)
    opt = optax.adam(config.learning_rate)

    def step(state: FitState, _):
        grads, _ = jax.grad(fit_loss, has_aux=True)(state.coarse, x0, x1, config)
        updates, opt_state = opt.update(grads, state.opt_state)
        return FitState(optax.apply_updates(state.coarse, updates), opt_state), None

    state, _ = jax.lax.scan(step, FitState(coarse0, opt.init(coarse0)), None, config.steps)
    v = upsample_field(state.coarse, h, w)
    return v
