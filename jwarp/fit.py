"""Fit one stationary velocity field to one image pair by registration (no training set).

The fit works as a registration tool does: coarse to fine over an image pyramid, a smoothness
prior on the velocity (its bending energy), a similarity that is either the L2 error or local
normalised cross-correlation (which tolerates brightness differences), each relative to the
unwarped pair's, and folding ruled out rather than penalised: every accepted iterate's maps
``phi_0.5`` and ``phi_1`` have ``1 / max_area_change <= J <= max_area_change`` at every pixel,
a step to an iterate outside those bounds is undone and its length halved, and the field
returned is the last accepted one. Each level takes guarded L-BFGS steps; the maps and their
gradient come from ``euler_maps``, the solver's own Euler steps with a hand-written backward
pass. The field stays stationary, so frames exist at any ``t`` and integrating backwards gives
the inverse map.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jwarp.choices import FIT_SIMILARITY, FIT_SMOOTHNESS, FIT_STEPS, SIMILARITIES
from jwarp.flow import Loop, SolverConfig, _save_rows, _unrolled_grid, integrate_svf
from jwarp.metrics import bending_energy
from jwarp.penalties import jacobian_det
from jwarp.sampler import identity_grid, warp

# The times at which every accepted iterate's area change is checked.
CHECK_TIMES = (0.5, 1.0)
# A quadratic barrier starts at this factor inside the bounds, so that steps rarely hit them.
BARRIER_MARGIN = 1.25
BARRIER_WEIGHT = 100.0
# The dissimilarity is divided by the unwarped pair's plus this (an MSE of 1e-4 is 40 dB).
RELATIVE_EPS = 1e-4
# The coarsest pyramid level keeps at least this many pixels on its shorter side.
MIN_LEVEL_SIZE = 8
# L-BFGS keeps this many curvature pairs; a step must lower the objective by this fraction of
# the first-order prediction (Armijo).
MEMORY = 5
ARMIJO = 1e-4
# The coarser levels integrate with Euler steps at least this long (4 to t = 1).
COARSE_STEP_SIZE = 0.25
# Solvers other than fixed-step Euler: the fit's maps in one lax.scan (compiled once whatever
# the number of steps). Either way the checked times are solver steps, as in the animation.
FIT_LOOP = Loop("scan")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Settings of ``fit_pair``.

    Attributes:
      levels: pyramid levels, each half the size of the next (fewer when the coarsest would be
        under 8 pixels).
      steps: L-BFGS steps at the finest level (each one evaluation of the objective and its
        gradient); each coarser level takes twice as many (at a quarter of the cost or less:
        they integrate with Euler steps of at least 0.25).
      learning_rate: the first step's largest change of the velocity, in pixels per unit time
        of the level (L-BFGS scales the later ones itself).
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


def _corners(v: Float[Array, "B H W C"]) -> Float[Array, "B HW 4C"]:
    """Each pixel's cell corners ``(v[i, j], v[i, j+1], v[i+1, j], v[i+1, j+1])`` side by
    side, the field extended by its edge values: a bilinear sample is then one gather of
    ``4 C`` values, not four of ``C`` (several times faster on CPU)."""
    b, h, w, c = v.shape
    p = jnp.pad(v, ((0, 0), (0, 1), (0, 1), (0, 0)), mode="edge")
    cells = [p[:, :h, :w], p[:, :h, 1:], p[:, 1:, :w], p[:, 1:, 1:]]
    return jnp.concatenate(cells, -1).reshape(b, h * w, 4 * c)


def _uncorners(acc: Float[Array, "B HW 4C"], h: int, w: int) -> Float[Array, "B H W C"]:
    """The transpose of ``_corners``: each corner's value added back onto its pixel."""
    b, _, c4 = acc.shape
    a = acc.reshape(b, h, w, 4, c4 // 4)
    out = jnp.zeros((b, h + 1, w + 1, c4 // 4), acc.dtype)
    out = out.at[:, :h, :w].add(a[..., 0, :]).at[:, :h, 1:].add(a[..., 1, :])
    out = out.at[:, 1:, :w].add(a[..., 2, :]).at[:, 1:, 1:].add(a[..., 3, :])
    # The edge extension's row and column belong to the last row and column.
    out = out.at[:, h - 1].add(out[:, h]).at[:, :, w - 1].add(out[:, :, w])
    return out[:, :h, :w]


def _cell(coords: Float[Array, "B H W 2"], h: int, w: int):
    """The flat index of each sample's cell (clamped to the frame) and its offsets in it."""
    y = jnp.clip(coords[..., 0], 0.0, h - 1.0)
    x = jnp.clip(coords[..., 1], 0.0, w - 1.0)
    y0, x0 = jnp.floor(y), jnp.floor(x)
    index = y0.astype(jnp.int32) * w + x0.astype(jnp.int32)
    return index.reshape(index.shape[0], -1), (y - y0)[..., None], (x - x0)[..., None]


def _sample(corners: Float[Array, "B HW 4C"], coords: Float[Array, "B H W 2"], h: int, w: int):
    """``sample_with_gradient(v, coords, "border")`` from ``_corners(v)``: the same
    arithmetic, so the same values."""
    b, ho, wo, _ = coords.shape
    index, wy, wx = _cell(coords, h, w)
    vals = jnp.take_along_axis(corners, index[..., None], axis=1, mode="promise_in_bounds")
    v00, v01, v10, v11 = jnp.split(vals.reshape(b, ho, wo, -1), 4, axis=-1)
    top = v00 + wx * (v01 - v00)
    bottom = v10 + wx * (v11 - v10)
    d_row = bottom - top
    d_col = (v01 - v00) + wy * ((v11 - v10) - (v01 - v00))
    y, x = coords[..., 0:1], coords[..., 1:2]
    d_row = jnp.where((y >= 0) & (y <= h - 1.0), d_row, 0.0)  # constant where clamped
    d_col = jnp.where((x >= 0) & (x <= w - 1.0), d_col, 0.0)
    return top + wy * d_row, d_row, d_col


def _splat(acc: Float[Array, "B HW 4C"], values: Float[Array, "B Ho Wo C"], coords, h: int, w: int):
    """``acc`` plus each value spread over its sample's cell corners with the bilinear
    weights (``coords``: ``[B, Ho, Wo, 2]``): the transpose of ``_sample`` in ``corners``."""
    b, ho, wo, c = values.shape
    index, wy, wx = _cell(coords, h, w)
    spread = [values * (1 - wy) * (1 - wx), values * (1 - wy) * wx,
              values * wy * (1 - wx), values * wy * wx]
    spread = jnp.concatenate(spread, -1).reshape(b, ho * wo, 4 * c)
    batch = jnp.arange(b)[:, None]
    return acc.at[batch, index].add(spread, mode="promise_in_bounds")


def euler_maps(v: Float[Array, "B H W 2"], solver: SolverConfig, ts) -> Float[Array, "T B H W 2"]:
    """``integrate_svf(v, ts, config=solver)`` for fixed Euler steps and ``"border"`` padding,
    with a hand-written gradient: one gather per step forward (the field and its derivatives
    at once, from ``_corners``), a loop of elementwise steps backward and one scatter for all
    of them; autodiff of ``integrate_svf`` costs several times more on CPU.

    Args:
      v: ``[B, H, W, 2]`` stationary velocity, pixels per unit time.
      solver: an Euler ``SolverConfig`` with fixed steps.
      ts: ``[T]`` concrete save times in ``[0, 1]``, non-decreasing.

    Returns:
      ``[T, B, H, W, 2]`` displacements ``u_t``, as ``integrate_svf`` gives them.
    """
    chex.assert_rank(v, 4)
    chex.assert_axis_dimension(v, -1, 2)
    _, h, w, _ = v.shape
    grid = _unrolled_grid(solver.step_size, np.asarray(ts, np.float64))
    rows = np.asarray(_save_rows(grid, np.asarray(ts, np.float64)))
    dts = jnp.asarray(np.diff(grid), jnp.float32)
    g = identity_grid(h, w)[None]

    def forward(v):
        corners = _corners(v)

        def step(u, dt):
            vel, d_row, d_col = _sample(corners, g + u, h, w)
            return u + dt * vel, (u, d_row, d_col)

        end, (us, d_rows, d_cols) = jax.lax.scan(step, jnp.zeros_like(v), dts)
        return jnp.concatenate([us, end[None]])[rows], (us, d_rows, d_cols)

    def backward(saved, ct):
        us, d_rows, d_cols = saved
        # The cotangent of every saved map enters after the step that made it.
        inject = jnp.zeros((len(grid),) + ct.shape[1:], ct.dtype).at[rows].add(ct)[1:]

        def step(lam, xs):
            d_row, d_col, dt, ct_u = xs
            lam = lam + ct_u
            # u_next = u + dt v(g + u): lam picks up dt (dv/du)^T lam, and v dt lam at g + u.
            pull_row = lam[..., 0] * d_row[..., 0] + lam[..., 1] * d_row[..., 1]
            pull_col = lam[..., 0] * d_col[..., 0] + lam[..., 1] * d_col[..., 1]
            return lam + dt * jnp.stack([pull_row, pull_col], -1), dt * lam

        _, scaled = jax.lax.scan(
            step, jnp.zeros_like(us[0]), (d_rows, d_cols, dts, inject), reverse=True
        )
        # All steps' splats in one scatter, outside the loop (inside it XLA:CPU runs several
        # times slower): the steps stacked as rows of one [B, n h, w] batch of samples.
        n, b = us.shape[:2]
        stacked = lambda x: jnp.swapaxes(x, 0, 1).reshape(b, n * h, w, 2)
        acc = jnp.zeros((b, h * w, 8), us.dtype)
        acc = _splat(acc, stacked(scaled), stacked(g[None] + us), h, w)
        return (_uncorners(acc, h, w),)

    flow = jax.custom_vjp(lambda v: forward(v)[0])
    flow.defvjp(forward, backward)
    return flow(v)


def _maps(v, solver: SolverConfig) -> Array:
    """``[len(CHECK_TIMES), B, h, w, 2]`` maps of ``v`` at the checked times."""
    if solver.solver == "euler" and solver.fixed_steps and solver.padding == "border":
        return euler_maps(v, solver, CHECK_TIMES)
    return integrate_svf(v, CHECK_TIMES, config=solver, loop=FIT_LOOP, penalties=False).disp


def _objective(v, x0, x1, config: FitConfig, radius: int, before):
    """Sum over the batch of relative dissimilarity + smoothness + barrier; per image
    ``(that sum's term, smallest J, largest J)`` over ``CHECK_TIMES``. ``before``: ``[B]``
    the unwarped pair's dissimilarity."""
    lo, hi = _area_bounds(config)
    disp = _maps(v, config.solver)
    t, b, h, w, _ = disp.shape
    jdet = jacobian_det(disp.reshape(t * b, h, w, 2)).reshape(t, b, -1)
    barrier = jnp.mean(
        jax.nn.relu(BARRIER_MARGIN * lo - jdet) ** 2 + jax.nn.relu(jdet - hi / BARRIER_MARGIN) ** 2,
        axis=(0, 2),
    )
    # Relative to the unwarped pair's, so that the prior weighs the same against a small
    # expression change as against two different faces.
    dis = dissimilarity(warp(x0, disp[-1]), x1, config, radius) / (before + RELATIVE_EPS)
    total = dis + config.smoothness * bending_energy(v) + BARRIER_WEIGHT * barrier
    return jnp.sum(total), (total, jnp.min(jdet, axis=(0, 2)), jnp.max(jdet, axis=(0, 2)))


class _State(NamedTuple):
    """One level's L-BFGS state, per image (leading ``B``; ``M`` = ``MEMORY``)."""

    v: Array  # [B, h, w, 2] the last accepted iterate; until one is, the next start to try
    value: Array  # [B] the objective there
    grad: Array  # [B, h, w, 2] its gradient
    ok: Array  # [B] v is within the bounds
    s: Array  # [M, B, h, w, 2] the last accepted steps, oldest first; zeros where none
    y: Array  # [M, B, h, w, 2] the gradient changes over them
    rho: Array  # [M, B] 1 / (s . y), 0 where none
    gamma: Array  # [B] the initial inverse Hessian's scale
    t: Array  # [B] step length: halved at each rejected step, doubled (to 1) at each accepted


def _dot(a: Array, b: Array) -> Array:
    return jnp.sum(a * b, axis=(-3, -2, -1))


def _bcast(x: Array) -> Array:
    return x[..., None, None, None]


def _direction(c: _State) -> tuple[Array, Array]:
    """The L-BFGS direction ``-H grad`` (two-loop recursion) and its slope ``grad . d``; the
    scaled steepest descent where that is not a descent direction."""

    def newest_first(q, pair):
        s, y, rho = pair
        alpha = rho * _dot(s, q)
        return q - _bcast(alpha) * y, alpha

    def oldest_first(r, pair):
        s, y, rho, alpha = pair
        return r + _bcast(alpha - rho * _dot(y, r)) * s, None

    # Loops, not unrolled: the same steps compile once (unrolled, 0.8 s more per level).
    q, alphas = jax.lax.scan(newest_first, c.grad, (c.s, c.y, c.rho), reverse=True)
    r, _ = jax.lax.scan(oldest_first, _bcast(c.gamma) * q, (c.s, c.y, c.rho, alphas))
    d, slope = -r, -_dot(c.grad, r)
    steepest = slope >= 0
    d = jnp.where(_bcast(steepest), -_bcast(c.gamma) * c.grad, d)
    return d, jnp.where(steepest, -c.gamma * _dot(c.grad, c.grad), slope)


def _fit_level(v, x0, x1, config: FitConfig, radius: int, steps: int):
    """``steps`` guarded L-BFGS steps from ``v``, per image; returns the last iterate within
    bounds.

    The first step evaluates ``v``; a start outside the bounds is pulled halfway to the zero
    field (always within them) until it is within. From then on each step tries ``v + t d``,
    accepted only when its maps are within the bounds and it lowers the objective enough
    (Armijo); otherwise ``v`` stays and ``t`` halves.
    """
    before = dissimilarity(x0, x1, config, radius)
    lo, hi = _area_bounds(config)
    value_and_grad = jax.value_and_grad(_objective, has_aux=True)

    def step(c: _State, _):
        d, slope = _direction(c)
        trial = jnp.where(_bcast(c.ok), c.v + _bcast(c.t) * d, c.v)
        (_, (value, jmin, jmax)), grad = value_and_grad(trial, x0, x1, config, radius, before)
        within = (jmin >= lo) & (jmax <= hi)
        accept = within & ~(c.ok & (value > c.value + ARMIJO * c.t * slope))
        s, y = trial - c.v, grad - c.grad
        sy = _dot(s, y)
        keep = accept & c.ok & (sy > 0)  # a curvature pair only between two good iterates
        push = lambda old, new: jnp.concatenate([old[1:], new[None]])
        # The first good iterate's steepest-descent step moves by ``learning_rate`` px at most.
        first = config.learning_rate / jnp.maximum(jnp.max(jnp.abs(grad), axis=(1, 2, 3)), 1e-30)
        gamma = jnp.where(keep, sy / jnp.maximum(_dot(y, y), 1e-30), c.gamma)
        return _State(
            v=jnp.where(_bcast(accept), trial, jnp.where(_bcast(c.ok), c.v, 0.5 * trial)),
            value=jnp.where(accept, value, c.value),
            grad=jnp.where(_bcast(accept), grad, c.grad),
            ok=c.ok | accept,
            s=push(c.s, jnp.where(_bcast(keep), s, 0.0)),
            y=push(c.y, jnp.where(_bcast(keep), y, 0.0)),
            rho=push(c.rho, jnp.where(keep, 1.0 / jnp.where(keep, sy, 1.0), 0.0)),
            gamma=jnp.where(accept & ~c.ok, first, gamma),
            t=jnp.where(accept, jnp.minimum(1.0, 2.0 * c.t), 0.5 * c.t),
        ), None

    b = v.shape[0]
    memory = jnp.zeros((MEMORY, *v.shape), v.dtype)
    start = _State(v, jnp.zeros(b), jnp.zeros_like(v), jnp.zeros(b, bool), memory, memory,
                   jnp.zeros((MEMORY, b)), jnp.ones(b), jnp.ones(b))
    final, _ = jax.lax.scan(step, start, None, steps)
    return jnp.where(_bcast(final.ok), final.v, 0.0)


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
    # The coarser levels only find a start for the next: fewer, longer integration steps.
    coarse_step = max(config.solver.step_size, COARSE_STEP_SIZE)
    coarse = dataclasses.replace(
        config, solver=dataclasses.replace(config.solver, step_size=coarse_step)
    )
    for k, (lh, lw) in enumerate(sizes):
        up = len(sizes) - 1 - k  # halvings from the finest level
        y0, y1 = (jax.image.resize(x, (b, lh, lw, c), "linear", antialias=True) for x in (x0, x1))
        radius = max(1, config.lncc_radius >> up)
        steps = config.steps * 2**up  # a coarser level's step costs a quarter
        level = config if up == 0 else coarse
        v = _fit_level(resize_field(v, lh, lw), y0, y1, level, radius, steps)
    return v
