"""The training objective (paper Algorithm 1): the generator's loss in L2 mode (pairs) and
GAN mode (WGAN-GP / LSGAN, unpaired sets), and the critic's.

Generator loss, both modes (docs/method.md §5)::

    L_fit + w_jd JD + w_og OG
          + w_rec (||warp(x1_hat, u_{-1}) - x0||^2 + w_jd JD_back + w_og OG_back)
          + w_area area_excess(u_1) + w_bend bending_energy(u_1)

with squared errors summed over pixels and averaged over the batch; ``L_fit`` is the L2
endpoint error (``l2``) or ``-mean D(x1_hat)`` (``gan``; ``lsgan``: ``½ mean (D(x1_hat) - 1)^2``).

Pure functions of parameters and a batch: ``jwarp.steps`` differentiates and jits them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jwarp.config import Config
from jwarp.execution import plan
from jwarp.field import get_field
from jwarp.metrics import EXTREME_HIGH, EXTREME_LOW, bending_energy
from jwarp.penalties import area_excess, gradient_penalty, jacobian_det
from jwarp.sampler import warp

Batch = dict[str, jax.Array]  # {"x0": [B, H, W, C], "x1": [B, H, W, C]}


# --- the generator's input ------------------------------------------------------------------


def generator_in_channels(config: Config) -> int:
    """Channels the U-Net sees: the conditioning image(s), and what the field adds."""
    c = config.data.channels * (2 if config.model.condition == "pair" else 1)
    return get_field(config.flow.field).network_channels(c)


def conditioning(config: Config, x0: jax.Array, x1: jax.Array) -> jax.Array:
    """``x0`` (``source``) or ``[x0, x1]`` stacked on channels (``pair``)."""
    if config.model.condition == "pair":
        return jnp.concatenate([x0, x1], axis=-1)
    return x0


# --- losses ---------------------------------------------------------------------------------


def _sq_err(a: jax.Array, b: jax.Array) -> jax.Array:
    """Squared error summed over pixels, averaged over the batch."""
    return jnp.mean(jnp.sum((a - b) ** 2, axis=(1, 2, 3)))


def generate(config: Config, apply_fn: Callable, params: Any, batch: Batch, penalties: bool):
    """Forward and backward solves from one set of parameters (the field's round trip, run
    as the training plan says).

    Returns:
      ``(x1_hat [B,H,W,C], fwd FlowResult, bwd FlowResult)``.
    """
    x0, x1 = batch["x0"], batch["x1"]
    cond = conditioning(config, x0, x1)
    field = get_field(config.flow.field)
    loop = plan(config, "train").loop
    fwd, bwd = field.round_trip(apply_fn, params, cond, config.flow, loop, penalties)
    return warp(x0, fwd.disp[-1]), fwd, bwd


def generator_parts(params, batch: Batch, config: Config, apply_fn):
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


def adversarial_fit(config: Config, critic_fn, critic_params, x1_hat):
    """``L_fit`` of GAN mode: ``-mean D(x1_hat)`` (WGAN) or ``½ mean (D(x1_hat) - 1)^2``."""
    scores = critic_fn(critic_params, x1_hat)
    if config.loss.gan == "wgan-gp":
        return -jnp.mean(scores)
    return 0.5 * jnp.mean((scores - 1) ** 2)


def generator_loss(params, critic_params, batch: Batch, config: Config, apply_fn, critic_fn):
    """The generator objective of docs/method.md §5 and its parts."""
    x1_hat, rest, metrics = generator_parts(params, batch, config, apply_fn)
    if config.loss.mode == "l2":
        fit = metrics["endpoint_sq"]
    else:
        fit = adversarial_fit(config, critic_fn, critic_params, x1_hat)
    loss = fit + rest
    return loss, {"loss": loss, "fit": fit, **metrics}


def critic_objective(critic_params, fake, real, key, config: Config, critic_fn):
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
    return critic_objective(critic_params, fake, batch["x1"], key, config, critic_fn)


__all__ = [
    "Batch",
    "conditioning",
    "critic_loss",
    "generate",
    "generator_in_channels",
    "generator_loss",
]
