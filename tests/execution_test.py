"""The execution plan: "auto" resolved once per purpose and backend, explicit settings kept."""

import itertools

import pytest

from jwarp.config import load_config
from jwarp.conv import CONV_OUT
from jwarp.execution import PURPOSES, plan

WIDE = {"model.unet.encoder": [256, 8], "model.unet.decoder": [8, 8]}  # widest >= 256
GAN = {"loss.mode": "gan", "data.name": "digits", "data.paired": False}


def _plan(purpose, on="cpu", **overrides):
    return plan(load_config("smoke", overrides), purpose, on=on)


def test_training_a_narrow_neural_field_on_cpu_unrolls_up_to_the_step_bound():
    got = _plan("train", **{"flow.field": "neural"})
    assert (got.loop.kind, got.loop.max_unrolled_steps, got.loop.keep) == ("unrolled", 64, ())
    assert got.unet_conv == "by-size"  # unrolled: XLA's convolutions, im2col on tiny maps
    assert _plan("sample", **{"flow.field": "neural"}).loop == got.loop


def test_training_a_wide_neural_field_on_cpu_scans_keeping_convolutions_with_winograd():
    got = _plan("train", **{"flow.field": "neural", **WIDE})
    assert (got.loop.kind, got.loop.keep, got.unet_conv) == ("scan", (CONV_OUT,), "winograd")
    sample = _plan("sample", **{"flow.field": "neural", **WIDE})
    assert (sample.loop.kind, sample.unet_conv) == ("diffrax", "by-size")
    # The scan needs exact discrete gradients of fixed steps; otherwise diffrax's loop.
    for not_fixed in (
        {"flow.adjoint": "backsolve"},
        {"flow.solver": "tsit5", "flow.adaptive": True},
    ):
        got = _plan("train", **{"flow.field": "neural", **not_fixed, **WIDE})
        assert (got.loop.kind, got.unet_conv) == ("diffrax", "winograd"), not_fixed
        narrow = _plan("train", **{"flow.field": "neural", **not_fixed})
        assert narrow.loop.kind == "diffrax", not_fixed


def test_fields_computed_once_per_image_run_diffraxs_loop_everywhere():
    for field, purpose in itertools.product(("stationary", "straight"), PURPOSES):
        got = _plan(purpose, **{"flow.field": field, "flow.solver": "heun", **WIDE})
        assert got.loop.kind == "diffrax", (field, purpose)
        # A wide U-Net trains and animates as Winograd; sample GIFs (forward only) do not.
        assert got.unet_conv == ("by-size" if purpose == "sample" else "winograd")
        narrow = _plan(purpose, **{"flow.field": field})
        assert narrow.unet_conv == "by-size", (field, purpose)


def test_animation_runs_diffrax_or_its_dense_euler_and_caches_winograd_kernels_of_wide_nets():
    for field in ("neural", "stationary"):
        got = _plan("animate", **{"flow.field": field, "execution.loop": "unrolled", **WIDE})
        assert (got.loop.kind, got.unet_conv, got.winograd_cache) == ("dense", "winograd", True)
        narrow = _plan("animate", **{"flow.field": field})
        assert (narrow.unet_conv, narrow.winograd_cache) == ("by-size", False)
        # Other solvers, and Euler steps that do not divide [0, 1], run diffrax itself.
        for other in ({"flow.solver": "rk4"}, {"flow.step_size": 0.3}):
            assert _plan("animate", **{"flow.field": field, **other}).loop.kind == "diffrax"


def test_wgan_gp_critic_updates_run_winograd_on_cpu_and_other_critic_uses_do_not():
    got = _plan("train", **GAN)
    assert (got.critic_conv, got.critic_update_conv) == ("by-size", "winograd")
    lsgan = _plan("train", **GAN, **{"loss.gan": "lsgan"})
    assert lsgan.critic_update_conv == "by-size"


@pytest.mark.parametrize("purpose", PURPOSES)
def test_other_backends_get_xla_convolutions_and_diffraxs_loop_or_its_dense_euler(purpose):
    for field in ("neural", "stationary"):
        got = _plan(purpose, on="gpu", **{"flow.field": field, **WIDE, **GAN})
        assert got.loop.kind == ("dense" if purpose == "animate" else "diffrax")
        assert {got.unet_conv, got.critic_conv, got.critic_update_conv} == {"lax"}
        assert not got.winograd_cache


def test_explicit_settings_are_kept():
    explicit = {
        "flow.field": "neural",
        "execution.loop": "scan",
        "execution.remat": False,
        "execution.remat_policy": "inputs",
        "execution.unet_conv": "im2col",
        "execution.critic_conv": "lax",
        **WIDE,
        **GAN,
    }
    for on in ("cpu", "gpu"):
        got = _plan("train", on=on, **explicit)
        assert (got.loop.kind, got.loop.remat, got.loop.keep) == ("scan", False, ())
        assert (got.unet_conv, got.critic_conv, got.critic_update_conv) == ("im2col",) + (
            "lax",
        ) * 2
        # An explicit unrolled loop is not bounded.
        unrolled = _plan("train", on=on, **{**explicit, "execution.loop": "unrolled"})
        assert unrolled.loop.max_unrolled_steps is None


def test_the_plan_builds_networks_with_its_convolutions():
    config = load_config("smoke", {"flow.field": "neural", **WIDE, **GAN})
    got = plan(config, "train", on="cpu")
    assert got.unet(config.model.unet).conv == "winograd"
    assert got.critic(config.model.critic).conv == "by-size"
    assert got.critic(config.model.critic, update=True).conv == "winograd"
    with pytest.raises(ValueError, match="purpose"):
        plan(config, "serve")
