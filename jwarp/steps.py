"""The jitted training steps (paper Algorithm 1) and one training iteration.

``generator_step`` and ``critic_step`` are pure and jitted once (``make_step_fns``), data
parallel over a device mesh (``jwarp.parallel``: states replicated, batches split along axis 0);
``train_iteration`` runs one iteration of them (``n_critic`` critic steps in GAN mode, then a
generator step) on batches from the host. ``jwarp.training.train`` is the loop around them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from jwarp import parallel
from jwarp.config import Config
from jwarp.execution import plan
from jwarp.objective import (
    adversarial_fit,
    critic_loss,
    critic_objective,
    generator_loss,
    generator_parts,
)
from jwarp.optim import States

# --- steps ---------------------------------------------------------------------------------


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
    mesh = parallel.data_mesh() if mesh is None else mesh
    repl, rows = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    apply_fn = states.generator.apply_fn
    critic_fn = states.critic.apply_fn if states.critic is not None else None
    # The same critic (same parameters) as the plan runs it in critic updates.
    update_fn = None
    if critic_fn is not None:
        update_fn = plan(config, "train").critic(config.model.critic, update=True).apply

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
            x1_hat, rest, metrics = generator_parts(params, batch, config, apply_fn)
            return (x1_hat, rest), metrics

        (x1_hat, rest), pullback, metrics = jax.vjp(parts, gen_state.params, has_aux=True)
        fake = jax.lax.stop_gradient(x1_hat)

        def critic_update(state, inputs):
            real, i = inputs
            grads, cm = jax.grad(critic_objective, has_aux=True)(
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
            lambda x: adversarial_fit(config, critic_fn, critic_state.params, x)
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


__all__ = [
    "StepFns",
    "make_step_fns",
    "train_iteration",
]
