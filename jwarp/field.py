"""The three velocity fields as objects: what their network sees, how they solve, their round trip.

A ``Field`` turns a network (``apply_fn, params``) and a conditioning image into flows
(``jwarp.flow.FlowResult``); ``get_field(config.field)`` picks one by its ``[flow]`` name.
Code outside this module asks the field object instead of comparing its name:

* ``"neural"``: the paper's ``du/dt = f_theta(concat[c, u_t])``, a network pass at every solver
  stage (``network_in_loop``); the network also sees ``u_t`` (2 more input channels).
* ``"stationary"``: ``v = f_theta(c)`` once per image, then ``du/dt = v(g + u_t)``.
* ``"straight"``: ``D = f_theta(c)`` once per image, every point on a straight line; one solve
  gives both directions of the round trip.

See ``jwarp.velocity`` for the three vector fields.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import chex
from jaxtyping import Array, ArrayLike, Float

from jwarp.choices import FIELDS as FIELD_NAMES
from jwarp.flow import (
    DIFFRAX,
    FlowResult,
    Loop,
    SolverConfig,
    integrate,
    integrate_straight,
    integrate_svf,
    straight_round_trip,
)
from jwarp.velocity import neural_velocity

ApplyFn = Callable[[Any, Array], Float[Array, "B H W 2"]]
# ``solve(ts, direction) -> FlowResult`` for one network and conditioning image.
Solve = Callable[[ArrayLike, str], FlowResult]
_SOLVER = SolverConfig()


class Field(abc.ABC):
    """One parameterisation of the velocity: stateless, one instance per name."""

    name: ClassVar[str]
    # The network runs inside the solver loop, at every stage (what execution choices hinge on).
    network_in_loop: ClassVar[bool]

    def network_channels(self, cond_channels: int) -> int:
        """The network's input channels for a conditioning image of ``cond_channels``."""
        return cond_channels

    @abc.abstractmethod
    def solver(
        self,
        apply_fn: ApplyFn,
        params: Any,
        cond: Float[Array, "B H W C"],
        config: SolverConfig,
        loop: Loop = DIFFRAX,
        penalties: bool = True,
    ) -> Solve:
        """``solve(ts, direction)`` for the network conditioned on ``cond``; whatever runs once
        per image (a network pass) runs here, once for every later solve."""

    def solve(
        self,
        apply_fn: ApplyFn,
        params: Any,
        cond: Float[Array, "B H W C"],
        ts: ArrayLike = (1.0,),
        *,
        direction: str = "forward",
        config: SolverConfig = _SOLVER,
        loop: Loop = DIFFRAX,
        penalties: bool = True,
    ) -> FlowResult:
        """The flow at ``ts`` (see ``jwarp.flow.integrate``)."""
        chex.assert_rank(cond, 4)
        return self.solver(apply_fn, params, cond, config, loop, penalties)(ts, direction)

    def round_trip(
        self,
        apply_fn: ApplyFn,
        params: Any,
        cond: Float[Array, "B H W C"],
        config: SolverConfig,
        loop: Loop = DIFFRAX,
        penalties: bool = True,
    ) -> tuple[FlowResult, FlowResult]:
        """Both solves to ``t = ±1`` (as training needs them): ``(forward, backward)``, each
        with ``disp [1, B, H, W, 2]``."""
        solve = self.solver(apply_fn, params, cond, config, loop, penalties)
        return solve((1.0,), "forward"), solve((1.0,), "backward")


class NeuralField(Field):
    """The paper's field: ``du/dt = apply_fn(params, concat[cond, u_t / size])``."""

    name = "neural"
    network_in_loop = True

    def network_channels(self, cond_channels: int) -> int:
        return cond_channels + 2  # u_t / size

    def solver(self, apply_fn, params, cond, config, loop=DIFFRAX, penalties=True) -> Solve:
        def solve(ts, direction):
            return integrate(
                neural_velocity(apply_fn),
                (params, cond),
                cond.shape[:3],
                ts,
                direction=direction,
                config=config,
                loop=loop,
                penalties=penalties,
            )

        return solve


class OnceField(Field):
    """A field whose velocity the network computes once per image, outside the solver loop."""

    network_in_loop = False

    @abc.abstractmethod
    def from_velocity(
        self, v: Float[Array, "B H W 2"], ts: ArrayLike = (1.0,), **kw
    ) -> FlowResult:
        """The flow of a computed velocity ``v`` (``[B, H, W, 2]`` pixels per unit time);
        ``kw``: ``direction``, ``config``, ``loop``, ``penalties`` as in ``Field.solve``."""

    def solver(self, apply_fn, params, cond, config, loop=DIFFRAX, penalties=True) -> Solve:
        v = apply_fn(params, cond)
        chex.assert_shape(v, (*cond.shape[:3], 2))

        def solve(ts, direction):
            return self.from_velocity(
                v, ts, direction=direction, config=config, loop=loop, penalties=penalties
            )

        return solve


class StationaryField(OnceField):
    """``du/dt = v(g + u_t)`` with ``v = apply_fn(params, cond)`` (``integrate_svf``)."""

    name = "stationary"

    def from_velocity(self, v, ts=(1.0,), **kwargs) -> FlowResult:
        return integrate_svf(v, ts, **kwargs)


class StraightField(OnceField):
    """Straight paths ``p + t D(p)`` with ``D = apply_fn(params, cond)``
    (``integrate_straight``)."""

    name = "straight"

    def from_velocity(self, v, ts=(1.0,), **kwargs) -> FlowResult:
        return integrate_straight(v, ts, **kwargs)

    def round_trip(self, apply_fn, params, cond, config, loop=DIFFRAX, penalties=True):
        # One network pass and one solve give both directions.
        return straight_round_trip(apply_fn(params, cond), config, loop, penalties)


FIELDS: dict[str, Field] = {f.name: f for f in (NeuralField(), StationaryField(), StraightField())}
assert tuple(FIELDS) == FIELD_NAMES


def get_field(name: str) -> Field:
    """The field named ``name`` (``flow.field``)."""
    if name not in FIELDS:
        raise ValueError(f"flow.field: expected one of {FIELD_NAMES}, got {name!r}")
    return FIELDS[name]


def flow(
    apply_fn: ApplyFn, params: Any, cond: Float[Array, "B H W C"], ts: ArrayLike = (1.0,), **kw
) -> FlowResult:
    """Integrates the learned field of ``config.field`` conditioned on ``cond``:
    ``get_field(config.field).solve(apply_fn, params, cond, ts, **kw)``.

    Args:
      apply_fn: the velocity network, ``(params, [B, H, W, C_in]) -> [B, H, W, 2]``; its input is
        ``cond`` for ``stationary``/``straight`` and ``concat[cond, u_t / size]`` for ``neural``.
      params: network parameters.
      cond: ``[B, H, W, C]`` conditioning image(s) (``x0``, or ``[x0, x1]`` stacked on channels).
      ts: ``[T]`` save times in ``[0, 1]``.
      kw: ``direction``, ``config``, ``loop``, ``penalties`` as in ``jwarp.flow.integrate``.

    Returns:
      ``FlowResult``.
    """
    return get_field(kw.get("config", _SOLVER).field).solve(apply_fn, params, cond, ts, **kw)
