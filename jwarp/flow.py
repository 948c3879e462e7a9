"""Integration of the warping ODE ``d phi_t/dt = V(phi_t)``, ``phi_0 = id`` (paper eq. 1).

``integrate`` is the one solver entry point: it takes a vector field over the displacement
``u_t = phi_t - id`` (see ``jwarp.velocity``), the solver settings of a ``SolverConfig`` (part
of the model: they decide the map), how to run its steps (a ``Loop``: execution only), the
times to save at and the direction, and returns the displacements at those times plus the
Jacobian-fold (JD) and out-of-grid (OG) penalties integrated over the whole trajectory as extra
ODE state (docs/method.md §4). ``integrate_svf`` and ``integrate_straight`` solve the two fields
whose velocity is computed once per image; ``jwarp.field`` knows which field needs which.

Three loops run the same solvers:

* ``"diffrax"``: ``diffrax.diffeqsolve`` (rolled loop; any solver, adaptive steps, both adjoints,
  outputs at arbitrary ``ts`` by the solver's dense interpolation).
* ``"unrolled"``: a Python loop of explicit Runge--Kutta steps using the same Butcher tableaus,
  for fixed steps and exact discrete gradients (= ``checkpoint``). XLA:CPU differentiates
  convolutions inside a rolled loop very slowly, so unrolled the neural field's gradient is
  many times faster there (``benchmarks/bench_flow.py``). It steps exactly onto every save time.
* ``"scan"``: the same fixed steps in one ``lax.scan`` (compiled once, whatever the step
  count). Its gradient can keep what diffrax's checkpointed loop recomputes (``Loop.keep``).
* ``"dense"``: for animation, Euler's uniform steps in one ``lax.scan`` and each save time
  read between its two steps, linearly: diffrax's Euler solve with its dense output (up to
  float rounding) at traced times, so a frame does not depend on which others were asked for
  and the program not on their number, without diffrax's tracing and import (not a setting).

Which loop runs is chosen by ``jwarp.execution`` from the backend and the network.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from jwarp.choices import FIELDS
from jwarp.velocity import (
    Penalty,
    VectorField,
    displacement_penalties,
    stationary_velocity,
    straight_inverse,
    straight_penalties,
    straight_velocity,
    with_penalties,
)

SOLVERS = ("euler", "heun", "rk4", "tsit5", "dopri5")
ADAPTIVE_SOLVERS = ("tsit5", "dopri5")
ADJOINTS = ("checkpoint", "backsolve")
LOOPS = ("diffrax", "unrolled", "scan")
DENSE = "dense"  # chosen by jwarp.execution for animation; not an execution.loop setting
SOLVE_DIRECTIONS = ("forward", "backward")


class FlowResult(NamedTuple):
    """Output of ``integrate``.

    Attributes:
      disp: ``[T, B, H, W, 2]`` displacements ``u_t`` at the requested times.
      jd: ``[B]`` ``∫ mean_s ½(|J| - J) |dt|`` over the whole solve (0 to ±1).
      og: ``[B]`` ``∫ out_of_grid(u_t) |dt|`` over the whole solve.
    """

    disp: Float[Array, "T B H W 2"]
    jd: Float[Array, " B"]
    og: Float[Array, " B"]


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """How the flow is integrated: the ``[flow]`` settings, part of the model
    (docs/method.md §3).

    Attributes:
      field: ``"neural"``, ``"stationary"`` or ``"straight"`` (see ``jwarp.field``).
      solver: ``"euler"``, ``"heun"``, ``"rk4"``, ``"tsit5"`` or ``"dopri5"``.
      step_size: fixed step, or the initial step when ``adaptive``.
      adaptive: PID step-size control (``tsit5``/``dopri5`` only).
      rtol: relative tolerance (adaptive only).
      atol: absolute tolerance in pixels (adaptive only).
      max_steps: step budget of the diffrax loop when ``adaptive``.
      adjoint: ``"checkpoint"`` (exact discrete gradients) or ``"backsolve"`` (continuous
        adjoint, memory constant in the number of steps).
      padding: how a velocity computed once per image is extended outside the frame.
    """

    field: str = "stationary"
    solver: str = "euler"
    step_size: float = 0.05
    adaptive: bool = False
    rtol: float = 1e-3
    atol: float = 1e-3
    max_steps: int = 4096
    adjoint: str = "checkpoint"
    padding: str = "border"

    def __post_init__(self):
        for name, allowed in (
            ("field", FIELDS),
            ("solver", SOLVERS),
            ("adjoint", ADJOINTS),
            ("padding", ("border", "zeros")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"flow.{name}: expected one of {allowed}, got {getattr(self, name)!r}"
                )
        if not (0.0 < self.step_size <= 1.0):
            raise ValueError(f"flow.step_size: expected 0 < step_size <= 1, got {self.step_size}")
        if self.adaptive and self.solver not in ADAPTIVE_SOLVERS:
            raise ValueError(
                f"flow.adaptive: needs solver in {ADAPTIVE_SOLVERS}, got {self.solver!r}"
            )
        if self.rtol <= 0 or self.atol <= 0 or self.max_steps < 1:
            raise ValueError("flow.rtol/atol/max_steps: expected positive values")

    @property
    def num_steps(self) -> int:
        """Fixed steps from 0 to ±1 (the last one may be shorter)."""
        return math.ceil(1.0 / self.step_size - 1e-9)

    @property
    def dense_euler(self) -> bool:
        """Fixed Euler steps that divide ``[0, 1]`` evenly: what the ``"dense"`` loop runs as
        diffrax does (diffrax spreads an uneven last step over the ones before it)."""
        n = self.num_steps
        return self.solver == "euler" and not self.adaptive and abs(n * self.step_size - 1) < 1e-6

    @property
    def fixed_steps(self) -> bool:
        """Fixed steps with exact discrete gradients: what the unrolled and scan loops run."""
        return not self.adaptive and self.adjoint == "checkpoint"


@dataclasses.dataclass(frozen=True)
class Loop:
    """How ``integrate`` runs its steps: execution only, the same map up to float rounding.

    Attributes:
      kind: ``"diffrax"``, ``"unrolled"`` or ``"scan"`` (see the module docstring).
      max_unrolled_steps: ``"unrolled"`` only: a solve of more steps than this (compile time
        grows with them), or with traced save times, runs the ``"diffrax"`` loop instead; None
        always unrolls.
      remat: in the unrolled and scan loops, recompute parts of each step in the backward pass
        (``jax.checkpoint``) instead of keeping them.
      keep: what a rematerialised step keeps besides its input: the values tagged with these
        names (``jax.ad_checkpoint.checkpoint_name``; ``jwarp.conv.CONV_OUT`` tags every
        convolution's output, so no network pass is recomputed).
    """

    kind: str = "diffrax"
    max_unrolled_steps: int | None = None
    remat: bool = True
    keep: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in (*LOOPS, DENSE):
            raise ValueError(f"execution.loop: expected one of {LOOPS}, got {self.kind!r}")

    def check(self, config: SolverConfig) -> None:
        """The unrolled and scan loops need ``config.fixed_steps``; a one-line ``ValueError``."""
        if self.kind == DENSE:
            if not config.dense_euler:
                raise ValueError(
                    "execution.loop: 'dense' runs fixed Euler steps that divide [0, 1] evenly"
                )
            return
        if self.kind == "diffrax" or config.fixed_steps:
            return
        if config.adaptive:
            raise ValueError(f"execution.loop: {self.kind!r} needs fixed steps (adaptive = false)")
        raise ValueError(
            f"execution.loop: {self.kind!r} gives exact discrete gradients; use "
            "flow.adjoint = 'checkpoint' with it"
        )


DIFFRAX = Loop()


def animation_loop(config: SolverConfig) -> Loop:
    """The loop an animation runs: ``"dense"`` for Euler steps that divide ``[0, 1]`` evenly,
    diffrax's own otherwise (the same frames either way; see the module docstring)."""
    return Loop(DENSE) if config.dense_euler else DIFFRAX


# --- Butcher tableaus -----------------------------------------------------------------------


class _Tableau(NamedTuple):
    a: tuple[tuple[float, ...], ...]  # a[i] holds the coefficients of stage i+1 on stages 0..i
    b: tuple[float, ...]
    c: tuple[float, ...]  # c[i] is the time fraction of stage i+1


def _from_diffrax(tab) -> _Tableau:
    b = tuple(float(x) for x in tab.b_sol)
    # Stages after the last one with a non-zero weight only feed the error estimate.
    used = max(i for i, x in enumerate(b) if x != 0.0) + 1
    a = tuple(tuple(float(x) for x in row) for row in tab.a_lower[: used - 1])
    return _Tableau(a, b[:used], tuple(float(x) for x in tab.c[: used - 1]))


EULER = _Tableau((), (1.0,), ())


@functools.cache
def _diffrax_solvers() -> dict[str, Callable[[], Any]]:
    """diffrax's solver of each name (diffrax is imported here: ~0.5 s that a command which
    only runs the scan loops, such as an Euler animation or a pair fit, does without)."""
    import diffrax

    rk4_tableau = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )

    class RK4(diffrax.AbstractERK):
        """The classical 4th-order Runge--Kutta method (fixed steps only: no error
        estimate)."""

        tableau = rk4_tableau
        interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

        def order(self, terms):
            del terms
            return 4

    return {
        "euler": diffrax.Euler,
        "heun": diffrax.Heun,
        "rk4": RK4,
        "tsit5": diffrax.Tsit5,
        "dopri5": diffrax.Dopri5,
    }


def _tableau(solver: str) -> _Tableau:
    """The Butcher tableau of ``solver``, read from diffrax's solver of that name."""
    if solver == "euler":
        return EULER
    return _from_diffrax(_diffrax_solvers()[solver].tableau)


def _axpy(y, coeffs: Sequence[float], ks: Sequence[Any], h):
    """``y + h * sum_i coeffs[i] * ks[i]`` over pytrees, skipping zero coefficients."""
    terms = [(c, k) for c, k in zip(coeffs, ks) if c != 0.0]
    if not terms:
        return y
    return jax.tree.map(
        lambda y_, *ks_: y_ + h * sum(c * k for (c, _), k in zip(terms, ks_)),
        y,
        *[k for _, k in terms],
    )


def _rk_step(vector_field: VectorField, tab: _Tableau, t, y, args, h):
    ks = [vector_field(t, y, args)]
    for a_row, c in zip(tab.a, tab.c):
        ks.append(vector_field(t + c * h, _axpy(y, a_row, ks, h), args))
    return _axpy(y, tab.b, ks, h)


# --- integration ----------------------------------------------------------------------------


def _concrete(ts) -> np.ndarray | None:
    try:
        return np.asarray(ts, dtype=np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_times(ts: ArrayLike) -> Any:
    """Validates concrete save times: ``[T]``, ``T >= 1``, non-decreasing, in ``[0, 1]``.

    Returns:
      ``ts`` as a float32 numpy array; traced times (under an outer ``jit``) pass through
      unchecked.

    Raises:
      ValueError: one line naming what is wrong.
    """
    ts_np = _concrete(ts)
    if ts_np is None:
        return ts
    if ts_np.ndim != 1 or ts_np.size == 0:
        raise ValueError(f"ts: expected a non-empty [T] array of times, got shape {ts_np.shape}")
    if not np.all(np.isfinite(ts_np)) or ts_np.min() < 0.0 or ts_np.max() > 1.0:
        raise ValueError(f"ts: expected times in [0, 1], got [{ts_np.min()}, {ts_np.max()}]")
    if np.any(np.diff(ts_np) < 0):
        raise ValueError(f"ts: expected non-decreasing times, got {ts_np.tolist()}")
    return ts_np.astype(np.float32)


def _unrolled_grid(step_size: float, ts: np.ndarray) -> np.ndarray:
    """Uniform step boundaries on [0, 1] merged with the save times."""
    n = math.ceil(1.0 / step_size - 1e-9)
    grid = np.minimum(np.arange(n + 1) * step_size, 1.0)
    grid = np.unique(np.concatenate([grid, ts, [0.0, 1.0]]))
    # Merge boundaries closer than float32 resolution, which would make empty steps.
    keep = np.concatenate([[True], np.diff(grid) > 1e-6])
    return grid[keep]


def _save_rows(grid: np.ndarray, ts_np: np.ndarray) -> list[int]:
    """The index into ``grid`` of each save time (its nearest, possibly merged, grid point)."""
    return [int(np.argmin(np.abs(grid - t))) for t in ts_np]


def _loop_kind(loop: Loop, config: SolverConfig, ts_np: np.ndarray | None) -> str:
    """The loop that runs: a bounded ``"unrolled"`` falls back to ``"diffrax"`` for long or
    traced solves."""
    if loop.kind != "unrolled" or loop.max_unrolled_steps is None:
        return loop.kind
    if ts_np is None:
        return "diffrax"
    steps = len(_unrolled_grid(config.step_size, ts_np)) - 1
    return "unrolled" if steps <= loop.max_unrolled_steps else "diffrax"


def integrate(
    velocity: VectorField,
    args: Any,
    shape: tuple[int, int, int],
    ts: ArrayLike = (1.0,),
    *,
    direction: str = "forward",
    config: SolverConfig = SolverConfig(),
    loop: Loop = DIFFRAX,
    penalties: bool = True,
    penalty: Penalty = displacement_penalties,
) -> FlowResult:
    """Integrates ``du/dt = velocity(t, u, args)`` from ``u_0 = 0`` to ``t = ±1``.

    Args:
      velocity: vector field ``(t, u [B,H,W,2], args) -> du/dt [B,H,W,2]``.
      args: its parameters (a pytree of arrays; differentiated by both adjoints).
      shape: ``(B, H, W)``.
      ts: ``[T]`` save times as magnitudes in ``[0, 1]``, non-decreasing; frames are returned at
        ``t = ts`` (forward) or ``t = -ts`` (backward).
      direction: ``"forward"`` (to ``t = 1``) or ``"backward"`` (to ``t = -1``, the same ODE
        integrated back in time, which gives the inverse map).
      config: solver settings.
      loop: how the steps run (``jwarp.execution`` chooses).
      penalties: also integrate JD and OG (otherwise they are returned as zeros).
      penalty: ``(t, u, args) -> (jd, og)`` integrands, ``[B]`` each (default: JD and OG of
        ``u``), or ``[K, B]`` for ``K`` penalised maps.

    Returns:
      ``FlowResult(disp [T,B,H,W,2], jd [B], og [B])``; ``jd`` and ``og`` are ``[K, B]`` for a
      ``penalty`` of ``K`` maps.
    """
    _check_direction(direction)
    loop.check(config)
    # Read concrete times before any jnp op, which would turn them into tracers under jit.
    ts_np = _concrete(ts)
    if ts_np is not None:
        ts_np = np.atleast_1d(ts_np)
        ts = check_times(ts_np)
    ts = jnp.atleast_1d(jnp.asarray(ts, jnp.float32))
    chex.assert_rank(ts, 1)
    sign = 1.0 if direction == "forward" else -1.0
    b, h, w = shape
    u0 = jnp.zeros((b, h, w, 2), jnp.float32)
    zeros_b = jnp.zeros(jax.eval_shape(penalty, 0.0, u0, args)[0].shape, jnp.float32)
    y0 = (u0, zeros_b, zeros_b)
    if penalties:
        vector_field = with_penalties(velocity, sign, penalty)
    else:
        vector_field = lambda t, y, a: (velocity(t, y[0], a), zeros_b, zeros_b)

    kind = _loop_kind(loop, config, ts_np)
    if kind == DENSE:
        disp, jd, og = _integrate_dense(vector_field, args, y0, ts, sign, config, loop)
    elif kind != "diffrax":
        if ts_np is None:
            raise ValueError(f"ts: the {kind} loop needs concrete (non-traced) save times")
        run = _integrate_scan if kind == "scan" else _integrate_unrolled
        disp, jd, og = run(vector_field, args, y0, ts_np, sign, config, loop)
    else:
        disp, jd, og = _integrate_diffrax(vector_field, args, y0, ts, ts_np, sign, config)
    chex.assert_shape(disp, (ts.shape[0], b, h, w, 2))
    return FlowResult(disp, jd, og)


def _check_direction(direction: str) -> None:
    if direction not in SOLVE_DIRECTIONS:
        raise ValueError(f"direction: expected one of {SOLVE_DIRECTIONS}, got {direction!r}")


def _remat(step: Callable, loop: Loop, static_argnums=()) -> Callable:
    """``step`` under ``jax.checkpoint`` keeping ``loop.keep``, or as it is (``remat`` off)."""
    if not loop.remat:
        return step
    policy = jax.checkpoint_policies.save_only_these_names(*loop.keep) if loop.keep else None
    return jax.checkpoint(step, policy=policy, static_argnums=static_argnums)


def _integrate_unrolled(vector_field, args, y0, ts_np, sign, config, loop):
    tab = _tableau(config.solver)
    grid = _unrolled_grid(config.step_size, ts_np)
    step_fn = _remat(_rk_step, loop, static_argnums=(0, 1, 2, 5))
    saved = []
    y = y0
    for i, t in enumerate(grid):
        saved.append(y[0])
        if i + 1 < len(grid):
            h = float(grid[i + 1] - t)
            y = step_fn(vector_field, tab, sign * float(t), y, args, sign * h)
            # Without a barrier XLA fuses across steps and compile time grows superlinearly.
            y = jax.lax.optimization_barrier(y)
    # Look each save time up at its (possibly merged) grid point.
    disp = jnp.stack([saved[k] for k in _save_rows(grid, ts_np)])
    return disp, y[1], y[2]


def _scan_grid(vector_field, tab: _Tableau, args, y0, grid: np.ndarray, sign, loop: Loop):
    """The steps between consecutive ``grid`` times in one ``lax.scan``: the final state and
    the displacement at every grid time, ``[len(grid), B, H, W, 2]``."""
    times = jnp.asarray(sign * grid[:-1], jnp.float32)
    steps = jnp.asarray(sign * np.diff(grid), jnp.float32)

    def body(y, time_step):
        t, h = time_step
        y = _rk_step(vector_field, tab, t, y, args, h)
        return y, y[0]

    y, disps = jax.lax.scan(_remat(body, loop), y0, (times, steps))
    # Row k of the scan's output is the displacement at grid[k + 1].
    return y, jnp.concatenate([y0[0][None], disps])


def _integrate_scan(vector_field, args, y0, ts_np, sign, config, loop):
    grid = _unrolled_grid(config.step_size, ts_np)
    y, disps = _scan_grid(vector_field, _tableau(config.solver), args, y0, grid, sign, loop)
    return disps[np.asarray(_save_rows(grid, ts_np))], y[1], y[2]  # the saved rows only


def _integrate_dense(vector_field, args, y0, ts, sign, config, loop):
    grid = _unrolled_grid(config.step_size, np.zeros(0))  # uniform steps (dense_euler)
    n = len(grid) - 1
    y, us = _scan_grid(vector_field, EULER, args, y0, grid, sign, loop)
    # Each time between grid[k] and grid[k + 1], read linearly (Euler's dense output).
    g = jnp.asarray(grid, jnp.float32)
    k = jnp.clip(jnp.searchsorted(g, ts, side="right") - 1, 0, n - 1)
    frac = jnp.clip((ts - g[k]) / (g[k + 1] - g[k]), 0.0, 1.0).reshape(-1, 1, 1, 1, 1)
    return us[k] + frac * (us[k + 1] - us[k]), y[1], y[2]


def _integrate_diffrax(vector_field, args, y0, ts, ts_np, sign, config):
    import diffrax

    solver = _diffrax_solvers()[config.solver]()
    if config.adaptive:
        controller = diffrax.PIDController(rtol=config.rtol, atol=config.atol)
        max_steps = config.max_steps
    else:
        controller = diffrax.ConstantStepSize()
        max_steps = config.num_steps
    if config.adjoint == "checkpoint":
        # For fixed steps every step gets a checkpoint: no recomputation in the backward pass.
        adjoint = diffrax.RecursiveCheckpointAdjoint(
            checkpoints=None if config.adaptive else max_steps
        )
    else:
        adjoint = diffrax.BacksolveAdjoint(solver=solver, stepsize_controller=controller)
    # The penalties are read at t1. Saving t1 twice (in ts and as t1) would give the backsolve
    # adjoint an empty interval to integrate over, which yields NaN gradients.
    ends_at_t1 = ts_np is not None and ts_np[-1] == 1.0
    saveat = diffrax.SaveAt(ts=sign * ts, t1=not ends_at_t1)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        solver,
        t0=0.0,
        t1=sign,
        dt0=sign * config.step_size,
        y0=y0,
        args=args,
        saveat=saveat,
        stepsize_controller=controller,
        adjoint=adjoint,
        max_steps=max_steps,
        throw=False,
    )
    # throw=True checks the result in a host callback, which XLA pins to one device: a batch
    # split over devices would be gathered onto it every solve. A failed solve (max_steps
    # reached) gives NaN instead, which training reports as a non-finite loss.
    ok = sol.result == diffrax.RESULTS.successful
    u, jd, og = (jnp.where(ok, y, jnp.nan) for y in sol.ys)
    return (u if ends_at_t1 else u[:-1]), jd[-1], og[-1]


def integrate_svf(
    v: Float[Array, "B H W 2"],
    ts: ArrayLike = (1.0,),
    *,
    direction: str = "forward",
    config: SolverConfig = SolverConfig(),
    loop: Loop = DIFFRAX,
    penalties: bool = True,
) -> FlowResult:
    """Integrates a stationary velocity field: ``du/dt = v(g + u)``.

    Args:
      v: ``[B, H, W, 2]`` velocity in pixels per unit time, ``(dy, dx)``.
      ts: ``[T]`` save times in ``[0, 1]``.
      direction: ``"forward"`` or ``"backward"``.
      config: solver settings (``config.padding`` extends ``v`` outside the frame; its
        ``field`` is not read).
      loop: how the steps run.
      penalties: also integrate JD and OG.

    Returns:
      ``FlowResult(disp [T,B,H,W,2], jd [B], og [B])``; ``phi_t = g + disp[k]`` is the map for
      time ``±ts[k]``, and ``phi_{-1} = phi_1^{-1}`` up to interpolation, so a backward
      ``warp(x1, disp[k])`` is the forward frame at ``1 - ts[k]``.
    """
    chex.assert_rank(v, 4)
    chex.assert_axis_dimension(v, -1, 2)
    return integrate(
        stationary_velocity(config.padding),
        v,
        v.shape[:3],
        ts,
        direction=direction,
        config=config,
        loop=loop,
        penalties=penalties,
    )


def _solve_straight(d, ts, config, loop, penalties, maps):
    """The straight field's forward solve to ``t = 1``, penalised on ``maps``
    (see ``straight_penalties``)."""
    return integrate(
        straight_velocity(config.padding),
        d,
        d.shape[:3],
        ts,
        config=config,
        loop=loop,
        penalties=penalties,
        penalty=straight_penalties(maps, config.padding),
    )


def integrate_straight(
    d: Float[Array, "B H W 2"],
    ts: ArrayLike = (1.0,),
    *,
    direction: str = "forward",
    config: SolverConfig = SolverConfig(),
    loop: Loop = DIFFRAX,
    penalties: bool = True,
) -> FlowResult:
    """Integrates the straight paths ``p + t d(p)`` (pull-back: their inverse; see
    ``jwarp.velocity``). A backward solve is the forward one at ``1 - tau``, then ``psi_1``
    (``straight_inverse``), penalised on that composed map.

    Args:
      d: ``[B, H, W, 2]`` the straight field's ``D`` in pixels.
      ts, direction, config, loop, penalties: as in ``integrate_svf``.

    Returns:
      ``FlowResult`` as ``integrate_svf``'s: ``phi_{-1} = phi_1^{-1}`` here too.
    """
    chex.assert_rank(d, 4)
    chex.assert_axis_dimension(d, -1, 2)
    _check_direction(direction)
    if direction == "forward":
        return _solve_straight(d, ts, config, loop, penalties, "forward")
    ts_np = _concrete(ts)
    # Forward times 1 - tau, non-decreasing (concrete where ts is, for the unrolled loops).
    if ts_np is not None:
        # Checked before flipping, so that an error names the times as given.
        flipped = 1.0 - check_times(np.atleast_1d(ts_np))[::-1]
    else:
        flipped = 1.0 - jnp.flip(jnp.atleast_1d(jnp.asarray(ts, jnp.float32)))
    res = _solve_straight(d, flipped, config, loop, penalties, "backward")
    inverse = functools.partial(straight_inverse, d=d, padding=config.padding)
    return FlowResult(jax.vmap(inverse)(jnp.flip(res.disp, axis=0)), res.jd, res.og)


def straight_round_trip(
    d: Float[Array, "B H W 2"],
    config: SolverConfig = SolverConfig(field="straight"),
    loop: Loop = DIFFRAX,
    penalties: bool = True,
) -> tuple[FlowResult, FlowResult]:
    """Both solves of a straight field to ``t = ±1`` from one integration (as in training).

    ``phi_{-1} = psi_1`` is ``D`` itself, and the backward penalties are taken on
    ``psi_1 ∘ phi_t`` along the forward trajectory, so one solve gives what
    ``integrate_straight(d, (1.0,), direction=...)`` gives for each direction.

    Args:
      d: ``[B, H, W, 2]`` the straight field's ``D`` in pixels.
      config: solver settings.
      loop: how the steps run.
      penalties: also integrate JD and OG.

    Returns:
      ``(forward, backward)`` ``FlowResult``s, each with ``disp [1, B, H, W, 2]``.
    """
    chex.assert_rank(d, 4)
    chex.assert_axis_dimension(d, -1, 2)
    res = _solve_straight(d, (1.0,), config, loop, penalties, "both")
    forward = FlowResult(res.disp, res.jd[0], res.og[0])
    return forward, FlowResult(d[None], res.jd[1], res.og[1])
