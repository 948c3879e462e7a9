"""U-Net and critic: sizes, conv implementations, per-sample independence."""

import dataclasses

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jwarp import Critic, CriticConfig, UNet, UNetConfig
from jwarp.conv import Conv, conv_impl_for, winograd_kernel
from jwarp.models import (
    gaussian_smooth,
    param_count,
    winograd_kernels,
)


def _conv_params(cin, cout, k=3):
    return k * k * cin * cout + cout


def test_paper_unet_has_the_authors_size():
    # Independent count from the architecture of docs/method.md §5: 4 stride-2 encoder convs,
    # decoder convs on [upsampled, skip], extra convs on [decoder, input], a 1x1 head.
    # Input: x0 + u (3) + coords.
    cin = 1 + 2 + 2
    enc, dec, extra = (64, 128, 256, 512), (1024, 512, 256, 128), (64, 32)
    want = sum(_conv_params(a, b) for a, b in zip((cin,) + enc[:-1], enc))
    want += _conv_params(enc[-1], dec[0])
    for prev, skip, c in zip(dec[:-1], enc[-2::-1], dec[1:]):
        want += _conv_params(prev + skip, c)
    want += _conv_params(dec[-1] + cin, extra[0]) + _conv_params(extra[0], extra[1])
    want += _conv_params(extra[1], 2, k=1)
    model = UNet(UNetConfig.paper())
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    assert param_count(shapes) == want
    assert 14.0e6 < want < 14.2e6


@pytest.mark.parametrize("impl", ["im2col", "winograd"])
@pytest.mark.parametrize(
    "shape,k,stride,padding",
    [
        ((2, 9, 11, 3), 3, 1, "SAME"),
        ((2, 9, 11, 3), 3, 2, "SAME"),
        ((2, 16, 16, 5), 4, 2, "SAME"),
        ((2, 7, 9, 3), 4, 2, "SAME"),
        ((1, 2, 2, 4), 4, 2, "SAME"),
        ((2, 9, 8, 3), 4, 2, "VALID"),
        ((2, 4, 4, 6), 4, 1, "VALID"),
        ((1, 2, 2, 4), 3, 1, "SAME"),
        ((2, 7, 6, 3), 3, 1, "VALID"),
    ],
)
def test_matmul_convs_match_lax_conv_and_its_gradient(impl, shape, k, stride, padding):
    """``im2col`` and ``winograd`` (F(2x2, 3x3) for 3x3 stride 1, F(2x2, 2x2) on the
    space-to-depth form of 4x4 stride 2, else im2col) against XLA's convolution: odd sizes (a
    partial last Winograd tile), a one-tile map, VALID padding."""
    x = jax.random.normal(jax.random.key(0), shape)
    lax_conv = Conv(7, k, stride, padding, impl="lax")
    mm_conv = Conv(7, k, stride, padding, impl=impl)
    params = lax_conv.init(jax.random.key(1), x)
    np.testing.assert_allclose(
        jax.jit(lax_conv.apply)(params, x), jax.jit(mm_conv.apply)(params, x), atol=2e-5, rtol=2e-5
    )
    loss = lambda conv: lambda p, x: jnp.sum(jnp.sin(conv.apply(p, x)))
    g_lax = jax.jit(jax.grad(loss(lax_conv), argnums=(0, 1)))(params, x)
    g_mm = jax.jit(jax.grad(loss(mm_conv), argnums=(0, 1)))(params, x)
    chex.assert_trees_all_close(g_lax, g_mm, atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # ~20 s compiling three twice-differentiated critics (float64)
def test_wgan_gp_critic_gradients_match_across_convolutions():
    """A WGAN-GP critic update differentiates the critic twice (the gradient penalty's input
    gradient, then the parameters'): the Winograd critic (``winograd_s2_kernel``, what CPU
    training runs) gives the gradient of XLA's convolutions and of ``im2col`` (what it ran
    before). In float64, since at float32 a pre-activation rounded across LeakyReLU's kink
    moves the penalty's gradient by ~1e-4 whichever convolution runs; padding by odd sizes.
    (``training_test`` checks the plan's two critics against each other at float32.)"""
    from jwarp.config import load_config
    from jwarp.objective import critic_objective

    config = load_config("smoke", {"loss.mode": "gan", "loss.gan": "wgan-gp"})
    cfg = CriticConfig(channels=(4, 8, 8))
    with jax.enable_x64(True):
        real, fake = (
            jax.random.uniform(jax.random.key(i), (3, 18, 14, 2), jnp.float64) for i in (0, 1)
        )
        params = Critic(cfg, conv="lax").init(jax.random.key(2), real)
        params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
        grads = {
            impl: jax.jit(jax.grad(critic_objective, has_aux=True), static_argnums=(4, 5))(
                params, fake, real, jax.random.key(3), config, Critic(cfg, conv=impl).apply
            )[0]
            for impl in ("lax", "im2col", "winograd")
        }
        chex.assert_trees_all_equal_dtypes(grads["winograd"], params)
        assert float(optax.tree.norm(grads["lax"])) > 1e-3  # not a vanishing gradient
        for impl in ("im2col", "winograd"):
            chex.assert_trees_all_close(grads[impl], grads["lax"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "up_shape,x_shape",
    [
        ((2, 4, 5, 6), (2, 8, 10, 3)),  # 20 positions before upsampling: folded 2x2 kernels
        ((2, 2, 3, 6), (2, 4, 6, 3)),  # 6 positions: Winograd on the concatenation
        ((2, 4, 4, 6), (2, 7, 8, 3)),  # odd: the upsampled map is cropped
    ],
)
def test_conv_of_an_upsampled_concatenation_matches_lax(up_shape, x_shape):
    """``Conv(x, up)`` is ``conv3x3(concat[upsample2x(up)[:, :H, :W], x])``; the Winograd impl
    folds the kernel onto the map before upsampling where it is large enough. Against XLA's
    convolution of the explicit concatenation, values and gradients for ``x``, ``up`` and the
    kernel."""
    up = jax.random.normal(jax.random.key(0), up_shape)
    x = jax.random.normal(jax.random.key(1), x_shape)
    conv = Conv(5, impl="winograd")
    params = conv.init(jax.random.key(2), x, up)
    chex.assert_shape(params["params"]["kernel"], (3, 3, up_shape[-1] + x_shape[-1], 5))

    def reference(p, x, up):
        up2 = jnp.repeat(jnp.repeat(up, 2, axis=1), 2, axis=2)[:, : x.shape[1], : x.shape[2]]
        return Conv(5, impl="lax").apply(p, jnp.concatenate([up2, x], axis=-1))

    loss = lambda f: lambda p, x, up: jnp.sum(jnp.sin(f(p, x, up)))
    np.testing.assert_allclose(
        jax.jit(conv.apply)(params, x, up), reference(params, x, up), atol=2e-5, rtol=2e-5
    )
    g_ref = jax.jit(jax.grad(loss(reference), argnums=(0, 1, 2)))(params, x, up)
    g_conv = jax.jit(jax.grad(loss(conv.apply), argnums=(0, 1, 2)))(params, x, up)
    chex.assert_trees_all_close(g_conv, g_ref, atol=1e-4, rtol=1e-4)


def test_cached_winograd_kernels_are_g_g_gt_and_give_the_same_unet():
    """``winograd_kernels`` holds ``G g G^T`` (numpy, from Lavin & Gray's G) for every 3x3
    stride-1 convolution and nothing else, and for a convolution of an upsampled concatenation
    also the split forms (the rest's ``G g G^T``, the upsampled part's folded 2x2 kernels),
    whichever path a later input size takes. The U-Net applied with it equals the ``lax``
    U-Net; a wrong cached kernel changes the output, so the cache is what the convolutions use."""
    g_mat = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    x = jax.random.uniform(jax.random.key(0), (2, 12, 12, 3))
    cfg = UNetConfig.tiny(encoder=(8, 8), decoder=(16, 8), extra=(8,), final_init_std=0.1)
    wino = UNet(cfg, conv="winograd")
    params = jax.jit(wino.init)(jax.random.key(1), x)
    assert set(params) == {"params"}  # init caches nothing (it would go stale in training)
    cached = jax.jit(lambda p: winograd_kernels(wino, p, x[:1]))(params)
    flat = flax.traverse_util.flatten_dict(cached["winograd"])
    kernels = flax.traverse_util.flatten_dict(params["params"])
    # Stride-1 3x3 convs: 2 decoder + 1 extra; the stride-2 encoder convs and the 1x1 head are not.
    # Two of them (decoder level 2, the first extra) convolve [upsampled, rest].
    assert sorted(path[-1] for path in flat) == sorted(
        ["kernel"] * 3 + ["rest_kernel", "up_kernel"] * 2
    )
    for path, u in flat.items():
        kernel = np.asarray(kernels[path[:-1] + ("kernel",)], np.float64)
        if path[-1] == "up_kernel":
            # Nearest upsampling puts source row i - 1 under kernel row 0 for even output rows
            # and under rows 0, 1 for odd ones (source row i + 1 under row 2): the sums below.
            fold = np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]])  # [a, p, i]
            cu = u.shape[0] // 4  # the upsampled input's channels come first
            want = np.einsum("api,bqj,ijcd->pqcabd", fold, fold, kernel[:, :, :cu])
            np.testing.assert_allclose(u, want.reshape(u.shape), atol=1e-6)
            continue
        if path[-1] == "rest_kernel":
            kernel = kernel[:, :, kernel.shape[2] - u.shape[1] :]
        want = np.einsum("ia,jb,abcd->ijcd", g_mat, g_mat, kernel).reshape(16, *kernel.shape[2:])
        np.testing.assert_allclose(u, want, atol=1e-6)
        direct = winograd_kernel(jnp.asarray(kernel, jnp.float32))
        np.testing.assert_allclose(direct, want, atol=1e-6)
    lax_out = jax.jit(UNet(cfg).apply)(params, x)
    apply = jax.jit(wino.apply)
    np.testing.assert_allclose(apply({**params, **cached}, x), lax_out, atol=1e-5, rtol=1e-4)
    wrong = jax.tree.map(lambda u: u * 1.5, cached)
    assert float(jnp.max(jnp.abs(apply({**params, **wrong}, x) - lax_out))) > 1e-3
    assert winograd_kernels(UNet(cfg, conv="by-size"), params, x[:1]) == {}  # nothing to cache


def test_by_size_conv_is_im2col_only_for_tiny_maps():
    assert conv_impl_for("by-size", positions=4) == "im2col"
    assert conv_impl_for("by-size", positions=16) == "lax"
    assert conv_impl_for("im2col", positions=1024) == "im2col"
    assert conv_impl_for("lax", positions=1) == "lax"
    assert conv_impl_for("winograd", positions=1024) == "winograd"
    with pytest.raises(ValueError, match="conv"):
        conv_impl_for("fft", positions=4)


def test_by_size_unet_equals_the_lax_unet():
    """The per-convolution choice (a 2x2 bottleneck goes im2col) changes nothing but float
    rounding: same parameters, same velocities."""
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    cfg = UNetConfig.tiny(encoder=(8, 8, 8), decoder=(8, 8, 8), final_init_std=0.1)
    auto, lax_only = UNet(cfg, conv="by-size"), UNet(cfg)
    params = jax.jit(auto.init)(jax.random.key(1), x)
    chex.assert_trees_all_close(
        jax.jit(auto.apply)(params, x), jax.jit(lax_only.apply)(params, x), atol=1e-5, rtol=1e-4
    )


@pytest.mark.parametrize("size", [(16, 16), (13, 21)])
def test_unet_shape_and_near_zero_start(size):
    x = jax.random.uniform(jax.random.key(0), (2, *size, 4))
    model = UNet(UNetConfig.tiny())
    params = jax.jit(model.init)(jax.random.key(1), x)
    out = jax.jit(model.apply)(params, x)
    chex.assert_shape(out, (2, *size, 2))
    chex.assert_tree_all_finite(out)
    # The final conv starts near zero so training starts from the identity warp.
    assert float(jnp.max(jnp.abs(out))) < 1e-3


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_outputs_are_per_sample(norm):
    """One image's output must not depend on the rest of its batch (no batch statistics)."""
    x = jax.random.uniform(jax.random.key(0), (3, 16, 16, 1))
    other = x.at[1:].set(jax.random.uniform(jax.random.key(1), (2, 16, 16, 1)))
    unet = UNet(UNetConfig.tiny(norm=norm, final_init_std=0.1))
    critic = Critic(CriticConfig(channels=(8, 16), norm=norm))
    for model in (unet, critic):
        params = jax.jit(model.init)(jax.random.key(2), x)
        apply = jax.jit(model.apply)
        a, b = apply(params, x), apply(params, other)
        np.testing.assert_allclose(a[0], b[0], atol=1e-6)
        assert not np.allclose(a[1], b[1])


def test_critic_scores_one_per_image_at_any_size():
    critic = Critic(CriticConfig(channels=(8, 8, 16)))
    params = jax.jit(critic.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 4)))
    for size in (16, 32, 48):
        x = jax.random.uniform(jax.random.key(size), (5, size, size, 4))
        scores = critic.apply(params, x)
        chex.assert_shape(scores, (5,))
        assert len(np.unique(np.asarray(scores))) == 5


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="unet.decoder"):
        UNetConfig(encoder=(8, 8), decoder=(8,))
    with pytest.raises(ValueError, match="unet.norm"):
        UNetConfig(norm="batch")


class GaussianSmoothTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_scipy_with_nearest_borders(self):
        from scipy import ndimage

        x = np.random.default_rng(0).standard_normal((2, 13, 17, 2)).astype(np.float32)
        for sigma in (0.7, 1.5, 2.0):
            got = self.variant(gaussian_smooth, static_argnums=1)(jnp.asarray(x), sigma)
            want = ndimage.gaussian_filter(x, (0, sigma, sigma, 0), mode="nearest", truncate=3)
            np.testing.assert_allclose(got, want, atol=1e-5)

    def test_unet_out_sigma_smooths_the_velocity_and_keeps_constants(self):
        from scipy import ndimage

        sharp = UNetConfig.tiny(final_init_std=0.1)
        smooth = dataclasses.replace(sharp, out_sigma=1.5)
        x = jnp.asarray(np.random.default_rng(1).random((1, 16, 16, 1)), jnp.float32)
        params = UNet(sharp).init(jax.random.key(0), x)
        v = np.asarray(UNet(sharp).apply(params, x))
        got = UNet(smooth).apply(params, x)  # the filter has no parameters
        want = ndimage.gaussian_filter(v, (0, 1.5, 1.5, 0), mode="nearest", truncate=3)
        np.testing.assert_allclose(got, want, atol=1e-5)
        constant = jnp.full((1, 9, 10, 2), 2.5)
        np.testing.assert_allclose(gaussian_smooth(constant, 2.0), constant, rtol=1e-6)
        with pytest.raises(ValueError, match="out_sigma"):
            UNetConfig(out_sigma=-1.0)


def test_fresh_states_draw_torchs_uniform_weights_reproducibly_from_the_seed():
    from jwarp.config import load_config
    from jwarp.optim import create_states

    config = load_config("smoke", {"model.unet.encoder": [64, 64], "loss.mode": "gan"})
    draw = lambda seed: create_states(config, jax.random.key(seed), 4).generator.params
    a, b, c = draw(0), draw(0), draw(1)
    chex.assert_trees_all_equal(a, b)
    kernels = [k for path, k in jax.tree_util.tree_leaves_with_path(a)
               if "kernel" in jax.tree_util.keystr(path) and k.size >= 4096]
    assert kernels
    for k in kernels:
        bound = 1.0 / np.sqrt(np.prod(k.shape[:-1]))  # PyTorch's U(+-1/sqrt(fan_in))
        np.testing.assert_allclose(np.std(k) / bound, 1.0 / np.sqrt(3.0), atol=0.02)
        assert abs(float(np.mean(k))) / bound < 0.03
        assert 0.98 * bound < np.abs(k).max() <= bound
    assert not np.allclose(jax.tree.leaves(a)[-1], jax.tree.leaves(c)[-1])
