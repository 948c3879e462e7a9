"""Bilinear sampler against scipy.ndimage and closed-form properties."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from jax.test_util import check_grads
from scipy import ndimage

from jwarp import compose, identity_grid, sample, sample_with_gradient, warp


def _scipy_warp(images, disp, mode):
    """Reference: scipy's order-1 map_coordinates, image by image, channel by channel."""
    b, h, w, c = images.shape
    out = np.empty_like(images, dtype=np.float64)
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), 0)
    for i in range(b):
        coords = grid + np.moveaxis(disp[i], -1, 0)
        for k in range(c):
            out[i, ..., k] = ndimage.map_coordinates(
                images[i, ..., k].astype(np.float64), coords, order=1, mode=mode, cval=0.0
            )
    return out


class WarpTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(1, 3, 4)
    def test_border_matches_scipy_nearest(self, channels):
        rng = np.random.default_rng(channels)
        images = rng.random((2, 13, 17, channels), dtype=np.float32)
        # Up to 5 px either way: many samples fall outside the 13x17 frame.
        disp = rng.uniform(-5, 5, (2, 13, 17, 2)).astype(np.float32)
        got = self.variant(warp)(images, disp)
        chex.assert_shape(got, images.shape)
        np.testing.assert_allclose(got, _scipy_warp(images, disp, "nearest"), atol=2e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_zeros_matches_scipy_grid_constant(self):
        rng = np.random.default_rng(7)
        images = rng.random((2, 11, 9, 3), dtype=np.float32)
        disp = rng.uniform(-4, 4, (2, 11, 9, 2)).astype(np.float32)
        got = self.variant(functools.partial(warp, padding="zeros"))(images, disp)
        np.testing.assert_allclose(got, _scipy_warp(images, disp, "grid-constant"), atol=2e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_zeros_outside_the_frame(self):
        images = jnp.ones((1, 8, 8, 1))
        coords = jnp.array([[-1.0, 3.0], [3.0, -1.5], [8.0, 2.0], [2.0, 9.0], [-3.0, -3.0]])
        got = self.variant(functools.partial(sample, padding="zeros"))(
            images, coords.reshape(1, 1, 5, 2)
        )
        np.testing.assert_array_equal(got, 0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_zero_displacement_is_exact_identity(self):
        images = jax.random.uniform(jax.random.key(0), (3, 10, 14, 4))
        got = self.variant(warp)(images, jnp.zeros((3, 10, 14, 2)))
        chex.assert_trees_all_equal(got, images)

    @chex.variants(with_jit=True, without_jit=True)
    def test_integer_shift_equals_roll_in_interior(self):
        images = jax.random.uniform(jax.random.key(1), (2, 16, 12, 3))
        dy, dx = 2, -3
        disp = jnp.broadcast_to(jnp.array([dy, dx], jnp.float32), (2, 16, 12, 2))
        got = self.variant(warp)(images, disp)
        # warp(x, u)(s) = x(s + u) == roll by -u.
        want = jnp.roll(images, (-dy, -dx), axis=(1, 2))
        np.testing.assert_array_equal(got[:, : 16 - dy, -dx:], want[:, : 16 - dy, -dx:])

    @chex.variants(with_jit=True, without_jit=True)
    def test_affine_ramp_is_sampled_exactly(self):
        h, w = 9, 11
        g = identity_grid(h, w)
        ramp = (0.3 * g[..., 0] - 0.7 * g[..., 1] + 2.0)[None, ..., None]
        rng = np.random.default_rng(3)
        coords = np.stack(
            [rng.uniform(0, h - 1, (1, 6, 7)), rng.uniform(0, w - 1, (1, 6, 7))], -1
        ).astype(np.float32)
        got = self.variant(sample)(ramp, coords)
        want = 0.3 * coords[..., 0] - 0.7 * coords[..., 1] + 2.0
        np.testing.assert_allclose(got[..., 0], want, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("border", "zeros")
    def test_sample_with_gradient_gives_the_interpolants_derivatives(self, padding):
        rng = np.random.default_rng(11)
        field = jnp.asarray(rng.random((2, 7, 9, 3)), jnp.float32)
        # Off-integer positions, a third of them outside the frame (clamped or faded there).
        whole = rng.integers(-2, 10, (2, 5, 6, 2))
        coords = jnp.asarray(whole + rng.uniform(0.1, 0.9, (2, 5, 6, 2)), jnp.float32)
        got = self.variant(functools.partial(sample_with_gradient, padding=padding))(field, coords)
        chex.assert_shape(got, [(2, 5, 6, 3)] * 3)
        np.testing.assert_allclose(got[0], sample(field, coords, padding), atol=1e-6)
        # Reference: central differences of ``sample`` (the interpolant is linear along each
        # axis within a cell, so these are exact up to rounding).
        eps = 1e-2
        for axis in (0, 1):
            step = jnp.zeros((1, 1, 1, 2)).at[..., axis].set(eps)
            fd = (sample(field, coords + step, padding) - sample(field, coords - step, padding)) / (
                2 * eps
            )
            np.testing.assert_allclose(got[1 + axis], fd, atol=2e-3)
        assert float(jnp.abs(got[1]).max()) > 0.1 and float(jnp.abs(got[2]).max()) > 0.1

    def test_gradients_match_finite_differences(self):
        rng = np.random.default_rng(5)
        images = jnp.asarray(rng.random((1, 6, 7, 2)), jnp.float32)
        # Keep every sample position away from integers, where bilinear has kinks.
        whole = rng.integers(-2, 3, (1, 6, 7, 2))
        disp = jnp.asarray(whole + rng.uniform(0.2, 0.8, (1, 6, 7, 2)), jnp.float32)
        check_grads(
            lambda x: warp(x, disp),
            (images,),
            order=1,
            modes=["rev"],
            eps=1e-2,
            atol=1e-2,
            rtol=1e-2,
        )
        check_grads(
            lambda u: warp(images, u),
            (disp,),
            order=1,
            modes=["rev"],
            eps=1e-2,
            atol=1e-2,
            rtol=1e-2,
        )
        check_grads(
            lambda u: warp(images, u, "zeros"),
            (disp,),
            order=1,
            modes=["rev"],
            eps=1e-2,
            atol=1e-2,
            rtol=1e-2,
        )

    def test_bad_shapes_and_padding_are_rejected(self):
        with pytest.raises(AssertionError):
            warp(jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 4, 5, 2)))
        with pytest.raises(ValueError, match="padding"):
            warp(jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 4, 4, 2)), padding="reflect")


def test_compose_of_translations_adds():
    a = jnp.broadcast_to(jnp.array([1.25, -0.5]), (1, 12, 12, 2))
    b = jnp.broadcast_to(jnp.array([-0.75, 2.0]), (1, 12, 12, 2))
    np.testing.assert_allclose(compose(a, b), a + b, atol=1e-6)


def test_identity_grid_holds_pixel_centres():
    g = identity_grid(3, 5)
    chex.assert_shape(g, (3, 5, 2))
    np.testing.assert_array_equal(g[2, 4], [2.0, 4.0])
    np.testing.assert_array_equal(g[:, 0, 0], [0.0, 1.0, 2.0])
