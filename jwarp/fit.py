"""Fit one stationary velocity field to one image pair by registration (no training set).

The fit works as a registration tool does: coarse to fine over an image pyramid, a smoothness
prior on the velocity (its bending energy), a similarity that is either the L2 error or local
normalised cross-correlation (which tolerates brightness differences), each relative to the
unwarped pair's, and folding ruled out rather than penalised: every accepted iterate's maps
``phi_0.5`` and ``phi_1`` have ``1 / max_area_change <= J <= max_area_change`` at every pixel,
an iterate outside those bounds is pulled back towards the last good one and the step length
halved, and the field returned is the last accepted one. The field stays stationary, so frames
exist at any ``t`` and integrating backwards gives the inverse map.
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

from jwarp.choices import FIT_SIMILARITY, FIT_SMOOTHNESS, FIT_STEPS, SIMILARITIES
from jwarp.flow import Loop, SolverConfig, integrate_svf
from jwarp.metrics import bending_energy
from jwarp.penalties import jacobian_det
from jwarp.sampler import warp

# The times at which every accepted iterate's area change is checked.
CHECK_TIMES = (0.5, 1.0)
# A quadratic barrier starts at this factor inside the bounds, so that steps rarely hit them.
BARRIER_MARGIN = 1.25
BARRIER_WEIGHT = 100.0
# The dissimilarity is divided by the unwarped pair's plus this (an MSE of 1e-4 is 40 dB).
RELATIVE_EPS = 1e-4
# The coarsest pyramid level keeps at least this many pixels on its shorter side.
MIN_LEVEL_SIZE = 8
# The fit and its animation step in one lax.scan: compiled once whatever the number of steps,
# on every backend, and the frames land exactly on the steps the fit checked.
FIT_LOOP = Loop("scan")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Settings of ``fit_pair``.

    Attributes:
      levels: pyramid levels, each half the size of the next (fewer when the coarsest would be
        under 8 pixels).
      steps: Adam steps at the finest level; each coarser level takes twice as many (at a
        quarter of the cost per step).
      learning_rate: Adam step, in pixels per unit time of the level.
      similarity: ``"l2"`` (mean squared error) or ``"lncc"`` (one minus the squared local
        correlation in ``(2 r + 1)^2`` windows), each divided by the unwarped pair's, so that
        1 means no better than no motion.
      smoothness: weight of the velocity's bending energy (px^-2, at each level's own pixels)
        against that relative dissimilarity.
      lncc_radius: ``r`` of the correlation window at the finest level (halved per level).
      max_area_change: bound on ``J`` and ``1 / J`` of every accepted iterate's maps.
      solver: integration settings of the fit; animate the field with the same.
    """

    levels: int = 3
    steps: int = FIT_STEPS
    learning_rate: float = 0.05
    similarity: str = FIT_SIMILARITY
    smoothness: float = FIT_SMOOTHNESS
    lncc_radius: int = 4
    max_area_change: float = 2.0
    solver: SolverConfig = SolverConfig(solver="euler", step_size=0.1)

    def __post_init__(self):
        checks = (
            (self.levels >= 1, f"levels: expected >= 1, got {self.levels}"),
            (self.steps >= 1, f"steps: expected >= 1, got {self.steps}"),
            (self.learning_rate > 0, f"learning_rate: expected > 0, got {self.learning_rate}"),
            (self.similarity in SIMILARITIES,
             f"similarity: expected one of {SIMILARITIES}, got {self.similarity!r}"),
            (self.smoothness >= 0, f"smoothness: expected >= 0, got {self.smoothness}"),
            (self.lncc_radius >= 1, f"lncc_radius: expected >= 1, got {self.lncc_radius}"),
            (self.max_area_change > 1,
             f"max_area_change: expected > 1, got {self.max_area_change}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def level_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Pyramid sizes from coarsest to ``(height, width)``; ``ceil`` halving, shorter side
    at least 8 (or the image's own when smaller)."""
    sizes = [(height, width)]
    while len(sizes) < levels:
        h, w = sizes[0]
        h, w = -(-h // 2), -(-w // 2)
        if min(h, w) < MIN_LEVEL_SIZE:
            break
        sizes.insert(0, (h, w))
    return sizes


def resize_field(v: Float[Array, "B h w 2"], height: int, width: int) -> Float[Array, "B H W 2"]:
    """A velocity field on another pixel grid: resampled bilinearly, pixel units rescaled."""
    b, h, w, _ = v.shape
    scale = jnp.array([height / h, width / w], v.dtype).reshape(1, 1, 1, 2)
    return jax.image.resize(v, (b, height, width, 2), "linear") * scale


def _box_mean(x: Float[Array, "B H W C"], r: int) -> Float[Array, "B H W C"]:
    """Mean over ``(2 r + 1)^2`` windows, the image extended by its edge values."""
    k = 2 * r + 1
    padded = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
    total = jax.lax.reduce_window(padded, 0.0, jax.lax.add, (1, k, k, 1), (1, 1, 1, 1), "VALID")
    return total / (k * k)


def lncc(
    a: Float[Array, "B H W C"], b: Float[Array, "B H W C"], radius: int, eps: float = 1e-4
) -> Float[Array, " B"]:
    """Mean squared local normalised cross-correlation in ``(2 r + 1)^2`` windows, in [0, 1];
    1 where ``b`` is an affine function of ``a`` in every window."""
    chex.assert_equal_shape([a, b])
    ma, mb = _box_mean(a, radius), _box_mean(b, radius)
    var_a = _box_mean(a * a, radius) - ma**2
    var_b = _box_mean(b * b, radius) - mb**2
    cov = _box_mean(a * b, radius) - ma * mb
    cc2 = cov**2 / ((jnp.maximum(var_a, 0) + eps) * (jnp.maximum(var_b, 0) + eps))
    return jnp.mean(cc2, axis=(1, 2, 3))


def dissimilarity(
    warped: Float[Array, "B H W C"], target: Float[Array, "B H W C"], config: FitConfig,
    radius: int,
) -> Float[Array, " B"]:
    """Per image: ``mean (warped - target)^2`` or ``1 - lncc``."""
    if config.similarity == "lncc":
        return 1.0 - lncc(warped, target, radius)
    return jnp.mean((warped - target) ** 2, axis=(1, 2, 3))


def _area_bounds(config: FitConfig) -> tuple[float, float]:
    return 1.0 / config.max_area_change, config.max_area_change


def _objective(v, x0, x1, config: FitConfig, radius: int, before):
    """Sum over the batch of relative dissimilarity + smoothness + barrier; per image
    ``(relative dissimilarity, smallest J, largest J)`` over ``CHECK_TIMES``. ``before``:
    ``[B]`` the unwarped pair's dissimilarity."""
    lo, hi = _area_bounds(config)
    res = integrate_svf(v, CHECK_TIMES, config=config.solver, loop=FIT_LOOP, penalties=False)
    t, b, h, w, _ = res.disp.shape
    jdet = jacobian_det(res.disp.reshape(t * b, h, w, 2)).reshape(t, b, -1)
    barrier = jnp.mean(
        jax.nn.relu(BARRIER_MARGIN * lo - jdet) ** 2 + jax.nn.relu(jdet - hi / BARRIER_MARGIN) ** 2,
        axis=(0, 2),
    )
    # Relative to the unwarped pair's, so that the prior weighs the same against a small
    # expression change as against two different faces.
    dis = dissimilarity(warp(x0, res.disp[-1]), x1, config, radius) / (before + RELATIVE_EPS)
    total = dis + config.smoothness * bending_energy(v) + BARRIER_WEIGHT * barrier
    return jnp.sum(total), (dis, jnp.min(jdet, axis=(0, 2)), jnp.max(jdet, axis=(0, 2)))


class _Carry(NamedTuple):
    v: Array  # [B, h, w, 2] the iterate
    opt_state: optax.OptState
    good: Array  # the last iterate found within the bounds
    good_opt_state: optax.OptState
    scale: Array  # [B] step-length factor: halved at each undone step, x1.25 (to 1) otherwise


def _per_image(mask: Array, a: Array, b: Array) -> Array:
    """``a`` where ``mask[i]``, else ``b``; leaves without a batch axis (Adam's count) from
    ``a``."""
    if a.ndim == 0:
        return a
    return jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)


def _fit_level(v, x0, x1, config: FitConfig, radius: int, steps: int):
    """``steps`` guarded Adam steps from ``v``; returns the last iterate within bounds.

    An iterate outside the bounds is replaced by the midpoint between it and the last good
    one (the zero field at first, which always is), and the step length halves; accepted
    steps let it grow back.
    """
    b = v.shape[0]
    before = dissimilarity(x0, x1, config, radius)
    opt = optax.adam(1.0)
    lo, hi = _area_bounds(config)
    per_image = lambda ok: functools.partial(_per_image, ok)
    gradient = jax.grad(_objective, has_aux=True)

    def step(c: _Carry, _):
        grads, (_, jmin, jmax) = gradient(c.v, x0, x1, config, radius, before)
        ok = (jmin >= lo) & (jmax <= hi)
        good = _per_image(ok, c.v, c.good)
        good_opt_state = jax.tree.map(per_image(ok), c.opt_state, c.good_opt_state)
        scale = jnp.where(ok, jnp.minimum(1.0, 1.25 * c.scale), 0.5 * c.scale)
        updates, opt_state = opt.update(grads, c.opt_state)
        stepped = c.v + config.learning_rate * scale[:, None, None, None] * updates
        v_next = _per_image(ok, stepped, 0.5 * (c.v + good))
        opt_next = jax.tree.map(per_image(ok), opt_state, good_opt_state)
        return _Carry(v_next, opt_next, good, good_opt_state, scale), None

    state = opt.init(v)
    zero = jnp.zeros_like(v)
    carry, _ = jax.lax.scan(step, _Carry(v, state, zero, state, jnp.ones(b)), None, steps)
    return carry.good


@functools.partial(jax.jit, static_argnames="config")
def fit_pair(
    x0: Float[Array, "B H W C"],
    x1: Float[Array, "B H W C"],
    config: FitConfig = FitConfig(),
) -> Float[Array, "B H W 2"]:
    """Finds ``v`` such that the time-1 flow of ``v`` warps ``x0`` onto ``x1`` (jitted).

    Args:
      x0: ``[B, H, W, C]`` start frames in ``[0, 1]``.
      x1: ``[B, H, W, C]`` end frames.
      config: registration settings.

    Returns:
      ``[B, H, W, 2]`` stationary velocity (pixels per unit time) for ``integrate_svf`` with
      ``config.solver``; its maps at ``t = 0.5`` and ``1`` keep ``J`` within
      ``[1 / max_area_change, max_area_change]`` at every pixel.
    """
    chex.assert_equal_shape([x0, x1])
    chex.assert_rank(x0, 4)
    b, h, w, c = x0.shape
    sizes = level_sizes(h, w, config.levels)
    v = jnp.zeros((b, *sizes[0], 2), jnp.float32)
    for k, (lh, lw) in enumerate(sizes):
        up = len(sizes) - 1 - k  # halvings from the finest level
        y0, y1 = (jax.image.resize(x, (b, lh, lw, c), "linear", antialias=True) for x in (x0, x1))
        radius = max(1, config.lncc_radius >> up)
        steps = config.steps * 2**up  # a coarser level's step costs a quarter
        v = _fit_level(resize_field(v, lh, lw), y0, y1, config, radius, steps)
    return v
