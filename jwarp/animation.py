"""Animations: a trained run, or one fitted pair, turned into frames and files (SPEC §1, §7).

``Animator`` loads a run folder (its ``config.toml`` and a checkpoint) and has pure, jitted
methods that return the frames ``x_t = warp(x, u_t)`` and displacements ``u_t`` at any times
``ts`` in ``[0, 1]``, all from one solve (``SaveAt(ts)``):

* ``"forward"``: ``warp(x0, u_t)``, ``t = ts``: from the start frame towards the target.
* ``"backward"``: the same ODE integrated over ``t: 0 -> -1`` and applied to the end frame
  (``x1`` for ``pair`` models, the forward end ``x1_hat`` otherwise): ``warp(x_end, u_{-t})``
  goes back towards ``x0``.
* ``"boomerang"``: the forward frames, then the same frames in reverse without repeating the
  end frame (``2T - 1`` frames).

Solves use the rolled diffrax loop with the run's solver and step size whatever
``flow.loop`` says: its steps are uniform whatever the save times (frames are read off the
solver's dense output), so a frame does not depend on which other frames were asked for and
the compile time does not grow with ``T``. (The unrolled loop steps onto every save time; it
exists for training gradients, which animation does not need.)

``animate_pair`` does the same for one pair registered by ``jwarp.fit.fit_pair`` (no training
set), by default as a morph that ends exactly on the target (``svf_animation``), and ``render``
is the whole of ``animate.py``: find a run or fit a pair, read the images, write
the GIFs, PNG frames, contact sheets and grid overlays.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from jwarp.checkpoint import Checkpoints
from jwarp.config import Config, load_config
from jwarp.errors import AnimationError
from jwarp.fit import SIMILARITIES, FitConfig, fit_pair, resize_field
from jwarp.flow import ONCE_FIELDS, WIDE_NETWORK, SolverConfig, flow, integrate_svf
from jwarp.metrics import EXTREME_HIGH, EXTREME_LOW, bending_energy, jacobian_measures
from jwarp.models import UNet, winograd_kernels
from jwarp.sampler import warp
from jwarp.training import conditioning, create_states, generator_in_channels, inference_params

DIRECTIONS = ("forward", "backward", "boomerang")
MAX_FIT_SIZE = 256
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


def animation_solver(config: SolverConfig) -> SolverConfig:
    """``config`` with the rolled diffrax loop (see the module docstring)."""
    return dataclasses.replace(config, loop="diffrax")


def check_times(ts: ArrayLike) -> Any:
    """Validates concrete save times: ``[T]``, ``T >= 1``, non-decreasing, in ``[0, 1]``.

    Traced times (under an outer ``jit``) pass through unchecked.
    """
    try:
        ts_np = np.asarray(ts, np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return ts
    if ts_np.ndim != 1 or ts_np.size == 0:
        raise ValueError(f"ts: expected a non-empty [T] array of times, got shape {ts_np.shape}")
    if not np.all(np.isfinite(ts_np)) or ts_np.min() < 0.0 or ts_np.max() > 1.0:
        raise ValueError(f"ts: expected times in [0, 1], got [{ts_np.min()}, {ts_np.max()}]")
    if np.any(np.diff(ts_np) < 0):
        raise ValueError("ts: expected non-decreasing times")
    return ts_np.astype(np.float32)


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
    solver = animation_solver(config.flow)
    apply_fn = UNet(config.model.unet).apply
    cond = conditioning(config, x0, x1)
    if solver.field in ONCE_FIELDS:
        v = apply_fn(params, cond)  # once per image, for every direction
        return lambda t, d: integrate_svf(v, t, direction=d, config=solver, penalties=False).disp
    return lambda t, d: (
        flow(apply_fn, params, cond, t, direction=d, config=solver, penalties=False).disp
    )


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

    On CPU, a wide U-Net (``>= WIDE_NETWORK`` channels, the authors') with ``conv_impl = "auto"``
    runs its 3x3 stride-1 convolutions as Winograd F(2x2, 3x3), with the kernel transforms
    computed here once (``winograd_kernels``) instead of in every pass: one forward pass of the
    authors' U-Net at batch 1 took 23 ms instead of 34 ms at 64x64 (docs/performance.md).
    Narrow U-Nets were slower that way and, like other backends, are left as they are.

    Args:
      config: the run's configuration.
      params: the generator's variables, ``{"params": ...}``.

    Returns:
      ``(config, variables)``: the same function of the same parameters, up to fp32 rounding.
    """
    unet = config.model.unet
    if (
        jax.default_backend() != "cpu"
        or unet.conv_impl != "auto"
        or unet.widest < WIDE_NETWORK
        or params is None
    ):
        return config, params
    unet = dataclasses.replace(unet, conv_impl="winograd")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, unet=unet))
    side = 2 ** len(unet.encoder)  # any size works; a small one traces fast
    x = jnp.zeros((1, side, side, generator_in_channels(config)), jnp.float32)
    kernels = jax.jit(functools.partial(winograd_kernels, UNet(unet)))(params, x)
    return config, {**params, **kernels}


class Animator:
    """A trained generator with jitted animation methods.

    Attributes:
      config: the run's configuration.
      params: generator parameters.
      step: the checkpoint's step (None when built from parameters).
      workdir: the run folder (None when built from parameters).
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
    solver = animation_solver(solver)
    solve = lambda t, d: integrate_svf(v, t, direction=d, config=solver, penalties=False).disp
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


# --- animate.py -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RenderOptions:
    """What ``animate.py`` was asked for.

    Attributes:
      inputs: start images (paths or glob patterns); empty: test images of the run's data.
      targets: end images: one, or one per input (``pair`` models and pair fitting).
      workdir: run folder; default the latest under ``runs_dir``.
      model: the name of a shipped model (``jwarp.pretrained``) instead of a run.
      checkpoint: checkpoint step; default the latest.
      runs_dir: where to look for runs.
      out: a ``.gif`` path (one animation) or a folder; default ``animations/``.
      t_steps: frames from ``t = 0`` to ``t = 1``.
      fps: frames per second.
      pause: extra seconds on the last frame.
      direction: ``"forward"``, ``"backward"`` or ``"boomerang"``.
      frames_dir: also write PNG frames here.
      sheet: also write a contact sheet with this many frames (0: none).
      grid: draw the deformation grid with this spacing in pixels (0: none; -1: size / 8,
        at least 4).
      scale: integer upscaling of the GIF.
      fit: fit the input/target pair without a model even if a run exists.
      size: pair fitting: image size (default: the input's centre square, at most 256).
      fit_size: pair fitting: fit at most at this size and resample the field.
      fit_steps: pair fitting: steps at the finest pyramid level (``FitConfig.steps``).
      fit_similarity: pair fitting: ``"l2"`` or ``"lncc"`` (``FitConfig.similarity``).
      fit_smoothness: pair fitting: ``FitConfig.smoothness`` (default: its own).
      morph: pair fitting: blend the source warped forward with the target warped backward,
        so the animation ends exactly on the target (``svf_animation``); else warp the source.
      n_test: test images animated when no inputs are given.
      save_field: also write the end frame's displacement ``u`` (``[H, W, 2]`` float32 pixels
        ``(dy, dx)``, pull-back: ``frame(s) = input(s + u(s))``): to this ``.npy`` path for
        one animation, otherwise as ``<name>.npy`` for each into this folder.
    """

    inputs: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    workdir: str | None = None
    model: str | None = None
    checkpoint: int | None = None
    runs_dir: str = "runs"
    out: str | None = None
    t_steps: int = 120
    fps: float = 30.0
    pause: float = 0.0
    direction: str = "forward"
    frames_dir: str | None = None
    sheet: int = 0
    grid: int = 0
    scale: int = 1
    fit: bool = False
    size: int | None = None
    fit_size: int = 64
    fit_steps: int = _FIT.steps
    fit_similarity: str = _FIT.similarity
    fit_smoothness: float | None = None
    morph: bool = True
    n_test: int = 4
    save_field: str | None = None

    def __post_init__(self):
        checks = [
            (self.t_steps >= 2, f"--t-steps: expected at least 2 frames, got {self.t_steps}"),
            (self.fps > 0 and math.isfinite(self.fps), f"--fps: expected > 0, got {self.fps}"),
            (self.pause >= 0, f"--pause: expected >= 0 seconds, got {self.pause}"),
            (self.direction in DIRECTIONS, f"--direction: expected one of {DIRECTIONS}"),
            (self.sheet >= 0, f"--sheet: expected a number of frames >= 1, got {self.sheet}"),
            (
                self.grid in (0, -1) or self.grid >= 2,
                f"--grid: expected spacing >= 2, got {self.grid}",
            ),
            (self.scale >= 1, f"--scale: expected an integer >= 1, got {self.scale}"),
            (self.size is None or self.size >= 8, f"--size: expected >= 8, got {self.size}"),
            (self.fit_size >= 8, f"--fit-size: expected >= 8, got {self.fit_size}"),
            (self.fit_steps >= 1, f"--fit-steps: expected >= 1, got {self.fit_steps}"),
            (self.fit_similarity in SIMILARITIES,
             f"--fit-similarity: expected one of {SIMILARITIES}, got {self.fit_similarity!r}"),
            (self.fit_smoothness is None or self.fit_smoothness >= 0,
             f"--fit-smoothness: expected >= 0, got {self.fit_smoothness}"),
            (self.n_test >= 1, f"n_test: expected >= 1, got {self.n_test}"),
        ]
        for ok, message in checks:
            if not ok:
                raise AnimationError(message)


_GLOB_CHARS = frozenset("*?[")


def expand_inputs(patterns: Sequence[str], flag: str = "--input") -> list[Path]:
    """Paths and glob patterns -> paths (a pattern must match at least one file, and a path
    must be an existing file)."""
    paths: list[Path] = []
    for pattern in patterns:
        if _GLOB_CHARS & set(pattern):
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matches:
                raise AnimationError(f"{flag} {pattern}: no files match")
            paths += [Path(p) for p in matches]
        elif not Path(pattern).is_file():
            what = "a folder, not an image file" if Path(pattern).is_dir() else "file not found"
            raise AnimationError(f"{flag} {pattern}: {what}")
        else:
            paths.append(Path(pattern))
    return paths


def _read(path: Path, size, channels, log, max_size=None) -> np.ndarray:
    from jwarp.media import load_image

    try:
        image, note = load_image(path, size, channels, max_size)
    except ValueError as e:
        raise AnimationError(str(e)) from None
    if note:
        log(f"note: {note}")
    return image


def _pair_targets(inputs: list[Path], targets: list[Path]) -> list[Path]:
    if len(targets) not in (1, len(inputs)):
        raise AnimationError(
            f"--target: give one end image, or one per input ({len(inputs)}), got {len(targets)}"
        )
    return targets * len(inputs) if len(targets) == 1 else targets


def _psnr(a, b) -> float:
    mse = float(np.mean((np.asarray(a) - np.asarray(b)) ** 2))
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


class Rendered(NamedTuple):
    """One animation of ``render``: its output name, frames and the forward end map."""

    name: str
    animation: Animation  # frames [T, H, W, C], disp [T, H, W, 2]
    end_disp: np.ndarray  # [H, W, 2]: u_1 of the input, frame(s) = input(s + u(s))


def _load_animator(opts: RenderOptions, workdir: Path | None, log) -> tuple[Animator, str]:
    """The model to animate with and how to name it: a shipped model or a run folder."""
    if opts.model is not None:
        from jwarp import pretrained

        try:
            animator = pretrained.load(opts.model)
        except ValueError as e:
            raise AnimationError(str(e)) from None
        return animator, f"shipped model {opts.model!r}"
    try:
        animator = Animator.load(workdir, opts.checkpoint)
    except ValueError as e:
        raise AnimationError(str(e)) from None
    return animator, f"{workdir} at step {animator.step}"


def _model_animations(opts: RenderOptions, workdir: Path | None, ts, log) -> list[Rendered]:
    animator, label = _load_animator(opts, workdir, log)
    cfg = animator.config
    log(
        f"model: {label} ({cfg.flow.field} field, condition = {cfg.model.condition}, "
        f"{cfg.data.image_size}px, {cfg.data.channels} ch)"
    )
    inputs = expand_inputs(opts.inputs)
    targets = expand_inputs(opts.targets, "--target")
    source = f"the model {opts.model!r}" if opts.model else f"the model in {workdir}"
    if targets and not animator.needs_target:
        raise AnimationError(
            f"--target: {source} animates from the start image alone "
            "(model.condition = source); drop --target, or add --fit to fit the pair instead"
        )
    size, channels = cfg.data.image_size, cfg.data.channels
    if inputs:
        if animator.needs_target and not targets:
            raise AnimationError(
                f"--target: {source} needs an end image for each input (model.condition = pair)"
            )
        x0 = np.stack([_read(p, size, channels, log) for p in inputs])
        x1 = None
        if animator.needs_target:
            x1 = np.stack([_read(p, size, channels, log) for p in _pair_targets(inputs, targets)])
        names = [p.stem for p in inputs]
    elif opts.model is not None:
        raise AnimationError(f"--model {opts.model}: give the images to animate with --input")
    else:
        if targets:
            raise AnimationError("--target needs --input")
        from jwarp.data import load_dataset

        try:
            x0, x1, _ = load_dataset(cfg.data, "test", cfg.train.seed)
        except (OSError, ValueError) as e:
            raise AnimationError(f"test images of {workdir}: {e}") from None
        n = min(opts.n_test, len(x0), len(x1))
        x0, x1 = x0[:n], (x1[:n] if animator.needs_target else None)
        names = [f"{workdir.name}_test{i}" for i in range(n)]
    t0 = time.perf_counter()
    x0, x1 = jnp.asarray(x0), None if x1 is None else jnp.asarray(x1)
    anim = jax.device_get(animator.animate(x0, ts, x1, opts.direction))
    if opts.direction == "backward":  # the saved field is always the forward end map
        end = animator.displacements(x0, np.ones(1, np.float32), x1)[-1]
    else:
        end = anim.disp[len(ts) - 1]
    end = np.asarray(end)
    log(f"{len(names)} x {len(anim.frames)} frames in {time.perf_counter() - t0:.1f} s")
    return [Rendered(n, Animation(anim.frames[:, i], anim.disp[:, i]), end[i])
            for i, n in enumerate(names)]


def _fit_config(opts: RenderOptions) -> FitConfig:
    smoothness = {} if opts.fit_smoothness is None else {"smoothness": opts.fit_smoothness}
    return FitConfig(steps=opts.fit_steps, similarity=opts.fit_similarity, **smoothness)


@jax.jit
def _end_report(x0: Array, end: Array, disp: Array) -> tuple[Array, dict[str, Array]]:
    """``warp(x0, end)``, ``metrics.jacobian_measures`` of the frames ``disp [T, H, W, 2]``
    and the bending energy of the forward end map ``end`` (whatever the direction), in one
    compile (op by op they cost seconds of small compiles)."""
    measures = {k: v[0] for k, v in jacobian_measures(disp[:, None]).items()}
    measures["bending"] = bending_energy(end[None])[0]
    return warp(x0[None], end[None])[0], measures


def _describe_warp(m: dict[str, float]) -> str:
    """One line of ``metrics.naturalness`` (of one image)."""
    return (
        f"smallest det J {m['min_det']:.2f}, folded {100 * m['fold_frac']:.2f} %, "
        f"extreme (J < {EXTREME_LOW} or > {EXTREME_HIGH:g}) {100 * m['extreme_frac']:.2f} %, "
        f"bending {m['bending']:.2g} px^-2"
    )


def _fit_animations(opts: RenderOptions, ts, log) -> list[Rendered]:
    inputs = expand_inputs(opts.inputs)
    targets = expand_inputs(opts.targets, "--target")
    if not inputs or not targets:
        raise AnimationError("pair fitting needs --input a.png and --target b.png")
    fit_config = _fit_config(opts)
    kinds = {1: "grey", 3: "colour (RGB)", 4: "transparent (RGBA)"}
    compiled: dict[Any, Any] = {}  # one compile per image shape
    out = []
    for source, target in zip(inputs, _pair_targets(inputs, targets)):
        # The input's own centre square (at most MAX_FIT_SIZE) unless --size says otherwise.
        x0 = _read(source, opts.size, None, log, MAX_FIT_SIZE)
        size = x0.shape[0]
        x1 = _read(target, size, None, log)
        if (x0.shape[-1] == 4) != (x1.shape[-1] == 4):
            # A warp moves transparency around but cannot create or remove it.
            raise AnimationError(
                f"mismatched channels: {source} is {kinds[x0.shape[-1]]} but {target} is "
                f"{kinds[x1.shape[-1]]}; give both with transparency or both without"
            )
        if x0.shape[-1] != x1.shape[-1]:  # grey and colour: both in colour
            x0, x1 = _read(source, size, 3, log), _read(target, size, 3, log)
        at = min(size, opts.fit_size)
        log(
            f"fitting {source} -> {target} at {at}x{at} ({fit_config.similarity}, "
            f"{fit_config.levels} levels, {fit_config.steps} steps at the finest), "
            f"animating at {size}x{size}{' as a morph' if opts.morph else ''} ..."
        )
        xs0, xs1 = jnp.asarray(x0[None]), jnp.asarray(x1[None])
        t0 = time.perf_counter()
        if x0.shape not in compiled:  # compiled ahead, so that the fit's own time is known
            compiled[x0.shape] = fit_field.lower(xs0, xs1, fit_config, at).compile()
        t1 = time.perf_counter()
        v = jax.block_until_ready(compiled[x0.shape](xs0, xs1))
        t2 = time.perf_counter()
        anim = svf_animation(v, xs0, xs1, ts, opts.direction, fit_config.solver, opts.morph)
        anim = Animation(*(a[:, 0] for a in jax.device_get(anim)))
        # The forward end map u_1 (what --save-field writes and the measures describe).
        if opts.direction == "backward" and not opts.morph:
            end = svf_animation(v, xs0, xs1, np.ones(1, np.float32), "forward",
                                fit_config.solver).disp[-1, 0]
        else:
            end = anim.disp[0 if opts.direction == "backward" else len(ts) - 1]
        end = np.asarray(end)
        warped, measures = jax.device_get(_end_report(xs0[0], end, anim.disp))
        fit_took = f"{t2 - t1:.1f} s" + (f" (+{t1 - t0:.1f} s compiling)" if t1 - t0 > 0.05 else "")
        log(
            f"fitted in {fit_took}: PSNR to the target {_psnr(x0, x1):.1f} dB without motion, "
            f"{_psnr(warped, x1):.1f} dB warped; {_describe_warp(measures)}"
        )
        out.append(Rendered(source.stem, anim, end))
    return out


def _gif_paths(names: list[str], out: str | None, direction: str) -> list[Path]:
    if out is not None and out.lower().endswith(".gif"):
        if len(names) != 1:
            raise AnimationError(
                f"--out {out}: names one file, but there are {len(names)} animations; give a folder"
            )
        return [Path(out)]
    folder = Path(out or "animations")
    suffix = "" if direction == "forward" else f"_{direction}"
    return [folder / f"{name}{suffix}.gif" for name in _unique_names(names)]


def _check_folder(flag: str, value: str, folder: Path) -> None:
    """``folder`` exists as a folder or can be created (no file in the way)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise AnimationError(f"{flag} {value}: {existing} is a file; expected a folder there")


def render(opts: RenderOptions, log: Callable[[str], None] = print) -> list[Path]:
    """Everything ``animate.py`` does: animate, then write GIFs and the extras asked for.

    A shipped model (``opts.model``) or a run (``opts.workdir``, or the latest under
    ``opts.runs_dir``) animates ``opts.inputs`` (or a run's test images); with ``opts.fit``,
    or with an input and a target and no run, a stationary field is fitted to each pair
    instead.

    Returns:
      The GIFs written.

    Raises:
      AnimationError: one line saying what is wrong (no run, unreadable image, ...).
    """
    # Missing inputs and impossible output paths fail now, before a model is loaded or a
    # pair fitted.
    expand_inputs(opts.inputs)
    expand_inputs(opts.targets, "--target")
    if opts.out is not None:
        out = Path(opts.out)
        _check_folder("--out", opts.out, out.parent if out.suffix.lower() == ".gif" else out)
    if opts.frames_dir is not None:
        _check_folder("--frames-dir", opts.frames_dir, Path(opts.frames_dir))
    if opts.save_field is not None:
        field = Path(opts.save_field)
        is_file = field.suffix.lower() == ".npy"
        _check_folder("--save-field", opts.save_field, field.parent if is_file else field)
    if opts.model is not None and (opts.workdir is not None or opts.fit):
        raise AnimationError(f"--model {opts.model}: give either --model, --workdir or --fit")
    ts = np.linspace(0.0, 1.0, opts.t_steps, dtype=np.float32)
    workdir = None if opts.workdir is None else Path(opts.workdir)
    if opts.fit:
        animations = _fit_animations(opts, ts, log)
    elif opts.model is not None:
        animations = _model_animations(opts, None, ts, log)
    else:
        if workdir is None:
            workdir = find_latest_run(opts.runs_dir)
        if workdir is None and opts.inputs and opts.targets:
            log(f"no trained run under {opts.runs_dir}/: fitting the pair instead")
            animations = _fit_animations(opts, ts, log)
        elif workdir is None:
            raise AnimationError(
                f"no trained run found under {opts.runs_dir}/ (a folder with config.toml and "
                f"checkpoints/); {TRAIN_HINT}, or pass --workdir RUN, or fit one pair with "
                "--input a.png --target b.png"
            )
        else:
            animations = _model_animations(opts, workdir, ts, log)

    names = [a.name for a in animations]
    gif_paths = _gif_paths(names, opts.out, opts.direction)
    field_paths = _field_paths(names, opts.save_field)
    try:
        for rendered, gif, field in zip(animations, gif_paths, field_paths):
            _write_outputs(opts, rendered, gif, field, len(animations), log)
    except OSError as e:
        # Files are written via temporary names beside them: name the folder.
        where = Path(e.filename).parent if e.filename else gif_paths[0].parent
        raise AnimationError(f"cannot write to {where}/ ({e.strerror or e})") from None
    return gif_paths


def _field_paths(names: list[str], save_field: str | None) -> list[Path | None]:
    """Where ``--save-field`` puts each animation's end map (None: not asked for)."""
    if save_field is None:
        return [None] * len(names)
    if save_field.lower().endswith(".npy"):
        if len(names) != 1:
            raise AnimationError(
                f"--save-field {save_field}: names one file, but there are {len(names)} "
                "animations; give a folder"
            )
        return [Path(save_field)]
    return [Path(save_field) / f"{name}.npy" for name in _unique_names(names)]


def _write_outputs(
    opts: RenderOptions, rendered: Rendered, gif: Path, field: Path | None, count: int, log
) -> None:
    """The GIF and the extras asked for, for one animation."""
    import io

    from jwarp import media
    from jwarp.files import atomic_write

    anim = rendered.animation
    frames = np.asarray(anim.frames)
    if opts.grid:
        spacing = opts.grid if opts.grid > 0 else max(4, min(frames.shape[1:3]) // 8)
        frames = media.draw_grid(frames, np.asarray(anim.disp), spacing)
    media.write_gif(gif, frames, opts.fps, opts.scale, pause=opts.pause)
    written = [str(gif)]
    if opts.frames_dir:
        folder = Path(opts.frames_dir)
        folder = folder if count == 1 else folder / gif.stem
        media.write_frames(folder, frames)
        written.append(f"{len(frames)} PNG frames in {folder}")
    if opts.sheet:
        sheet = gif.with_name(f"{gif.stem}_sheet.png")
        media.write_png(sheet, media.contact_sheet(frames, opts.sheet))
        written.append(str(sheet))
    if field is not None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(rendered.end_disp, np.float32))
        atomic_write(field, buffer.getvalue())
        written.append(f"{field} (end map u, [H, W, 2] pixels (dy, dx))")
    log(f"wrote {', '.join(written)}")


__all__ = [
    "DIRECTIONS",
    "Animation",
    "AnimationError",
    "Animator",
    "RenderOptions",
    "Rendered",
    "animate_model",
    "model_displacements",
    "animate_pair",
    "animation_solver",
    "check_times",
    "expand_inputs",
    "find_latest_run",
    "fit_field",
    "inference_model",
    "render",
    "resize_field",
    "svf_animation",
]
