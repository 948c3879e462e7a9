"""Pair fitting: a known smooth warp is recovered, the area-change bounds hold whatever the
pair, the similarities against direct references; GIFs are written whole."""

import dataclasses
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from jwarp import integrate_svf, jacobian_det, warp
from jwarp.fit import (
    CHECK_TIMES,
    FIT_LOOP,
    FitConfig,
    euler_maps,
    fit_pair,
    level_sizes,
    lncc,
    resize_field,
)
from jwarp.flow import SolverConfig
from jwarp.media import write_gif


def _psnr(a, b):
    return float(-10 * np.log10(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_fit_pair_recovers_a_known_smooth_warp():
    rng = np.random.default_rng(0)
    x0 = ndimage.gaussian_filter(rng.random((1, 32, 32, 3)), (0, 1.5, 1.5, 0))
    x0 = jnp.asarray((x0 - x0.min()) / np.ptp(x0), jnp.float32)
    # The true warp: the flow of a smooth field of up to 1.5 px/unit time.
    v_true = ndimage.gaussian_filter(rng.normal(size=(1, 32, 32, 2)), (0, 5, 5, 0))
    v_true = jnp.asarray(1.5 * v_true / np.abs(v_true).max(), jnp.float32)
    x1 = warp(x0, integrate_svf(v_true, (1.0,)).disp[0])
    before = _psnr(x0, x1)

    v = fit_pair(x0, x1, FitConfig())
    disp = integrate_svf(v, jnp.linspace(0.0, 1.0, 5)).disp
    after = _psnr(warp(x0, disp[-1]), x1)
    assert after > 35.0 and after > before + 10.0, (before, after)
    assert float(jnp.min(jacobian_det(disp.reshape(-1, 32, 32, 2)))) > 0.0  # no folding


@pytest.mark.parametrize("step_size", [0.1, 0.3])
def test_euler_maps_and_their_gradient_match_integrate_svf(step_size):
    # The fit's hand-written backward pass against autodiff of the solver's own loop, on a
    # field that moves up to 6 px, so samples cross cells and leave the frame (clamped).
    rng = np.random.default_rng(5)
    v = ndimage.gaussian_filter(rng.normal(size=(2, 12, 10, 2)), (0, 2, 2, 0))
    v = jnp.asarray(6 * v / np.abs(v).max(), jnp.float32)
    weights = jnp.asarray(rng.normal(size=(2, 2, 12, 10, 2)), jnp.float32)
    solver = SolverConfig(solver="euler", step_size=step_size)
    ref = lambda v: integrate_svf(
        v, CHECK_TIMES, config=solver, loop=FIT_LOOP, penalties=False
    ).disp
    new = lambda v: euler_maps(v, solver, CHECK_TIMES)

    @jax.jit
    def maps_and_grads(v):
        return [jax.value_and_grad(lambda v, f=f: jnp.sum(f(v) * weights))(v) + (f(v),)
                for f in (new, ref)]

    (_, got_grad, got), (_, want_grad, want) = maps_and_grads(v)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got_grad, want_grad, atol=1e-5 * float(jnp.abs(want_grad).max()))


def _smooth_pair(seed, size=32, amplitude=1.5):
    """Smooth random texture ``x0``, a smooth true field and ``x1``, the flow's end frame."""
    rng = np.random.default_rng(seed)
    x0 = ndimage.gaussian_filter(rng.random((1, size, size, 1)), (0, 1.5, 1.5, 0))
    x0 = jnp.asarray((x0 - x0.min()) / np.ptp(x0), jnp.float32)
    v_true = ndimage.gaussian_filter(rng.normal(size=(1, size, size, 2)), (0, 5, 5, 0))
    v_true = jnp.asarray(amplitude * v_true / np.abs(v_true).max(), jnp.float32)
    u_true = integrate_svf(v_true, (1.0,)).disp[0]
    return x0, warp(x0, u_true), u_true


def test_folding_is_ruled_out_even_without_smoothness():
    # A dark disc that must grow from 3 to 12 px radius: a close fit needs area changes near
    # 16x. With no smoothness prior at all, every map of the returned field still keeps J in
    # [1/2, 2] at every pixel, at the checked times and in between.
    yy, xx = np.mgrid[:32, :32] - 15.5
    r = np.hypot(yy, xx)
    x0 = jnp.asarray((r > 3).astype(np.float32)[None, :, :, None])
    x1 = jnp.asarray((r > 12).astype(np.float32)[None, :, :, None])
    cfg = FitConfig(steps=60, smoothness=0.0, max_area_change=2.0, learning_rate=0.5)
    v = fit_pair(x0, x1, cfg)
    disp = integrate_svf(v, np.linspace(0.0, 1.0, 11), config=cfg.solver).disp
    jdet = np.asarray(jacobian_det(disp.reshape(-1, 32, 32, 2)))
    at = [list(np.linspace(0.0, 1.0, 11).round(2)).index(t) for t in CHECK_TIMES]
    checked = jdet.reshape(11, -1)[at]
    assert checked.min() >= 0.5 and checked.max() <= 2.0, (checked.min(), checked.max())
    assert jdet.min() > 0.45 and jdet.max() < 2.2  # between the checks too
    # ... and it moved as far as the bounds allow: the disc's area grew about twofold.
    grown = float(jnp.sum(1 - warp(x0, disp[-1]))) / float(jnp.sum(1 - x0))
    assert 1.6 < grown < 2.3, grown


class LnccTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_lncc_matches_a_direct_windowed_correlation(self):
        rng = np.random.default_rng(1)
        a = rng.random((2, 9, 11, 2)).astype(np.float32)
        b = (0.7 * a + 0.3 * rng.random(a.shape)).astype(np.float32)
        r = 2
        # Reference: each pixel's (2r + 1)^2 window of the edge-extended images, per channel.
        pa, pb = (np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge") for x in (a, b))
        want = np.zeros(2)
        for n in range(2):
            cc2 = []
            for i in range(9):
                for j in range(11):
                    for c in range(2):
                        wa = pa[n, i : i + 2 * r + 1, j : j + 2 * r + 1, c].ravel()
                        wb = pb[n, i : i + 2 * r + 1, j : j + 2 * r + 1, c].ravel()
                        cov = np.mean(wa * wb) - wa.mean() * wb.mean()
                        cc2.append(cov**2 / ((wa.var() + 1e-4) * (wb.var() + 1e-4)))
            want[n] = np.mean(cc2)
        got = self.variant(lambda x, y: lncc(x, y, r))(jnp.asarray(a), jnp.asarray(b))
        np.testing.assert_allclose(got, want, rtol=1e-4)


def test_lncc_ignores_brightness_and_contrast():
    a = jnp.asarray(_smooth_pair(2)[0])
    same = lncc(a, 0.5 * a + 0.4, 3)
    other = lncc(a, jnp.asarray(_smooth_pair(3)[0]), 3)
    assert float(same[0]) > 0.95 and float(other[0]) < 0.3, (same, other)


def test_lncc_fit_recovers_a_warp_under_a_brightness_change():
    # The target is the warped source at half the contrast and brighter: L2 would try to
    # explain the brightness by motion; local correlation sees only the motion.
    x0, x1, u_true = _smooth_pair(4, amplitude=2.0)
    x1 = 0.5 * x1 + 0.4
    cfg = FitConfig(similarity="lncc", smoothness=1.0, lncc_radius=2)
    v = fit_pair(x0, x1, cfg)
    u = integrate_svf(v, (1.0,), config=cfg.solver).disp[0]
    inner = (slice(None), slice(4, -4), slice(4, -4))  # away from the edge-extended border
    error = float(jnp.mean(jnp.linalg.norm((u - u_true)[inner], axis=-1)))
    moved = float(jnp.mean(jnp.linalg.norm(u_true[inner], axis=-1)))
    assert error < 0.35 * moved, (error, moved)


def test_level_sizes_halve_down_to_eight_pixels():
    assert level_sizes(64, 64, 3) == [(16, 16), (32, 32), (64, 64)]
    assert level_sizes(20, 33, 3) == [(10, 17), (20, 33)]  # 5 px would be too coarse
    assert level_sizes(6, 6, 3) == [(6, 6)]
    assert level_sizes(64, 48, 1) == [(64, 48)]


def test_resize_field_keeps_a_uniform_motion_in_each_grid_units():
    v = jnp.broadcast_to(jnp.array([1.0, -2.0]), (1, 8, 16, 2))
    up = resize_field(v, 16, 64)
    np.testing.assert_allclose(up[0, 3, 5], [2.0, -8.0], rtol=1e-6)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("levels", 0, "levels"),
        ("similarity", "ssd", "similarity"),
        ("smoothness", -1.0, "smoothness"),
        ("max_area_change", 1.0, "max_area_change"),
    ],
)
def test_fit_config_rejects_bad_settings(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(FitConfig(), **{field: value})


def test_write_gif_frames_loop_and_atomicity(tmp_path):
    frames = np.linspace(0, 1, 7)[:, None, None, None] * np.ones((7, 5, 6, 4))
    path = tmp_path / "out.gif"
    write_gif(path, frames, fps=10, scale=2)
    with Image.open(path) as im:
        assert im.n_frames == 7 and im.size == (12, 10) and im.info["loop"] == 0
        assert im.info["duration"] == 100
    assert [p.name for p in tmp_path.iterdir()] == ["out.gif"]
    with pytest.raises(ValueError, match="frames"):
        write_gif(tmp_path / "bad.gif", np.zeros((3, 5, 5, 2)))
    assert not (tmp_path / "bad.gif").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.gif"]


def test_outputs_get_normal_permissions(tmp_path):
    from jwarp.files import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", "x")
        write_gif(tmp_path / "b.gif", np.zeros((2, 4, 4, 1)))
    finally:
        os.umask(old)
    for name in ("a.txt", "b.gif"):
        assert (tmp_path / name).stat().st_mode & 0o044 == 0o044  # group/other readable
