"""Animations: a trained run, or one fitted pair, turned into frames (docs/method.md §1, §7).

``Animator`` loads a run folder (its ``config.toml`` and a checkpoint) and has pure, jitted
methods that return the frames ``x_t = warp(x, u_t)`` and displacements ``u_t`` at any times
``ts`` in ``[0, 1]``, all from one solve (``SaveAt(ts)``):

* ``"forward"``: ``warp(x0, u_t)``, ``t = ts``: from the start frame towards the target.
* ``"backward"``: the same ODE integrated over ``t: 0 -> -1`` and applied to the end frame
  (``x1`` for ``pair`` models, the forward end ``x1_hat`` otherwise): ``warp(x_end, u_{-t})``
  goes back towards ``x0``.
* ``"boomerang"``: the forward frames, then the same frames in reverse without repeating the
  end frame (``2T - 1`` frames).

Solves run as ``jwarp.execution.plan(config, "animate")`` says: diffrax's rolled loop with the
run's solver and step size (or the same Euler steps as ``jwarp.flow``'s ``"dense"`` loop),
whose steps are uniform whatever the save times (frames are read off the solver's dense
output), so a frame does not depend on which other frames were asked for and the compile time
does not grow with ``T``.

``animate_pair`` does the same for one pair registered by ``jwarp.fit.fit_pair`` (no training
set), by default as a morph that ends exactly on the target (``svf_animation``).
``jwarp.render`` is the whole of ``animate.py`` on top of these.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from jwarp.checkpoint import Checkpoints
from jwarp.choices import DIRECTIONS
from jwarp.config import Config, load_config
from jwarp.execution import plan
from jwarp.field import get_field
from jwarp.fit import FitConfig, fit_pair, resize_field
from jwarp.flow import SolverConfig, animation_loop, check_times, integrate_svf
from jwarp.models import winograd_kernels
from jwarp.objective import conditioning, generator_in_channels
from jwarp.optim import create_states, inference_params
from jwarp.sampler import warp

_EULER = SolverConfig()
_FIT = FitConfig()
TRAIN_HINT = "train one with `python train.py --mode l2 --data faces`"


class Animation(NamedTuple):
    """Frames and the displacements that made them: ``frames[k] = warp(x, disp[k])``.

    Attributes:
      frames: ``[T, B, H, W, C]``.
      disp: ``[T, B, H, W, 2]`` ``(dy, dx)`` in pixels.
    """

    frames: Float[Array, "T B H W C"]
    disp: Float[Array, "T B H W 2"]


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {DIRECTIONS}, got {direction!r}")


def _boomerang(a: Array) -> Array:
    """``a`` then ``a`` reversed, without repeating the last entry: ``2T - 1`` along axis 0."""
    return jnp.concatenate([a, a[-2::-1]])


def _assemble(
    solve: Callable[[Any, str], Array],
    x0: Array,
    end: Callable[[], Array],
    ts: Array,
    direction: str,
) -> Animation:
    """Frames for ``direction`` from ``solve(ts, direction) -> [T, B, H, W, 2]``.

    ``end()`` gives the frame the backward flow starts from.
    """
    if direction == "backward":
        disp = solve(ts, "backward")
        start = end()
    else:
        disp = solve(ts, "forward")
        start = x0
    frames = jax.vmap(lambda u: warp(start, u))(disp)
    if direction == "boomerang":
        frames, disp = _boomerang(frames), _boomerang(disp)
    return Animation(frames, disp)


def _model_solver(config: Config, params: Any, x0: Array, x1: Array | None):
    """``solve(ts, direction) -> [T, B, H, W, 2]`` for the model conditioned on ``x0, x1``."""
    run = plan(config, "animate")
    apply_fn = run.unet(config.model.unet).apply
    cond = conditioning(config, x0, x1)
    # A field computed once per image runs its network here, once for every direction.
    field = get_field(config.flow.field)
    solve = field.solver(apply_fn, params, cond, config.flow, run.loop, penalties=False)
    return lambda t, d: solve(t, d).disp


def animate_model(
    config: Config,
    params: Any,
    x0: Float[Array, "B H W C"],
    x1: Float[Array, "B H W C"] | None,
    ts: Float[Array, " T"],
    direction: str = "forward",
    start: Float[Array, "B H W C"] | None = None,
) -> Animation:
    """The animation of a trained model (pure; ``Animator`` jits it).

    Args:
      config: the run's configuration (``model`` and ``flow`` are used).
      params: the generator's parameters.
      x0: ``[B, H, W, C]`` start frames.
      x1: ``[B, H, W, C]`` end frames for ``pair`` models, else None.
      ts: ``[T]`` non-decreasing times in ``[0, 1]``.
      direction: ``"forward"``, ``"backward"`` or ``"boomerang"``.
      start: the frame the backward flow is applied to; default ``x1`` for ``pair`` models and
        the forward end ``warp(x0, u_1)`` otherwise.

    Returns:
      ``Animation(frames [T', B, H, W, C], disp [T', B, H, W, 2])`` with ``T' = T``, or
      ``2T - 1`` for ``"boomerang"``.
    """
    _check_direction(direction)
    solve = _model_solver(config, params, x0, x1)

    def end():
        if start is not None:
            return start
        if x1 is not None:
            return x1
        return warp(x0, solve(jnp.ones((1,), jnp.float32), "forward")[-1])

    return _assemble(solve, x0, end, jnp.asarray(ts, jnp.float32), direction)


def model_displacements(
    config: Config,
    params: Any,
    x0: Float[Array, "B H W C"],
    x1: Float[Array, "B H W C"] | None,
    ts: Float[Array, " T"],
    direction: str = "forward",
) -> Float[Array, "T B H W 2"]:
    """``animate_model(...).disp`` without computing frames (pure; one solve)."""
    _check_direction(direction)
    solve = _model_solver(config, params, x0, x1)
    disp = solve(jnp.asarray(ts, jnp.float32), "backward" if direction == "backward" else "forward")
    return _boomerang(disp) if direction == "boomerang" else disp


_animate_jit = jax.jit(animate_model, static_argnames=("config", "direction"))
_displacements_jit = jax.jit(model_displacements, static_argnames=("config", "direction"))


def inference_model(config: Config, params: Any) -> tuple[Config, Any]:
    """The configuration and generator variables that ``Animator`` runs.

    Where the animation plan runs Winograd convolutions (on CPU, a wide U-Net: see
    ``jwarp.execution``), their kernel transforms are computed here once
    (``winograd_kernels``) instead of in every pass.

    Args:
      config: the run's configuration.
      params: the generator's variables, ``{"params": ...}``.

    Returns:
      ``(config, variables)``: the same function of the same parameters, up to fp32 rounding.
    """
    run = plan(config, "animate")
    if not run.winograd_cache or params is None:
        return config, params
    unet = config.model.unet
    side = 2 ** len(unet.encoder)  # any size works; a small one traces fast
    x = jnp.zeros((1, side, side, generator_in_channels(config)), jnp.float32)
    kernels = jax.jit(functools.partial(winograd_kernels, run.unet(unet)))(params, x)
    return config, {**params, **kernels}


REFRAMED = ("mnist",)  # data sets whose models reframe digits as MNIST frames them (Animator)


class Animator:
    """A trained generator with jitted animation methods.

    Attributes:
      config: the run's configuration.
      params: generator parameters.
      step: the checkpoint's step (None when built from parameters).
      workdir: the run folder (None when built from parameters).
      reframe: a digit model (trained on MNIST) moves each digit framed as MNIST frames them
        and the motion comes back to the digit as given (``jwarp.reframe``); True for
        ``data.name`` in ``REFRAMED``. Set it to False to animate the digits as they are.
    """

    def __init__(
        self,
        config: Config,
        params: Any,
        *,
        step: int | None = None,
        workdir: str | os.PathLike | None = None,
    ):
        self.config = config
        self.params = params
        self.step = step
        self.workdir = None if workdir is None else Path(workdir)
        self.reframe = config.data.name in REFRAMED
        self._prepared: tuple[Any, Config, Any] | None = None

    def _model(self) -> tuple[Config, Any]:
        """``inference_model(config, params)``, computed once per ``params``."""
        if self._prepared is None or self._prepared[0] is not self.params:
            self._prepared = (self.params, *inference_model(self.config, self.params))
        return self._prepared[1:]

    @classmethod
    def load(cls, workdir: str | os.PathLike, checkpoint: int | None = None) -> Animator:
        """Loads ``workdir/config.toml`` and the generator of a checkpoint.

        Args:
          workdir: a run folder written by ``jwarp.training.train``.
          checkpoint: the step to load; default the latest.

        Raises:
          ValueError: not a run folder, no checkpoint, no checkpoint at ``checkpoint``, or
            (``CheckpointError``) one that is incomplete or does not match ``config.toml``
            (one line).
        """
        workdir = Path(workdir)
        config_path = workdir / "config.toml"
        if not workdir.is_dir():
            raise ValueError(
                f"{workdir}: folder not found (expected a run folder with config.toml and "
                "checkpoints/)"
            )
        if not config_path.is_file():
            raise ValueError(f"{workdir}: not a run folder (no config.toml); {TRAIN_HINT}")
        config = load_config(str(config_path))
        steps = _checkpoint_steps(workdir)
        if not steps:
            raise ValueError(f"{workdir}: no checkpoints yet; {TRAIN_HINT}")
        step = max(steps) if checkpoint is None else checkpoint
        if step not in steps:
            raise ValueError(
                f"{workdir}: no checkpoint at step {step} "
                f"(available: {', '.join(str(s) for s in sorted(steps))})"
            )
        # Shapes only: initialising the networks for real would compile them (seconds).
        states = jax.eval_shape(lambda: create_states(config, jax.random.key(0), 1))
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        states = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), states
        )
        target = {"generator": states.generator, "critic": states.critic}
        checkpoints = Checkpoints(workdir / "checkpoints")
        try:
            restored, _ = checkpoints.restore(step, target)  # CheckpointError: one line
        finally:
            checkpoints.close()
        params = inference_params(restored["generator"])
        return cls(config, params, step=step, workdir=workdir)

    @property
    def needs_target(self) -> bool:
        """True when the model is conditioned on both frames (``condition = "pair"``)."""
        return self.config.model.condition == "pair"

    def _check_inputs(self, x0, x1, start):
        chex.assert_rank(x0, 4)
        channels = self.config.data.channels
        if x0.shape[-1] != channels:
            raise ValueError(
                f"x0: the model takes {channels}-channel images, got {x0.shape[-1]} channels"
            )
        if self.needs_target and x1 is None:
            raise ValueError("x1: this model is conditioned on both frames (pair); pass x1")
        if not self.needs_target and x1 is not None:
            raise ValueError("x1: this model animates from the start frame alone; pass no x1")
        if x1 is not None:
            chex.assert_equal_shape([x0, x1])
        if start is not None:
            chex.assert_equal_shape([x0, start])

    def animate(
        self,
        x0: Float[Array, "B H W C"],
        ts: ArrayLike,
        x1: Float[Array, "B H W C"] | None = None,
        direction: str = "forward",
        start: Float[Array, "B H W C"] | None = None,
    ) -> Animation:
        """Frames and displacements at ``ts``, in one solve; see ``animate_model``."""
        _check_direction(direction)
        ts = check_times(ts)
        self._check_inputs(x0, x1, start)
        config, variables = self._model()
        if self.reframe and x1 is None and start is None:
            from jwarp import reframe

            a = reframe.similarities(x0)
            disp = _displacements_jit(config, variables, reframe.framed(x0, a), None, ts,
                                      direction)
            return Animation(*reframe.carried_back(x0, disp, a))
        return _animate_jit(config, variables, x0, x1, ts, direction, start)

    def frames(
        self,
        x0: Float[Array, "B H W C"],
        ts: ArrayLike,
        x1: Float[Array, "B H W C"] | None = None,
        direction: str = "forward",
        start: Float[Array, "B H W C"] | None = None,
    ) -> Float[Array, "T B H W C"]:
        """``[T, B, H, W, C]`` frames at ``ts`` (``2T - 1`` for ``"boomerang"``)."""
        return self.animate(x0, ts, x1, direction, start).frames

    def displacements(
        self,
        x0: Float[Array, "B H W C"],
        ts: ArrayLike,
        x1: Float[Array, "B H W C"] | None = None,
        direction: str = "forward",
    ) -> Float[Array, "T B H W 2"]:
        """``[T, B, H, W, 2]`` displacements ``u_{±t}`` at ``ts`` (``2T - 1`` for boomerang)."""
        _check_direction(direction)
        ts = check_times(ts)
        self._check_inputs(x0, x1, None)
        if self.reframe and x1 is None:
            return self.animate(x0, ts, None, direction).disp
        config, variables = self._model()
        return _displacements_jit(config, variables, x0, x1, ts, direction)


def _checkpoint_steps(workdir: Path) -> list[int]:
    """Steps saved under ``workdir/checkpoints`` (orbax names each step's folder by its step)."""
    folder = workdir / "checkpoints"
    if not folder.is_dir():
        return []
    return [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]


def find_latest_run(root: str | os.PathLike = "runs") -> Path | None:
    """The run folder under ``root`` whose newest checkpoint is the most recent, or None.

    A run folder holds ``config.toml`` and at least one checkpoint.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    best, best_time = None, -math.inf
    for run in root.iterdir():
        if not (run / "config.toml").is_file():
            continue
        steps = _checkpoint_steps(run)
        if not steps:
            continue
        newest = max((run / "checkpoints" / str(s)).stat().st_mtime for s in steps)
        if newest > best_time:
            best, best_time = run, newest
    return best


# --- one fitted pair ------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("direction", "solver", "morph"))
def svf_animation(
    v: Float[Array, "B H W 2"],
    x0: Float[Array, "B H W C"],
    x1: Float[Array, "B H W C"],
    ts: ArrayLike,
    direction: str = "forward",
    solver: SolverConfig = _EULER,
    morph: bool = False,
) -> Animation:
    """The animation of a given stationary field (jitted).

    Without ``morph`` the frames are ``warp(x0, u_t)`` (``"backward"`` starts from ``x1``).
    With ``morph`` they are ``(1 - t) warp(x0, u_t) + t warp(x1, u_{t-1})``: the source carried
    forward and the target carried backward along the same flow, blended, so the first frame is
    exactly ``x0``, the last exactly ``x1``, and what no warp can make fades in; ``"backward"``
    plays them from ``x1`` to ``x0``.

    Args:
      v: ``[B, H, W, 2]`` velocity, pixels per unit time.
      x0: ``[B, H, W, C]`` start frames.
      x1: ``[B, H, W, C]`` end frames (where ``"backward"`` starts).
      ts: ``[T]`` times in ``[0, 1]``, non-decreasing.
      direction: ``"forward"``, ``"backward"`` or ``"boomerang"``.
      solver: integration settings.
      morph: blend the two warped images instead of warping ``x0`` alone.

    Returns:
      ``Animation`` as in ``animate_model``; with ``morph``, ``disp`` is the forward flow's
      ``u_t`` (the warp of ``x0``) at each frame's time.
    """
    _check_direction(direction)
    chex.assert_equal_shape([x0, x1])
    chex.assert_equal_shape_prefix([v, x0], 3)
    loop = animation_loop(solver)
    solve = lambda t, d: integrate_svf(
        v, t, direction=d, config=solver, loop=loop, penalties=False
    ).disp
    ts = jnp.asarray(ts, jnp.float32)
    if not morph:
        return _assemble(solve, x0, lambda: x1, ts, direction)
    fwd = solve(ts, "forward")  # u_t
    back = solve(1.0 - ts[::-1], "backward")[::-1]  # u_{t-1}: the map of time -(1 - t)
    w = ts.reshape(-1, 1, 1, 1, 1)
    from_x0 = jax.vmap(lambda u: warp(x0, u))(fwd)
    from_x1 = jax.vmap(lambda u: warp(x1, u))(back)
    frames = (1.0 - w) * from_x0 + w * from_x1
    if direction == "backward":
        return Animation(frames[::-1], fwd[::-1])
    if direction == "boomerang":
        return Animation(_boomerang(frames), _boomerang(fwd))
    return Animation(frames, fwd)


@functools.partial(jax.jit, static_argnames=("fit_config", "fit_size"))
def fit_field(
    x0: Float[Array, "B H W C"],
    x1: Float[Array, "B H W C"],
    fit_config: FitConfig = _FIT,
    fit_size: int | None = None,
) -> Float[Array, "B H W 2"]:
    """``fit_pair``, optionally at a lower resolution for speed (jitted).

    Args:
      x0: ``[B, H, W, C]`` start frames.
      x1: ``[B, H, W, C]`` end frames.
      fit_config: registration settings.
      fit_size: when ``max(H, W)`` is larger, fit on copies downsampled (antialiased) so that
        their larger side is ``fit_size``, then resample the field to ``H x W``: the field is
        smooth (its bending energy is penalised), so little is lost, and the fit's cost no
        longer grows with the image.

    Returns:
      ``[B, H, W, 2]`` velocity, pixels per unit time, for ``fit_config.solver``.
    """
    chex.assert_equal_shape([x0, x1])
    b, h, w, c = x0.shape
    if fit_size is None or max(h, w) <= fit_size:
        return fit_pair(x0, x1, fit_config)
    f = fit_size / max(h, w)
    small = (b, max(2, round(h * f)), max(2, round(w * f)), c)
    shrink = lambda x: jax.image.resize(x, small, "linear", antialias=True)
    v = fit_pair(shrink(x0), shrink(x1), fit_config)
    return resize_field(v, h, w)


def animate_pair(
    x0: Float[Array, "B H W C"],
    x1: Float[Array, "B H W C"],
    ts: ArrayLike,
    fit_config: FitConfig = _FIT,
    direction: str = "forward",
    fit_size: int | None = None,
    morph: bool = True,
) -> Animation:
    """Fits a stationary field to each pair (``fit_pair``) and animates it (as a morph that
    ends exactly on ``x1`` unless ``morph=False``).

    Args:
      x0: ``[B, H, W, C]`` start frames.
      x1: ``[B, H, W, C]`` end frames.
      ts: ``[T]`` times in ``[0, 1]``.
      fit_config: registration and integration settings.
      direction: ``"forward"``, ``"backward"`` (from ``x1``) or ``"boomerang"``.
      fit_size: see ``fit_field``.
      morph: blend ``x0`` warped forward with ``x1`` warped backward (see ``svf_animation``).

    Returns:
      ``Animation(frames, disp)`` as in ``svf_animation``.
    """
    _check_direction(direction)
    ts = check_times(ts)
    v = fit_field(x0, x1, fit_config, fit_size)
    return svf_animation(v, x0, x1, ts, direction, fit_config.solver, morph)


__all__ = [
    "DIRECTIONS",
    "TRAIN_HINT",
    "Animation",
    "Animator",
    "animate_model",
    "model_displacements",
    "animate_pair",
    "check_times",
    "find_latest_run",
    "fit_field",
    "inference_model",
    "resize_field",
    "svf_animation",
]
