"""Quality measures against independent references (scikit-image, scipy, constructed cases)."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jwarp import metrics


def _images(seed, shape):
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random(shape), (0, 1.5, 1.5, 0))
    return ((x - x.min()) / np.ptp(x)).astype(np.float32)


class MetricsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_psnr_matches_skimage(self):
        a = _images(0, (3, 20, 24, 3))
        b = np.clip(a + 0.05 * np.random.default_rng(1).standard_normal(a.shape), 0, 1)
        got = self.variant(metrics.psnr)(jnp.asarray(a), jnp.asarray(b.astype(np.float32)))
        want = [peak_signal_noise_ratio(a[i], b[i].astype(np.float32), data_range=1.0)
                for i in range(3)]
        np.testing.assert_allclose(got, want, rtol=1e-5)
        assert np.isinf(metrics.psnr(jnp.asarray(a), jnp.asarray(a))).all()

    @chex.variants(with_jit=True, without_jit=True)
    def test_ssim_matches_skimage_gaussian_ssim(self):
        for channels in (1, 4):
            a = _images(2, (2, 32, 28, channels))
            b = np.roll(a, 1, axis=2) * 0.9 + 0.05
            got = self.variant(metrics.ssim)(jnp.asarray(a), jnp.asarray(b))
            want = [
                structural_similarity(a[i], b[i], data_range=1.0, channel_axis=-1,
                                      gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
                for i in range(2)
            ]
            np.testing.assert_allclose(got, want, atol=2e-5)
        np.testing.assert_allclose(metrics.ssim(jnp.asarray(a), jnp.asarray(a)), 1.0, atol=1e-6)

    def test_ssim_rejects_images_smaller_than_its_window(self):
        with pytest.raises(ValueError, match="at least 11x11"):
            metrics.ssim(jnp.zeros((1, 8, 8, 1)), jnp.zeros((1, 8, 8, 1)))

    def test_masked_psnr_only_sees_the_mask(self):
        a = _images(3, (2, 16, 16, 2))
        b = a.copy()
        b[:, :4] += 0.1  # error only in the top rows
        mask = np.zeros((2, 16, 16), np.float32)
        mask[:, :8] = 1
        got = metrics.masked_psnr(jnp.asarray(a), jnp.asarray(b), jnp.asarray(mask))
        # MSE over the masked half: 0.01 on a half of it.
        np.testing.assert_allclose(got, 10 * np.log10(1 / 0.005), rtol=1e-4)

    def test_motion_mask_grows_the_difference(self):
        x0 = np.zeros((1, 12, 12, 1), np.float32)
        x1 = x0.copy()
        x1[0, 5, 6] = 1.0
        mask = np.asarray(metrics.motion_mask(jnp.asarray(x0), jnp.asarray(x1), grow=2))
        want = np.zeros((12, 12))
        want[3:8, 4:9] = 1
        np.testing.assert_array_equal(mask[0], want)

    @chex.variants(with_jit=True, without_jit=True)
    def test_negative_jacobian_fraction_counts_a_constructed_fold(self):
        h = w = 8
        disp = np.zeros((3, 2, h, w, 2), np.float32)
        disp[1, 0, :, 4, 1] = -1.5  # column 4 jumps left past column 3: cells (.., 3) fold
        got = self.variant(metrics.negative_jacobian_fraction)(jnp.asarray(disp))
        # cells anchored at column 3 have d(dx)/dx = -1.5 -> J = -0.5; at column 4 J = 2.5.
        np.testing.assert_allclose(got, [(h - 1) / (3 * (h - 1) * (w - 1)), 0.0], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_jacobian_measures_of_affine_maps_are_their_constant_determinant(self):
        h, w = 9, 11
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        # phi = A g + b, so u = (A - I) g + b and J = det A everywhere.
        mats = {0.5: [[0.5, 0.0], [0.0, 1.0]], 6.0: [[2.0, 1.0], [0.0, 3.0]],
                -1.0: [[0.0, 1.0], [1.0, 0.0]], 1.0: [[1.0, 0.4], [0.0, 1.0]]}
        disp = []
        for a in mats.values():
            a = np.asarray(a, np.float32) - np.eye(2, dtype=np.float32)
            u = np.stack([a[0, 0] * rows + a[0, 1] * cols + 3.0,
                          a[1, 0] * rows + a[1, 1] * cols - 1.0], -1)
            disp.append(u)
        disp = np.stack(disp).astype(np.float32)[None]  # [T=1, B=4, H, W, 2]
        # A second frame at the identity: the smallest J over frames is min(det A, 1).
        traj = jnp.asarray(np.concatenate([disp, np.zeros_like(disp)]))
        got = self.variant(metrics.jacobian_measures)(traj)
        dets = np.array(list(mats))
        np.testing.assert_allclose(got["min_det"], np.minimum(dets, 1.0), rtol=1e-5)
        np.testing.assert_allclose(got["fold_frac"], 0.5 * (dets <= 0))
        np.testing.assert_allclose(got["extreme_frac"], 0.5 * ((dets < 0.25) | (dets > 4)))

    @chex.variants(with_jit=True, without_jit=True)
    def test_bending_energy_of_quadratic_maps_is_closed_form(self):
        h, w = 10, 12
        y, x = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                           indexing="ij")
        a, b, c = 0.3, -0.2, 0.05
        quad = a * y**2 / 2 + b * x * y + c * x**2 / 2
        affine = 2.0 * y - 0.5 * x + 1.0
        disp = np.stack([np.stack([quad, affine], -1), np.stack([affine, 2 * quad], -1)])
        got = self.variant(metrics.bending_energy)(jnp.asarray(disp.astype(np.float32)))
        want = a**2 + 2 * b**2 + c**2
        np.testing.assert_allclose(got, [want, 4 * want], rtol=1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    def test_naturalness_measures_every_frame_and_bends_the_last(self):
        h, w = 10, 12
        y, x = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                           indexing="ij")
        # Frame 0 mirrors (folds) everything; frame 1, the last, bends with known energy.
        fold = np.stack([-2.0 * y, np.zeros_like(x)], -1)  # phi_y = -y: J = -1 everywhere
        a = 0.02
        bend = np.stack([a * x**2 / 2, np.zeros_like(x)], -1)  # J = 1 (d phi_y / dy = 1)
        traj = jnp.asarray(np.stack([fold, bend])[:, None].astype(np.float32))  # [2, 1, H, W, 2]
        got = self.variant(metrics.naturalness)(traj)
        np.testing.assert_allclose(got["min_det"], [-1.0], rtol=1e-5)
        np.testing.assert_allclose(got["fold_frac"], [0.5])
        np.testing.assert_allclose(got["extreme_frac"], [0.5])
        np.testing.assert_allclose(got["bending"], [a**2], rtol=1e-4)  # u_y,xx = a only

    def test_inverse_psnr_of_an_exact_inverse_is_infinite_and_of_a_wrong_one_finite(self):
        x0 = jnp.asarray(_images(4, (2, 16, 16, 1)))
        zero = jnp.zeros((2, 16, 16, 2))
        assert np.isinf(metrics.inverse_psnr(x0, x0, zero)).all()
        shift = zero.at[..., 1].set(2.0)  # translations: border rows make it inexact
        back = metrics.inverse_psnr(x0, x0, shift)
        np.testing.assert_allclose(back, metrics.psnr(x0, _shifted(x0, 2)), rtol=1e-5)


def _shifted(x, dx):
    """``x(row, col + dx)`` with edge clamping, in numpy (integer shift)."""
    x = np.asarray(x)
    cols = np.clip(np.arange(x.shape[2]) + dx, 0, x.shape[2] - 1)
    return jnp.asarray(x[:, :, cols])


def test_stroke_count_uses_eight_connectivity():
    im = np.zeros((3, 10, 10, 1), np.float32)
    im[0, 2:8, 2] = 1  # one bar
    im[1, 2:4, 2:4] = 1  # two blobs
    im[1, 6:8, 6:8] = 1
    im[2, 3, 3] = im[2, 4, 4] = im[2, 5, 5] = 1  # a diagonal: one piece with 8-connectivity
    np.testing.assert_array_equal(metrics.stroke_count(im), [1, 2, 1])


