"""Integration of the warping ODE ``d phi_t/dt = V(phi_t)``, ``phi_0 = id`` (paper eq. 1).

``integrate`` is the one solver entry point: it takes a vector field over the displacement
``u_t = phi_t - id`` (see ``jwarp.velocity``), the solver settings of a ``SolverConfig``, the
times to save at and the direction, and returns the displacements at those times plus the
Jacobian-fold (JD) and out-of-grid (OG) penalties integrated over the whole trajectory as extra
ODE state (SPEC §4).

Two loops run the same solvers:

* ``"diffrax"``: ``diffrax.diffeqsolve`` (rolled loop; any solver, adaptive steps, both adjoints,
  outputs at arbitrary ``ts`` by the solver's dense interpolation).
* ``"unrolled"``: a Python loop of explicit Runge--Kutta steps using the same Butcher tableaus,
  for fixed steps and exact discrete gradients (= ``checkpoint``). XLA:CPU differentiates
  convolutions inside a rolled loop very slowly; unrolled, the ``neural`` field's gradient is
  many times faster on CPU (``benchmarks/bench_flow.py``). It steps exactly onto every save time.
* ``"scan"``: the same fixed steps in one ``lax.scan`` (compiled once, whatever the step
  count). Its gradient can keep what diffrax's checkpointed loop recomputes: with
  ``remat_policy = "convs"`` every convolution's output (one network pass fewer per step; only
  activations, concatenations and tile transforms are recomputed), with ``remat = false``
  everything. ``paper_mnist``'s generator step, back to back: 32.0 s with ``"convs"`` at
  4.2 GB peak RSS against the diffrax loop's 36.7 s at 2.3 GB (0.87x); keeping everything was
  no faster and took 7.0 GB (docs/performance.md). Training picks ``"scan"`` with
  ``"convs"`` for wide networks on CPU (``jwarp.training.resolve``).

``"auto"`` chooses ``unrolled`` on CPU for the ``neural`` field's fixed-step, ``checkpoint``-
adjoint solves with concrete ``ts`` and at most ``SolverConfig.max_unrolled_steps`` steps, and
``diffrax`` otherwise (the stationary and straight fields' chained gathers run faster rolled).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from jwarp.models import CONV_OUT
from jwarp.velocity import (
    FIELDS,
    Penalty,
    VectorField,
    displacement_penalties,
    neural_velocity,
    stationary_velocity,
    straight_inverse,
    straight_penalties,
    straight_velocity,
    with_penalties,
)

SOLVERS = ("euler", "heun", "rk4", "tsit5", "dopri5")
ADAPTIVE_SOLVERS = ("tsit5", "dopri5")
ADJOINTS = ("checkpoint", "backsolve")
LOOPS = ("auto", "diffrax", "unrolled", "scan")
REMAT_POLICIES = ("auto", "inputs", "convs")
DIRECTIONS = ("forward", "backward")
# Fields whose network runs once per image, outside the solver loop (``integrate_svf``).
ONCE_FIELDS = ("stationary", "straight")


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
    """How the flow is integrated (SPEC §3).

    Attributes:
      field: ``"neural"``, ``"stationary"`` or ``"straight"`` (used by ``flow``; see
        ``jwarp.velocity``).
      solver: ``"euler"``, ``"heun"``, ``"rk4"``, ``"tsit5"`` or ``"dopri5"``.
      step_size: fixed step, or the initial step when ``adaptive``.
      adaptive: PID step-size control (``tsit5``/``dopri5`` only).
      rtol: relative tolerance (adaptive only).
      atol: absolute tolerance in pixels (adaptive only).
      max_steps: step budget of the diffrax loop when ``adaptive``.
      adjoint: ``"checkpoint"`` (exact discrete gradients) or ``"backsolve"`` (continuous
        adjoint, memory constant in the number of steps).
      loop: ``"auto"``, ``"diffrax"``, ``"unrolled"`` or ``"scan"`` (see the module docstring).
      max_unrolled_steps: ``"auto"`` unrolls at most this many steps (compile time grows with
        them).
      remat: in the unrolled and scan loops, recompute parts of each step in the backward
        pass (``jax.checkpoint``) instead of keeping them; ``remat_policy`` says which.
      remat_policy: what a rematerialised step keeps: ``"inputs"`` (only the step's input: one
        extra network pass per step, memory independent of the network's activations),
        ``"convs"`` (also every convolution's output, named ``CONV_OUT``: no network pass is
        recomputed, memory grows with steps x convolution outputs) or ``"auto"`` (``"inputs"``
        unless ``jwarp.training.resolve`` picks ``"convs"``).
      padding: how the stationary ``v`` is extended outside the frame.
    """

    field: str = "stationary"
    solver: str = "euler"
    step_size: float = 0.05
    adaptive: bool = False
    rtol: float = 1e-3
    atol: float = 1e-3
    max_steps: int = 4096
    adjoint: str = "checkpoint"
    loop: str = "auto"
    max_unrolled_steps: int = 64
    remat: bool = True
    remat_policy: str = "auto"
    padding: str = "border"

    def __post_init__(self):
        for name, allowed in (
            ("field", FIELDS),
            ("solver", SOLVERS),
            ("adjoint", ADJOINTS),
            ("loop", LOOPS),
            ("remat_policy", REMAT_POLICIES),
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
        if self.adaptive and self.loop in ("unrolled", "scan"):
            raise ValueError(f"flow.loop: {self.loop!r} needs fixed steps (adaptive = false)")
        if self.adjoint == "backsolve" and self.loop in ("unrolled", "scan"):
            raise ValueError(
                f"flow.loop: {self.loop!r} gives exact discrete gradients; use "
                "adjoint = 'checkpoint' with it"
            )
        if self.rtol <= 0 or self.atol <= 0 or self.max_steps < 1:
            raise ValueError("flow.rtol/atol/max_steps: expected positive values")

    @property
    def num_steps(self) -> int:
        """Fixed steps from 0 to ±1 (the last one may be shorter)."""
        return math.ceil(1.0 / self.step_size - 1e-9)


# --- Butcher tableaus -----------------------------------------------------------------------


class _Tableau(NamedTuple):
    a: tuple[tuple[float, ...], ...]  # a[i] holds the coefficients of stage i+1 on stages 0..i
    b: tuple[float, ...]
    c: tuple[float, ...]  # c[i] is the time fraction of stage i+1


def _from_diffrax(tab: diffrax.ButcherTableau) -> _Tableau:
    b = tuple(float(x) for x in tab.b_sol)
    # Stages after the last one with a non-zero weight only feed the error estimate.
    used = max(i for i, x in enumerate(b) if x != 0.0) + 1
    a = tuple(tuple(float(x) for x in row) for row in tab.a_lower[: used - 1])
    return _Tableau(a, b[:used], tuple(float(x) for x in tab.c[: used - 1]))


_RK4_TABLEAU = diffrax.ButcherTableau(
    c=np.array([0.5, 0.5, 1.0]),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
)


class RK4(diffrax.AbstractERK):
    """The classical 4th-order Runge--Kutta method (fixed steps only: no error estimate)."""

    tableau = _RK4_TABLEAU
    interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        del terms
        return 4


_DIFFRAX_SOLVERS: dict[str, Callable[[], diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "rk4": RK4,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
}

_TABLEAUS: dict[str, _Tableau] = {
    "euler": _Tableau((), (1.0,), ()),
    "heun": _from_diffrax(diffrax.Heun.tableau),
    "rk4": _from_diffrax(_RK4_TABLEAU),
    "tsit5": _from_diffrax(diffrax.Tsit5.tableau),
    "dopri5": _from_diffrax(diffrax.Dopri5.tableau),
}


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


def _use_unrolled(config: SolverConfig, ts_np: np.ndarray | None) -> bool:
    if config.loop != "auto":
        return config.loop == "unrolled"
    # Measured (bench_flow.py, 2-core CPU): the neural field's gradient is 16x faster unrolled
    # with XLA convs; the stationary field's gathers are ~5x slower unrolled than rolled.
    return (
        jax.default_backend() == "cpu"
        and config.field == "neural"
        and not config.adaptive
        and config.adjoint == "checkpoint"
        and ts_np is not None
        and len(_unrolled_grid(config.step_size, ts_np)) - 1 <= config.max_unrolled_steps
    )


WIDE_NETWORK = 256  # channels; see resolve_loop


def resolve_loop(config: SolverConfig, widest: int) -> SolverConfig:
    """Resolves ``loop = "auto"`` for a ``neural`` field whose network is ``widest`` channels wide.

    A wide network (``>= WIDE_NETWORK`` channels, the authors' U-Net) keeps a rolled loop: 40
    unrolled passes of it compile slowly and XLA:CPU does not bound their memory (it ran out of
    24 GB). Narrow networks are left to ``"auto"``, which unrolls them on CPU.

    Args:
      config: solver settings.
      widest: the network's largest channel count.

    Returns:
      ``config`` with ``loop = "diffrax"`` for wide networks; otherwise unchanged (``"auto"``
      then decides per call, from the number of steps the save times need).
    """
    if config.loop == "auto" and widest >= WIDE_NETWORK:
        return dataclasses.replace(config, loop="diffrax")
    return config


def integrate(
    velocity: VectorField,
    args: Any,
    shape: tuple[int, int, int],
    ts: ArrayLike = (1.0,),
    *,
    direction: str = "forward",
    config: SolverConfig = SolverConfig(),
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
      penalties: also integrate JD and OG (otherwise they are returned as zeros).
      penalty: ``(t, u, args) -> (jd, og)`` integrands, ``[B]`` each (default: JD and OG of
        ``u``), or ``[K, B]`` for ``K`` penalised maps.

    Returns:
      ``FlowResult(disp [T,B,H,W,2], jd [B], og [B])``; ``jd`` and ``og`` are ``[K, B]`` for a
      ``penalty`` of ``K`` maps.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {DIRECTIONS}, got {direction!r}")
    # Read concrete times before any jnp op, which would turn them into tracers under jit.
    ts_np = _concrete(ts)
    if ts_np is not None:
        ts_np = np.atleast_1d(ts_np)
        ts = ts_np.astype(np.float32)
    ts = jnp.atleast_1d(jnp.asarray(ts, jnp.float32))
    chex.assert_rank(ts, 1)
    if ts_np is not None:
        _check_times(ts_np)
    sign = 1.0 if direction == "forward" else -1.0
    b, h, w = shape
    u0 = jnp.zeros((b, h, w, 2), jnp.float32)
    zeros_b = jnp.zeros(jax.eval_shape(penalty, 0.0, u0, args)[0].shape, jnp.float32)
    y0 = (u0, zeros_b, zeros_b)
    if penalties:
        vector_field = with_penalties(velocity, sign, penalty)
    else:
        vector_field = lambda t, y, a: (velocity(t, y[0], a), zeros_b, zeros_b)

    if config.loop == "scan" or _use_unrolled(config, ts_np):
        if ts_np is None:
            raise ValueError(f"ts: the {config.loop} loop needs concrete (non-traced) save times")
        run = _integrate_scan if config.loop == "scan" else _integrate_unrolled
        disp, jd, og = run(vector_field, args, y0, ts_np, sign, config)
    else:
        disp, jd, og = _integrate_diffrax(vector_field, args, y0, ts, ts_np, sign, config)
    chex.assert_shape(disp, (ts.shape[0], b, h, w, 2))
    return FlowResult(disp, jd, og)


def _check_times(ts_np: np.ndarray) -> None:
    """Save times must be non-decreasing and in ``[0, 1]``."""
    if ts_np.min() < 0.0 or ts_np.max() > 1.0 or np.any(np.diff(ts_np) < 0):
        raise ValueError(f"ts: expected non-decreasing times in [0, 1], got {ts_np.tolist()}")


def _remat(step: Callable, config: SolverConfig, static_argnums=()) -> Callable:
    """``step`` under ``jax.checkpoint`` with ``config``'s policy, or as it is (``remat`` off)."""
    if not config.remat:
        return step
    policy = None  # keep only the inputs
    if config.remat_policy == "convs":
        policy = jax.checkpoint_policies.save_only_these_names(CONV_OUT)
    return jax.checkpoint(step, policy=policy, static_argnums=static_argnums)


def _integrate_unrolled(vector_field, args, y0, ts_np, sign, config):
    tab = _TABLEAUS[config.solver]
    grid = _unrolled_grid(config.step_size, ts_np)
    step_fn = _remat(_rk_step, config, static_argnums=(0, 1, 2, 5))
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


def _integrate_scan(vector_field, args, y0, ts_np, sign, config):
    tab = _TABLEAUS[config.solver]
    grid = _unrolled_grid(config.step_size, ts_np)
    times = jnp.asarray(sign * grid[:-1], jnp.float32)
    steps = jnp.asarray(sign * np.diff(grid), jnp.float32)

    def body(y, time_step):
        t, h = time_step
        y = _rk_step(vector_field, tab, t, y, args, h)
        return y, y[0]

    y, disps = jax.lax.scan(_remat(body, config), y0, (times, steps))
    # Row k of ``disps`` is the displacement at grid[k + 1]; only the saved rows are kept.
    disps = jnp.concatenate([y0[0][None], disps])
    return disps[np.asarray(_save_rows(grid, ts_np))], y[1], y[2]


def _integrate_diffrax(vector_field, args, y0, ts, ts_np, sign, config):
    solver = _DIFFRAX_SOLVERS[config.solver]()
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
    penalties: bool = True,
) -> FlowResult:
    """Integrates a field computed once per image: ``du/dt = v(g + u)`` (stationary), or for
    ``config.field = "straight"`` the inverse of the straight paths ``p + t v(p)`` (see
    ``jwarp.velocity``).

    Args:
      v: ``[B, H, W, 2]`` velocity in pixels per unit time, ``(dy, dx)``.
      ts: ``[T]`` save times in ``[0, 1]``.
      direction: ``"forward"`` or ``"backward"``.
      config: solver settings (``config.padding`` extends ``v`` outside the frame).
      penalties: also integrate JD and OG.

    Returns:
      ``FlowResult(disp [T,B,H,W,2], jd [B], og [B])``; ``phi_t = g + disp[k]`` is the map for
      time ``±ts[k]``. For both fields ``phi_{-1} = phi_1^{-1}`` up to interpolation, so a
      backward ``warp(x1, disp[k])`` is the forward frame at ``1 - ts[k]``.
    """
    chex.assert_rank(v, 4)
    chex.assert_axis_dimension(v, -1, 2)
    if config.field == "straight":
        return _integrate_straight(v, ts, direction, config, penalties)
    return integrate(
        stationary_velocity(config.padding),
        v,
        v.shape[:3],
        ts,
        direction=direction,
        config=dataclasses.replace(config, field="stationary"),
        penalties=penalties,
    )


def _solve_straight(d, ts, config, penalties, maps):
    """The straight field's forward solve to ``t = 1``, penalised on ``maps``
    (see ``straight_penalties``)."""
    return integrate(
        straight_velocity(config.padding),
        d,
        d.shape[:3],
        ts,
        config=config,
        penalties=penalties,
        penalty=straight_penalties(maps, config.padding),
    )


def _integrate_straight(d, ts, direction, config, penalties):
    """``integrate_svf`` for ``field = "straight"``: a backward solve is the forward one at
    ``1 - tau``, then ``psi_1`` (``straight_inverse``), penalised on that composed map."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {DIRECTIONS}, got {direction!r}")
    if direction == "forward":
        return _solve_straight(d, ts, config, penalties, "forward")
    ts_np = _concrete(ts)
    # Forward times 1 - tau, non-decreasing (concrete where ts is, for the unrolled loops).
    if ts_np is not None:
        ts_np = np.atleast_1d(ts_np)
        _check_times(ts_np)  # before flipping, so that an error names the times as given
        flipped = 1.0 - ts_np[::-1]
    else:
        flipped = 1.0 - jnp.flip(jnp.atleast_1d(jnp.asarray(ts, jnp.float32)))
    res = _solve_straight(d, flipped, config, penalties, "backward")
    inverse = functools.partial(straight_inverse, d=d, padding=config.padding)
    return FlowResult(jax.vmap(inverse)(jnp.flip(res.disp, axis=0)), res.jd, res.og)


def straight_round_trip(
    d: Float[Array, "B H W 2"],
    config: SolverConfig = SolverConfig(field="straight"),
    penalties: bool = True,
) -> tuple[FlowResult, FlowResult]:
    """Both solves of a straight field to ``t = ±1`` from one integration (as in training).

    ``phi_{-1} = psi_1`` is ``D`` itself, and the backward penalties are taken on
    ``psi_1 ∘ phi_t`` along the forward trajectory, so one solve gives what
    ``integrate_svf(d, (1.0,), direction=...)`` gives for each direction.

    Args:
      d: ``[B, H, W, 2]`` the straight field's ``D`` in pixels.
      config: solver settings.
      penalties: also integrate JD and OG.

    Returns:
      ``(forward, backward)`` ``FlowResult``s, each with ``disp [1, B, H, W, 2]``.
    """
    chex.assert_rank(d, 4)
    chex.assert_axis_dimension(d, -1, 2)
    res = _solve_straight(d, (1.0,), config, penalties, "both")
    forward = FlowResult(res.disp, res.jd[0], res.og[0])
    return forward, FlowResult(d[None], res.jd[1], res.og[1])


def flow(
    apply_fn: Callable[[Any, Array], Float[Array, "B H W 2"]],
    params: Any,
    cond: Float[Array, "B H W C"],
    ts: ArrayLike = (1.0,),
    *,
    direction: str = "forward",
    config: SolverConfig = SolverConfig(),
    penalties: bool = True,
) -> FlowResult:
    """Integrates the learned field of ``config.field`` conditioned on ``cond``.

    Args:
      apply_fn: the velocity network, ``(params, [B, H, W, C_in]) -> [B, H, W, 2]``; its input is
        ``cond`` for ``stationary``/``straight`` and ``concat[cond, u_t / size]`` for ``neural``.
      params: network parameters.
      cond: ``[B, H, W, C]`` conditioning image(s) (``x0``, or ``[x0, x1]`` stacked on channels).
      ts, direction, config, penalties: as in ``integrate``.

    Returns:
      ``FlowResult``.
    """
    chex.assert_rank(cond, 4)
    if config.field in ONCE_FIELDS:
        # The U-Net runs once, outside the solver loop.
        v = apply_fn(params, cond)
        chex.assert_shape(v, (*cond.shape[:3], 2))
        return integrate_svf(v, ts, direction=direction, config=config, penalties=penalties)
    return integrate(
        neural_velocity(apply_fn),
        (params, cond),
        cond.shape[:3],
        ts,
        direction=direction,
        config=config,
        penalties=penalties,
    )
