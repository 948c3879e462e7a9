"""Training (paper Algorithm 1): L2 mode on pairs, WGAN-GP / LSGAN mode on unpaired sets.

Generator loss, both modes (SPEC §5)::

    L_fit + w_jd JD + w_og OG
          + w_rec (||warp(x1_hat, u_{-1}) - x0||^2 + w_jd JD_back + w_og OG_back)
          + w_area area_excess(u_1) + w_bend bending_energy(u_1)

with squared errors summed over pixels and averaged over the batch; ``L_fit`` is the L2
endpoint error (``l2``) or ``-mean D(x1_hat)`` (``gan``; ``lsgan``: ``½ mean (D(x1_hat) - 1)^2``).

``generator_step`` and ``critic_step`` are pure and jitted once (``make_step_fns``), data
parallel over a device mesh (``jwarp.parallel``: states replicated, batches split along axis 0);
``train`` is the host loop around them: data, run folder, checkpoints, metrics, samples,
progress. In a multi-process run every process runs the loop; only process 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from jwarp import data as data_lib
from jwarp import parallel
from jwarp.checkpoint import Checkpoints
from jwarp.config import Config, load_config, save_config
from jwarp.errors import RunFolderError, TrainingError
from jwarp.files import atomic_write, is_remote, run_path
from jwarp.flow import flow, integrate_svf, resolve_loop, straight_round_trip
from jwarp.metrics import EXTREME_HIGH, EXTREME_LOW, bending_energy
from jwarp.models import Critic, UNet
from jwarp.penalties import area_excess, gradient_penalty, jacobian_det
from jwarp.sampler import warp

Batch = dict[str, jax.Array]  # {"x0": [B, H, W, C], "x1": [B, H, W, C]}


# --- models and optimisers ------------------------------------------------------------------


def generator_in_channels(config: Config) -> int:
    """Channels the U-Net sees: the conditioning image(s), plus ``u_t`` for ``neural``."""
    c = config.data.channels * (2 if config.model.condition == "pair" else 1)
    return c + (2 if config.flow.field == "neural" else 0)


def conditioning(config: Config, x0: jax.Array, x1: jax.Array) -> jax.Array:
    """``x0`` (``source``) or ``[x0, x1]`` stacked on channels (``pair``)."""
    if config.model.condition == "pair":
        return jnp.concatenate([x0, x1], axis=-1)
    return x0


def make_optimizer(
    lr: float, config: Config, steps_per_epoch: int, updates_per_iteration: int = 1
) -> optax.GradientTransformation:
    """Adam with torch-style L2 weight decay and a staircase learning-rate decay.

    ``weight_decay * params`` is added to the gradient before Adam (as PyTorch's
    ``Adam(weight_decay=...)``, not AdamW); the rate is multiplied by ``decay_rate`` every
    ``decay_every`` epochs; optional global-norm clipping comes first.

    An epoch is ``steps_per_epoch`` training iterations, in each of which this optimizer
    makes ``updates_per_iteration`` updates (the critic's: ``n_critic``). Both networks' rates
    therefore decay together, as the authors' two schedulers, which step once per epoch.
    """
    opt = config.optim
    schedule = optax.exponential_decay(
        lr,
        transition_steps=max(1, opt.decay_every * steps_per_epoch * updates_per_iteration),
        decay_rate=opt.decay_rate,
        staircase=True,
    )
    parts = []
    if opt.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(opt.clip_norm))
    if opt.weight_decay > 0:
        parts.append(optax.add_decayed_weights(opt.weight_decay))
    parts += [optax.scale_by_adam(b1=opt.b1, b2=opt.b2), optax.scale_by_learning_rate(schedule)]
    return optax.chain(*parts)


class EmaState(NamedTuple):
    """State of ``params_ema``: the number of updates and the averaged parameters."""

    count: jax.Array
    ema: Any


def params_ema(decay: float) -> optax.GradientTransformation:
    """Keeps an exponential moving average of the parameters *after* each update.

    Goes last in an optimizer chain and passes the updates through unchanged. The average is
    bias-corrected as Adam's moments are (``(1 - decay) sum_k decay^(n-k) p_k / (1 - decay^n)``
    after ``n`` updates), kept in that form by ``ema += (p - ema) (1 - decay) / (1 - decay^n)``,
    so it never leans on the initialisation; read it with ``inference_params``.
    """

    def init(params):
        # A copy: the average must not share buffers with the (donated) parameters.
        return EmaState(jnp.zeros((), jnp.int32), jax.tree.map(lambda p: jnp.array(p), params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("params_ema needs the parameters: call tx.update(g, s, params)")
        count = state.count + 1
        weight = (1.0 - decay) / (1.0 - decay ** count.astype(jnp.float32))
        new = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: e + weight * (p - e), state.ema, new)
        return updates, EmaState(count, ema)

    return optax.GradientTransformation(init, update)


def inference_params(state: train_state.TrainState) -> Any:
    """The parameters a generator state animates with: its ``params_ema`` average when its
    optimizer keeps one (``optim.ema_decay > 0``), else its parameters."""
    opt_state = state.opt_state
    if isinstance(opt_state, tuple) and opt_state and isinstance(opt_state[-1], EmaState):
        return opt_state[-1].ema
    return state.params


class States(NamedTuple):
    generator: train_state.TrainState
    critic: train_state.TrainState | None


def create_states(
    config: Config, key: jax.Array, steps_per_epoch: int, mesh: Mesh | None = None
) -> States:
    """Fresh generator (and, in GAN mode, critic) train states, replicated over ``mesh``.

    ``mesh`` defaults to all devices (``parallel.data_mesh()``), where ``make_step_fns``'s steps
    expect their states: placed anywhere else, the first step would trace twice.
    """
    size, channels = config.data.image_size, config.data.channels
    k_gen, k_critic = jax.random.split(key)
    unet = UNet(resolve(config).model.unet)
    x = jnp.zeros((1, size, size, generator_in_channels(config)), jnp.float32)
    gen_tx = make_optimizer(config.optim.lr, config, steps_per_epoch)
    if config.optim.ema_decay > 0:
        gen_tx = optax.chain(gen_tx, params_ema(config.optim.ema_decay))
    gen = train_state.TrainState.create(
        apply_fn=unet.apply, params=jax.jit(unet.init)(k_gen, x), tx=gen_tx
    )
    critic = None
    if config.loss.mode == "gan":
        model = Critic(config.model.critic)
        x = jnp.zeros((1, size, size, channels), jnp.float32)
        critic = train_state.TrainState.create(
            apply_fn=model.apply,
            params=jax.jit(model.init)(k_critic, x),
            tx=make_optimizer(
                config.optim.critic_lr, config, steps_per_epoch, config.loss.n_critic
            ),
        )
    # An int32 array, not TrainState's Python 0: otherwise the first step is traced with a
    # weakly typed int and every run compiles its step functions twice.
    # Separate buffers: the step functions donate their state.
    gen = gen.replace(step=jnp.zeros((), jnp.int32))
    if critic is not None:
        critic = critic.replace(step=jnp.zeros((), jnp.int32))
    mesh = parallel.data_mesh() if mesh is None else mesh
    return jax.device_put(States(gen, critic), parallel.replicated(mesh))


def init_states(
    config: Config, seed: int, steps_per_epoch: int, mesh: Mesh, *, shapes_only: bool = False
) -> tuple[States, jax.Array]:
    """Fresh states and the run's base noise key, replicated over ``mesh``.

    One jit makes both on the devices, so no process copies parameters to another and every
    process of a multi-host run holds the same values. ``seed`` gives
    ``init_key, base_key = split(key(seed))``; the states come from ``init_key``. With
    ``shapes_only`` the states are ``jax.ShapeDtypeStruct`` leaves (replicated over ``mesh``),
    a target to restore a checkpoint into without compiling the networks' initialisation; the
    key is real.
    """
    repl = parallel.replicated(mesh)
    keys = lambda: jax.random.split(jax.random.key(seed))  # (init_key, base_key)

    def init():
        init_key, base_key = keys()
        return create_states(config, init_key, steps_per_epoch, mesh), base_key

    if not shapes_only:
        return jax.jit(init, out_shardings=repl)()
    states = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl), jax.eval_shape(init)[0]
    )
    return states, jax.jit(lambda: keys()[1], out_shardings=repl)()


# --- pure losses and steps ------------------------------------------------------------------


def _sq_err(a: jax.Array, b: jax.Array) -> jax.Array:
    """Squared error summed over pixels, averaged over the batch."""
    return jnp.mean(jnp.sum((a - b) ** 2, axis=(1, 2, 3)))


def generate(config: Config, apply_fn: Callable, params: Any, batch: Batch, penalties: bool):
    """Forward and backward solves from one set of parameters.

    Returns:
      ``(x1_hat [B,H,W,C], fwd FlowResult, bwd FlowResult)``.
    """
    x0, x1 = batch["x0"], batch["x1"]
    cond = conditioning(config, x0, x1)
    if config.flow.field == "straight":
        # One U-Net pass and one solve give both directions.
        fwd, bwd = straight_round_trip(apply_fn(params, cond), config.flow, penalties)
    elif config.flow.field == "stationary":
        # One U-Net pass gives v for both directions.
        v = apply_fn(params, cond)
        fwd = integrate_svf(v, (1.0,), config=config.flow, penalties=penalties)
        bwd = integrate_svf(
            v, (1.0,), direction="backward", config=config.flow, penalties=penalties
        )
    else:
        fwd = flow(apply_fn, params, cond, (1.0,), config=config.flow, penalties=penalties)
        bwd = flow(
            apply_fn,
            params,
            cond,
            (1.0,),
            direction="backward",
            config=config.flow,
            penalties=penalties,
        )
    return warp(x0, fwd.disp[-1]), fwd, bwd


def _generator_parts(params, batch: Batch, config: Config, apply_fn):
    """The solves of a generator step: ``(x1_hat, rest, metrics)``.

    ``rest`` is every term of the generator loss but ``L_fit``: the penalties of both
    directions and the weighted reconstruction term.
    """
    loss_cfg = config.loss
    x1_hat, fwd, bwd = generate(config, apply_fn, params, batch, penalties=True)
    rec = _sq_err(warp(x1_hat, bwd.disp[-1]), batch["x0"])
    jd, og, jd_b, og_b = (jnp.mean(p) for p in (fwd.jd, fwd.og, bwd.jd, bwd.og))
    rest = (
        loss_cfg.w_jd * jd
        + loss_cfg.w_og * og
        + loss_cfg.w_rec * (rec + loss_cfg.w_jd * jd_b + loss_cfg.w_og * og_b)
    )
    jdet = jacobian_det(fwd.disp[-1])
    extra = {}
    if loss_cfg.w_area > 0:
        extra["area"] = jnp.mean(area_excess(fwd.disp[-1], loss_cfg.area_band))
        rest = rest + loss_cfg.w_area * extra["area"]
    extra["bend"] = jnp.mean(bending_energy(fwd.disp[-1]))  # logged even when not penalised
    if loss_cfg.w_bend > 0:
        rest = rest + loss_cfg.w_bend * extra["bend"]
    metrics = {
        "endpoint_sq": _sq_err(x1_hat, batch["x1"]),
        "rec_sq": rec,
        "jd": jd,
        "og": og,
        "jd_back": jd_b,
        "og_back": og_b,
        **extra,
        "neg_jac_frac": jnp.mean(jdet <= 0),
        "extreme_frac": jnp.mean((jdet < EXTREME_LOW) | (jdet > EXTREME_HIGH)),
        "min_det": jnp.min(jdet),
    }
    return x1_hat, rest, metrics


def _adversarial_fit(config: Config, critic_fn, critic_params, x1_hat):
    """``L_fit`` of GAN mode: ``-mean D(x1_hat)`` (WGAN) or ``½ mean (D(x1_hat) - 1)^2``."""
    scores = critic_fn(critic_params, x1_hat)
    if config.loss.gan == "wgan-gp":
        return -jnp.mean(scores)
    return 0.5 * jnp.mean((scores - 1) ** 2)


def generator_loss(params, critic_params, batch: Batch, config: Config, apply_fn, critic_fn):
    """The generator objective of SPEC §5 and its parts."""
    x1_hat, rest, metrics = _generator_parts(params, batch, config, apply_fn)
    if config.loss.mode == "l2":
        fit = metrics["endpoint_sq"]
    else:
        fit = _adversarial_fit(config, critic_fn, critic_params, x1_hat)
    loss = fit + rest
    return loss, {"loss": loss, "fit": fit, **metrics}


def _critic_objective(critic_params, fake, real, key, config: Config, critic_fn):
    """WGAN-GP: ``mean D(fake) - mean D(real) + lambda GP``; LSGAN: least squares."""
    d = lambda x: critic_fn(critic_params, x)
    d_real, d_fake = d(real), d(fake)
    if config.loss.gan == "wgan-gp":
        gp = gradient_penalty(d, real, fake, key)
        wdist = jnp.mean(d_real) - jnp.mean(d_fake)
        loss = -wdist + config.loss.gp_weight * gp
        return loss, {"critic_loss": loss, "wasserstein": wdist, "gp": gp}
    loss = 0.5 * jnp.mean((d_real - 1) ** 2) + 0.5 * jnp.mean(d_fake**2)
    return loss, {"critic_loss": loss, "d_real": jnp.mean(d_real), "d_fake": jnp.mean(d_fake)}


def critic_loss(critic_params, gen_params, batch: Batch, key, config: Config, apply_fn, critic_fn):
    """The critic objective on fakes warped from ``batch["x0"]`` by ``gen_params``."""
    x1_hat, _, _ = generate(config, apply_fn, gen_params, batch, penalties=False)
    fake = jax.lax.stop_gradient(x1_hat)
    return _critic_objective(critic_params, fake, batch["x1"], key, config, critic_fn)


def resolve(config: Config, gradients: bool = True) -> Config:
    """``config`` with ``flow.loop = "auto"`` resolved for its U-Net (see ``resolve_loop``).

    When the loop is differentiated (``gradients``) on CPU, for a ``neural`` field:

    * a wide network's rolled loop (``"auto"`` resolved to ``"diffrax"``) becomes a ``"scan"``
      that keeps every convolution's output (``flow.remat_policy = "auto"`` -> ``"convs"``)
      when its steps are fixed and its adjoint is ``"checkpoint"``: the same discrete gradient
      without diffrax's recomputation of each step's network pass (``paper_mnist``'s generator
      step: 0.87x the time, 4.2 GB peak RSS instead of 2.3 GB; docs/performance.md);
    * ``unet.conv_impl = "auto"`` becomes ``"winograd"`` in a rolled loop: XLA:CPU's
      convolution weight gradient inside a loop is 15-50x slower than unrolled, the matmul
      forms' are not, and Winograd's is the fastest of them.

    Forward-only solves keep ``"auto"``; animation picks its own
    (``jwarp.animation.inference_model``)."""
    flow_cfg = resolve_loop(config.flow, config.model.unet.widest)
    unet = config.model.unet
    neural_cpu = gradients and flow_cfg.field == "neural" and jax.default_backend() == "cpu"
    if (
        neural_cpu
        and config.flow.loop == "auto"
        and flow_cfg.loop == "diffrax"
        and not flow_cfg.adaptive
        and flow_cfg.adjoint == "checkpoint"
    ):
        policy = "convs" if flow_cfg.remat_policy == "auto" else flow_cfg.remat_policy
        flow_cfg = dataclasses.replace(flow_cfg, loop="scan", remat_policy=policy)
    rolled = flow_cfg.loop in ("diffrax", "scan")
    if neural_cpu and rolled and unet.conv_impl == "auto":
        unet = dataclasses.replace(unet, conv_impl="winograd")
    model = dataclasses.replace(config.model, unet=unet)
    return dataclasses.replace(config, flow=flow_cfg, model=model)


def critic_update_fn(config: Config, critic_fn: Callable) -> Callable:
    """The critic to differentiate in critic updates: ``critic_fn`` itself, or on CPU, for
    WGAN-GP with ``critic.conv_impl = "auto"``, the same critic (same parameters) with every
    convolution as im2col. The gradient penalty differentiates the critic twice, and XLA:CPU's
    second-order convolution gradients were 2-2.5x slower than the matmul form's
    (docs/performance.md); first-order uses (the generator's loss, LSGAN) keep ``"auto"``,
    faster there."""
    critic = config.model.critic
    if (
        config.loss.gan == "wgan-gp"
        and critic.conv_impl == "auto"
        and jax.default_backend() == "cpu"
    ):
        return Critic(dataclasses.replace(critic, conv_impl="im2col")).apply
    return critic_fn


class StepFns(NamedTuple):
    """The jitted steps of ``make_step_fns``.

    Attributes:
      generator_step: ``(gen_state, critic_params, batch) -> (gen_state, metrics)``.
      critic_step: ``(critic_state, gen_params, batch, key) -> (critic_state, metrics)``, fakes
        warped from ``batch["x0"]`` (``loss.critic_fakes = "fresh"``).
      gan_step: ``(gen_state, critic_state, batch, reals, key) -> (gen_state, critic_state,
        metrics)``: one ``"shared"`` GAN iteration (``reals [n_critic, B, H, W, C]``); ``None``
        in L2 mode.
    """

    generator_step: Callable
    critic_step: Callable
    gan_step: Callable | None


def make_step_fns(config: Config, states: States, mesh: Mesh | None = None) -> StepFns:
    """Jitted training steps (states donated), data parallel on ``mesh``.

    States, parameters, keys and metrics are replicated over ``mesh`` (default: all devices,
    ``parallel.data_mesh()``); batches ``{"x0": [B, H, W, C], ...}`` are split along ``B``
    (``reals [n_critic, B, H, W, C]`` along its second axis). The losses are batch means, so the
    gradients XLA computes are averaged over all ``B`` examples whatever the device count.
    """
    config = resolve(config)
    mesh = parallel.data_mesh() if mesh is None else mesh
    repl, rows = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    apply_fn = states.generator.apply_fn
    critic_fn = states.critic.apply_fn if states.critic is not None else None
    update_fn = critic_update_fn(config, critic_fn) if critic_fn is not None else None

    def generator_step(gen_state, critic_params, batch):
        grad_fn = jax.grad(generator_loss, has_aux=True)
        grads, metrics = grad_fn(
            gen_state.params, critic_params, batch, config, apply_fn, critic_fn
        )
        metrics["grad_norm"] = optax.tree.norm(grads)
        return gen_state.apply_gradients(grads=grads), metrics

    def critic_step(critic_state, gen_params, batch, key):
        grad_fn = jax.grad(critic_loss, has_aux=True)
        grads, metrics = grad_fn(
            critic_state.params, gen_params, batch, key, config, apply_fn, update_fn
        )
        return critic_state.apply_gradients(grads=grads), metrics

    def gan_step(gen_state, critic_state, batch, reals, key):
        # One generator forward (both solves, penalties), kept for its backward pass.
        def parts(params):
            x1_hat, rest, metrics = _generator_parts(params, batch, config, apply_fn)
            return (x1_hat, rest), metrics

        (x1_hat, rest), pullback, metrics = jax.vjp(parts, gen_state.params, has_aux=True)
        fake = jax.lax.stop_gradient(x1_hat)

        def critic_update(state, inputs):
            real, i = inputs
            grads, cm = jax.grad(_critic_objective, has_aux=True)(
                state.params, fake, real, jax.random.fold_in(key, i), config, update_fn
            )
            return state.apply_gradients(grads=grads), cm

        n = reals.shape[0]
        # Unrolled: XLA:CPU computes convolution weight gradients inside a loop 15-50x slower.
        critic_state, cms = jax.lax.scan(
            critic_update, critic_state, (reals, jnp.arange(n)), unroll=True
        )
        # L_fit against the updated critic, back through the same forward.
        fit, dfit = jax.value_and_grad(
            lambda x: _adversarial_fit(config, critic_fn, critic_state.params, x)
        )(x1_hat)
        (grads,) = pullback((dfit, jnp.ones_like(rest)))
        metrics = {
            "loss": fit + rest,
            "fit": fit,
            **metrics,
            "grad_norm": optax.tree.norm(grads),
            **jax.tree.map(lambda m: m[-1], cms),
        }
        return gen_state.apply_gradients(grads=grads), critic_state, metrics

    gan = None
    if config.loss.mode == "gan":
        gan = jax.jit(
            gan_step,
            in_shardings=(repl, repl, rows, parallel.stacked_batch_sharded(mesh), repl),
            out_shardings=repl,
            donate_argnums=(0, 1),
        )
    return StepFns(
        jax.jit(
            generator_step,
            in_shardings=(repl, repl, rows),
            out_shardings=repl,
            donate_argnums=0,
        ),
        jax.jit(
            critic_step,
            in_shardings=(repl, repl, rows, repl),
            out_shardings=repl,
            donate_argnums=0,
        ),
        gan,
    )


def training_batches(config: Config, mesh: Mesh) -> data_lib.Batches:
    """The training set's resumable batch stream; this process's rows of each global batch.

    GAN mode is unpaired even on paired data: sources and targets are shuffled separately.
    """
    tcfg = config.train
    x0, x1, paired = data_lib.load_dataset(config.data, "train", tcfg.seed)
    return data_lib.Batches(
        x0,
        x1,
        tcfg.batch_size,
        paired=paired and config.loss.mode == "l2",
        seed=tcfg.seed,
        rows=parallel.local_rows(tcfg.batch_size, mesh),
    )


def train_iteration(
    config: Config, states: States, batches, key: jax.Array, step_fns: StepFns, mesh: Mesh
) -> tuple[States, dict]:
    """One iteration of ``train``: ``n_critic`` critic steps (GAN mode), then a generator step.

    Every iteration draws ``n_critic + 1`` batches in GAN mode (one per critic step, then the
    generator's) and one in L2 mode, whatever ``loss.critic_fakes`` is.

    Args:
      step_fns: from ``make_step_fns``.
      key: this iteration's key; critic step ``i`` uses ``fold_in(key, i)``.

    Returns:
      ``(states, device metrics)`` of the last critic step and the generator step.
    """
    metrics = {}
    if states.critic is not None and config.loss.critic_fakes == "shared":
        reals = [next(batches)["x1"] for _ in range(config.loss.n_critic)]
        reals = parallel.stacked_batch(np.stack(reals), mesh)
        batch = parallel.global_batch(next(batches), mesh)
        gen, critic, metrics = step_fns.gan_step(states.generator, states.critic, batch, reals, key)
        return States(gen, critic), metrics
    if states.critic is not None:
        critic = states.critic
        for i in range(config.loss.n_critic):
            batch = parallel.global_batch(next(batches), mesh)
            critic, cm = step_fns.critic_step(
                critic, states.generator.params, batch, jax.random.fold_in(key, i)
            )
        states = States(states.generator, critic)
        metrics.update(cm)
    batch = parallel.global_batch(next(batches), mesh)
    critic_params = states.critic.params if states.critic is not None else None
    gen, gm = step_fns.generator_step(states.generator, critic_params, batch)
    metrics.update(gm)
    return States(gen, states.critic), metrics


# --- the host loop --------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """What ``train`` leaves behind."""

    workdir: Path  # an etils.epath.Path for a gs:// run folder
    step: int
    states: States
    last_metrics: dict[str, float]
    interrupted: bool = False


def _check_compatible(saved: Config, config: Config, path: Path) -> None:
    """A run folder can resume only with the same model, flow and data shapes, and the same
    optimiser state layout (with or without the parameter average)."""
    for section in ("model", "flow", "data"):
        a, b = getattr(saved, section), getattr(config, section)
        if a != b:
            fields = [
                f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)
            ]
            raise RunFolderError(
                f"{path}: run folder was trained with different [{section}] settings "
                f"({', '.join(fields)}); use another --workdir or --no-resume"
            )
    if saved.loss.mode != config.loss.mode:
        raise RunFolderError(
            f"{path}: run folder was trained with loss.mode = "
            f"{saved.loss.mode!r}; use another --workdir or --no-resume"
        )
    if (saved.optim.ema_decay > 0) != (config.optim.ema_decay > 0):
        raise RunFolderError(
            f"{path}: run folder was trained with optim.ema_decay = {saved.optim.ema_decay}, "
            f"which keeps {'a' if saved.optim.ema_decay > 0 else 'no'} parameter average; "
            "use the same setting, another --workdir or --no-resume"
        )


def _sample_fn(config: Config, mesh: Mesh, t_steps: int = 16):
    """Jitted forward animation of a batch: ``(params, x0, x1) -> [T, B, H, W, C]``.

    Replicated over ``mesh`` (a handful of images): every process gets the frames.
    """
    config = resolve(config, gradients=False)
    apply_fn = UNet(config.model.unet).apply
    ts = np.linspace(0.0, 1.0, t_steps)

    def frames(params, x0, x1):
        cond = conditioning(config, x0, x1)
        res = flow(apply_fn, params, cond, ts, config=config.flow, penalties=False)
        return jax.vmap(lambda u: warp(x0, u))(res.disp)

    repl = parallel.replicated(mesh)
    return jax.jit(frames, in_shardings=repl, out_shardings=repl)


def _side_by_side(frames) -> np.ndarray:
    """``[T, B, H, W, C] -> [T, H, B*W, C]``."""
    frames = np.asarray(frames)
    return np.concatenate(list(frames.transpose(1, 0, 2, 3, 4)), axis=2)


def train(
    config: Config,
    workdir: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    mesh: Mesh | None = None,
) -> TrainResult:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint unless told not to.

    Writes ``config.toml``, ``checkpoints/``, ``metrics.jsonl`` and ``samples/*.gif``. Ctrl-C
    or SIGTERM saves a checkpoint at the next step boundary and returns with
    ``interrupted=True``. A non-finite loss raises ``TrainingError`` naming the step; the last
    checkpoint written before it stays the latest.

    Data parallel over ``mesh`` (default: every device of every process): a
    ``train.batch_size`` that does not split over its devices is a ``ConfigError``. With
    several processes (``jax.distributed``), every process calls ``train`` with the same
    arguments, loads only its rows of each batch and takes part in saving and restoring
    checkpoints; only process 0 writes the config, metrics, GIFs, logs and progress bar.
    ``workdir`` may be a ``gs://`` URL (through orbax and ``etils.epath``); a multi-host run
    needs such a shared folder.
    """
    from jwarp.media import write_gif  # host-side only

    mesh = parallel.data_mesh() if mesh is None else mesh
    tcfg = config.train
    parallel.check_batch_size(tcfg.batch_size, mesh.devices.size)
    primary = jax.process_index() == 0
    log = log if primary else (lambda message: None)
    # Data first: bad data (a DataError) must not leave an empty run folder behind.
    batches = training_batches(config, mesh)
    x0_test, x1_test, _ = data_lib.load_dataset(config.data, "test", tcfg.seed)
    n_samples = min(4, len(x0_test), len(x1_test))
    sample_x0, sample_x1 = x0_test[:n_samples], x1_test[:n_samples]
    workdir = run_path(workdir)
    if not is_remote(workdir):  # object stores have no folders to make
        workdir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = workdir / "checkpoints"
    # Leftovers of a killed save are removed by one process only (the folder is shared).
    checkpoints = Checkpoints(ckpt_dir, max_to_keep=tcfg.max_to_keep, cleanup=primary)
    latest = checkpoints.latest_step() if resume else None
    config_path = workdir / "config.toml"
    if latest is not None and config_path.exists():
        _check_compatible(_read_run_config(config_path), config, config_path)
    if not resume and checkpoints.all_steps():
        for step in checkpoints.all_steps():
            checkpoints.manager.delete(step)  # collective: every process calls it
        if primary:
            (workdir / "metrics.jsonl").unlink(missing_ok=True)
    if primary:
        save_config(config, config_path)

    # Resuming needs only the states' shapes: initialising them would compile the networks.
    states, base_key = init_states(
        config, tcfg.seed, batches.steps_per_epoch, mesh, shapes_only=latest is not None
    )
    step = 0
    if latest is not None:
        target = {"generator": states.generator, "critic": states.critic}
        restored, record = checkpoints.restore(latest, target)
        states = States(restored["generator"], restored["critic"])
        batches.restore(record["data"])
        step = int(record["step"])
        log(f"resuming {workdir} from step {step}")
    step_fns = make_step_fns(config, states, mesh)
    sample_fn = _sample_fn(config, mesh)

    metrics_path = workdir / "metrics.jsonl"
    if primary:
        _truncate_metrics(metrics_path, step)

    stop = {"signal": None, "asked": False}
    # Several processes must stop at the same step, or one would wait forever in a collective
    # the others never join. jax.distributed's preemption service turns a SIGTERM on any
    # process into one agreed step (reached_preemption_sync_point, below); Ctrl-C is
    # forwarded to it as a SIGTERM, and SIGTERM is left to its handler.
    agree = jax.process_count() > 1 and jax.config.jax_enable_preemption_service

    def request_stop(signum, frame):
        if stop["asked"]:  # asked twice: stop now, without a checkpoint
            raise KeyboardInterrupt
        stop["asked"] = True
        if agree:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            stop["signal"] = signum

    signals = (signal.SIGINT,) if agree else (signal.SIGINT, signal.SIGTERM)
    old_handlers = {s: signal.signal(s, request_stop) for s in signals}
    bar = None
    if progress and primary:
        from tqdm import tqdm

        bar = tqdm(total=tcfg.steps, initial=step, unit="step", dynamic_ncols=True)

    def save(at_step: int):
        checkpoints.save(
            at_step,
            {"generator": states.generator, "critic": states.critic},
            {"step": at_step, "data": batches.state(), "seed": tcfg.seed},
        )

    pending = None  # (step, device metrics, step time) read one step late: no sync per step
    last: dict[str, float] = {}
    interrupted = False
    try:
        with _metrics_writer(metrics_path, primary) as metrics_file:

            def flush(item):
                nonlocal last
                at, device_metrics, seconds = item
                host = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
                if not all(math.isfinite(v) for v in host.values()):
                    bad = [k for k, v in host.items() if not math.isfinite(v)]
                    raise TrainingError(
                        f"non-finite {', '.join(bad)} at step {at}; the last good checkpoint "
                        f"is step {checkpoints.latest_step()} in {ckpt_dir}"
                    )
                last = host
                if at % tcfg.log_every == 0 or at == tcfg.steps:
                    record = {"step": at, **host, "step_time_s": seconds}
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                if bar is not None:
                    shown = ("loss", "fit", "wasserstein", "critic_loss", "neg_jac_frac")
                    postfix = {k: f"{host[k]:.4g}" for k in shown if k in host}
                    bar.set_postfix(postfix, refresh=False)

            while step < tcfg.steps and stop["signal"] is None:
                t0 = time.perf_counter()
                key = jax.random.fold_in(base_key, step)
                states, metrics = train_iteration(config, states, batches, key, step_fns, mesh)
                step += 1
                if agree and multihost_utils.reached_preemption_sync_point(step):
                    stop["signal"] = signal.SIGTERM
                if pending is not None:
                    flush(pending)
                pending = (step, metrics, time.perf_counter() - t0)
                if bar is not None:
                    bar.update(1)
                boundary = step % tcfg.checkpoint_every == 0 or step == tcfg.steps
                if boundary or stop["signal"] is not None:
                    flush(pending)  # never checkpoint a non-finite state
                    pending = None
                    save(step)
                if step % tcfg.sample_every == 0 or step == tcfg.steps:
                    params = inference_params(states.generator)
                    frames = _side_by_side(sample_fn(params, sample_x0, sample_x1))
                    if primary:
                        write_gif(
                            workdir / "samples" / f"step_{step:07d}.gif",
                            frames,
                            fps=8,
                            scale=max(1, 128 // config.data.image_size),
                        )
            if pending is not None:
                flush(pending)
            if stop["signal"] is not None and step < tcfg.steps:
                interrupted = True
                if checkpoints.latest_step() != step:
                    save(step)
                log(f"\nstopped by signal {stop['signal']} at step {step}; checkpoint saved")
    finally:
        if bar is not None:
            bar.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
        checkpoints.close()
    return TrainResult(workdir, step, states, last, interrupted)


def _read_run_config(path) -> Config:
    """A run folder's ``config.toml``; through ``epath`` for a ``gs://`` folder."""
    if is_remote(path):
        return load_config(None, tomllib.loads(path.read_text()))
    return load_config(str(path))


class _Discard:
    """The metrics file of processes other than 0."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class _ObjectLog:
    """``metrics.jsonl`` on an object store, which cannot append: the whole file is uploaded
    again at most every ``every_s`` seconds and on close."""

    def __init__(self, path, every_s: float = 30.0):
        self.path, self.every_s = path, every_s
        self.parts = [path.read_text()] if path.exists() else []
        self.uploaded = time.monotonic()

    def write(self, text: str) -> None:
        self.parts.append(text)

    def flush(self, force: bool = False) -> None:
        if force or time.monotonic() - self.uploaded >= self.every_s:
            self.path.write_text("".join(self.parts))
            self.uploaded = time.monotonic()


@contextlib.contextmanager
def _metrics_writer(path, primary: bool):
    """An append-only text file for ``metrics.jsonl`` (``write``, ``flush``)."""
    if not primary:
        yield _Discard()
    elif is_remote(path):
        log = _ObjectLog(path)
        try:
            yield log
        finally:
            log.flush(force=True)
    else:
        with open(path, "a") as f:
            yield f


def _truncate_metrics(path: Path, step: int) -> None:
    """Drops records after ``step`` (written after the checkpoint a resume starts from), and
    a last line cut short by a killed run."""
    if not path.exists():
        return
    text = path.read_text()
    lines = text.splitlines()
    kept = [ln for ln in lines if (record := _parse_record(ln)) and record.get("step", 0) <= step]
    if len(kept) != len(lines) or not text.endswith("\n"):  # the next record starts a line
        atomic_write(path, "".join(ln + "\n" for ln in kept))


def _parse_record(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


__all__ = [
    "RunFolderError",
    "StepFns",
    "States",
    "TrainResult",
    "TrainingError",
    "create_states",
    "critic_loss",
    "generator_loss",
    "make_optimizer",
    "make_step_fns",
    "train",
]
