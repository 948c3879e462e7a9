"""Optimisers and training states: Adam with torch-style weight decay and a staircase decay,
the generator's parameter average (``params_ema``), and the generator (and critic) train states,
replicated over a device mesh.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state
from jax.sharding import Mesh

from jwarp import parallel
from jwarp.config import Config
from jwarp.execution import plan
from jwarp.objective import generator_in_channels


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


def _init_key(key: jax.Array) -> jax.Array:
    """A key that draws parameters with XLA's RngBitGenerator (``"rbg"``) instead of
    threefry: the same distributions, but XLA:CPU compiles a network's initialisation in
    about a seventh of the time (threefry's bits are unrolled code for every weight array: 6 s
    of the smoke preset's 7). Its values may differ between backends and XLA versions; a run's
    own parameters are always those of its checkpoints."""
    return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")


def generator_and_input(config: Config) -> tuple[Any, jax.Array]:
    """The generator network training runs (``plan(config, "train")``) and the ``[1, S, S, C]``
    zeros its parameters are initialised on."""
    size = config.data.image_size
    unet = plan(config, "train").unet(config.model.unet)
    return unet, jnp.zeros((1, size, size, generator_in_channels(config)), jnp.float32)


def create_states(
    config: Config, key: jax.Array, steps_per_epoch: int, mesh: Mesh | None = None
) -> States:
    """Fresh generator (and, in GAN mode, critic) train states, replicated over ``mesh``.

    ``mesh`` defaults to all devices (``parallel.data_mesh()``), where ``make_step_fns``'s steps
    expect their states: placed anywhere else, the first step would trace twice.
    """
    size, channels = config.data.image_size, config.data.channels
    k_gen, k_critic = (_init_key(k) for k in jax.random.split(key))
    run = plan(config, "train")
    unet, x = generator_and_input(config)
    gen_tx = make_optimizer(config.optim.lr, config, steps_per_epoch)
    if config.optim.ema_decay > 0:
        gen_tx = optax.chain(gen_tx, params_ema(config.optim.ema_decay))
    gen = train_state.TrainState.create(
        apply_fn=unet.apply, params=jax.jit(unet.init)(k_gen, x), tx=gen_tx
    )
    critic = None
    if config.loss.mode == "gan":
        model = run.critic(config.model.critic)
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


__all__ = [
    "EmaState",
    "States",
    "create_states",
    "inference_params",
    "init_states",
    "make_optimizer",
    "params_ema",
]
