"""Jacobian, out-of-grid and gradient penalties against closed forms."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jwarp import gradient_penalty, identity_grid, jacobian_det, negative_jacobian, out_of_grid
from jwarp.penalties import area_excess


def _affine_disp(a, h=10, w=12):
    """Displacement of phi(s) = A (s - c) + c, an affine map about the centre."""
    g = np.asarray(identity_grid(h, w))
    c = np.array([(h - 1) / 2, (w - 1) / 2])
    phi = (g - c) @ np.asarray(a).T + c
    return jnp.asarray((phi - g)[None], jnp.float32)


class JacobianTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_translation_has_unit_determinant(self):
        disp = jnp.broadcast_to(jnp.array([3.3, -1.7]), (2, 8, 9, 2))
        jdet = self.variant(jacobian_det)(disp)
        chex.assert_shape(jdet, (2, 7, 8))
        np.testing.assert_allclose(jdet, 1.0, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_affine_maps_give_their_determinant(self):
        theta = 0.3
        rot = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
        shear = [[1.0, 0.8], [0.0, 1.0]]  # area-preserving: must not be penalised
        scale = [[1.5, 0.0], [0.0, 0.5]]
        for a in (rot, shear, scale):
            jdet = self.variant(jacobian_det)(_affine_disp(a))
            np.testing.assert_allclose(jdet, np.linalg.det(a), atol=1e-5)
        np.testing.assert_allclose(
            self.variant(jacobian_det)(_affine_disp(rot)),
            np.cos(theta) ** 2 + np.sin(theta) ** 2,
            atol=1e-5,
        )

    @chex.variants(with_jit=True, without_jit=True)
    def test_fold_is_negative_and_penalised(self):
        # phi_x = x for x < 5, then runs backwards with slope -1: a fold along x = 5.
        h, w = 6, 10
        x = jnp.arange(w, dtype=jnp.float32)
        phi_x = jnp.where(x < 5, x, 10.0 - x)
        disp = jnp.stack([jnp.zeros((h, w)), jnp.broadcast_to(phi_x - x, (h, w))], -1)[None]
        jdet = self.variant(jacobian_det)(disp)
        np.testing.assert_allclose(jdet[0, :, :4], 1.0)
        np.testing.assert_allclose(jdet[0, :, 5:], -1.0)
        # negJ = mean of relu(-J): 4 of the 9 columns have J = -1 (column 4 has J = 0).
        np.testing.assert_allclose(self.variant(negative_jacobian)(disp), [4 / 9], rtol=1e-6)
        # A rotation does not fold.
        rot = _affine_disp([[0.0, -1.0], [1.0, 0.0]])
        np.testing.assert_allclose(self.variant(negative_jacobian)(rot), [0.0], atol=1e-6)


class AreaExcessTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_affine_maps_pay_the_log_of_their_area_change_beyond_the_band(self):
        band = 2.0
        cases = {  # matrix -> (|log det| - log band)^2 where positive
            "grows 4x": ([[2.0, 0.0], [0.0, 2.0]], np.log(2.0) ** 2),
            "shrinks 4x": ([[0.5, 0.0], [0.0, 0.5]], np.log(2.0) ** 2),
            "grows 1.5x": ([[1.5, 0.0], [0.0, 1.0]], 0.0),
            "shear": ([[1.0, 0.8], [0.0, 1.0]], 0.0),
            "grows 9x": ([[3.0, 0.0], [0.0, 3.0]], np.log(4.5) ** 2),
        }
        disp = jnp.concatenate([_affine_disp(a) for a, _ in cases.values()])
        got = self.variant(area_excess, static_argnums=1)(disp, band)
        np.testing.assert_allclose(got, [want for _, want in cases.values()], atol=1e-5)

    def test_a_map_and_its_inverse_pay_the_same(self):
        a = np.array([[2.5, 0.3], [0.0, 1.8]])
        forward = area_excess(_affine_disp(a), 1.5)
        inverse = area_excess(_affine_disp(np.linalg.inv(a)), 1.5)
        np.testing.assert_allclose(forward, inverse, rtol=1e-4)
        assert float(forward[0]) > 0


class OutOfGridTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_zero_inside(self):
        rot = _affine_disp(
            [[0.8, 0.05], [-0.05, 0.8]]
        )  # a rotating shrink: everything stays inside
        np.testing.assert_array_equal(self.variant(out_of_grid)(rot), [0.0])
        np.testing.assert_array_equal(self.variant(out_of_grid)(jnp.zeros((3, 5, 4, 2))), 0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_translation_out_of_frame_matches_closed_form(self):
        h, w = 7, 10
        dy, dx = -2.5, 3.0
        disp = jnp.broadcast_to(jnp.array([dy, dx]), (1, h, w, 2))
        rows, cols = np.arange(h) + dy, np.arange(w) + dx
        excess_rows = np.maximum(rows - (h - 1), 0) + np.maximum(-rows, 0)
        excess_cols = np.maximum(cols - (w - 1), 0) + np.maximum(-cols, 0)
        want = excess_rows.sum() / h + excess_cols.sum() / w
        np.testing.assert_allclose(self.variant(out_of_grid)(disp), [want], rtol=1e-6)


class GradientPenaltyTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_linear_critic(self):
        key_w, key_r, key_f, key = jax.random.split(jax.random.key(0), 4)
        shape = (4, 8, 8, 3)
        w = jax.random.normal(key_w, shape[1:])
        w = w / jnp.linalg.norm(w)
        real = jax.random.uniform(key_r, shape)
        fake = jax.random.uniform(key_f, shape)

        def gp(scale):
            critic = lambda x: scale * jnp.sum(x * w[None], axis=(1, 2, 3))
            return self.variant(lambda r, f, k: gradient_penalty(critic, r, f, k))(real, fake, key)

        np.testing.assert_allclose(gp(1.0), 0.0, atol=1e-6)  # 1-Lipschitz: no penalty
        np.testing.assert_allclose(gp(3.0), 4.0, rtol=1e-5)  # (|grad| - 1)^2 = (3 - 1)^2

    def test_nonlinear_critic_is_penalised_per_sample(self):
        key_r, key_f, key = jax.random.split(jax.random.key(1), 3)
        real = jax.random.uniform(key_r, (3, 4, 4, 1))
        fake = jax.random.uniform(key_f, (3, 4, 4, 1))
        critic = lambda x: jnp.sum(x**2, axis=(1, 2, 3))
        # Independent reference: |grad| = 2 |x_interp| per sample, same eps draw (example b
        # draws from fold_in(key, b)).
        draws = [jax.random.uniform(jax.random.fold_in(key, b), (1, 1, 1)) for b in range(3)]
        eps = jnp.stack(draws)
        interp = eps * real + (1 - eps) * fake
        want = jnp.mean((2 * jnp.sqrt(jnp.sum(interp**2, axis=(1, 2, 3))) - 1) ** 2)
        got = gradient_penalty(critic, real, fake, key)
        assert got > 0
        np.testing.assert_allclose(got, want, rtol=1e-5)
