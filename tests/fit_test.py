"""Pair fitting recovers a known smooth warp; GIFs are written whole."""

import os

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from jwarp import integrate_svf, jacobian_det, warp
from jwarp.fit import FitConfig, fit_pair
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

    v = fit_pair(x0, x1, FitConfig(steps=150))
    disp = integrate_svf(v, jnp.linspace(0.0, 1.0, 5)).disp
    after = _psnr(warp(x0, disp[-1]), x1)
    assert after > 35.0 and after > before + 10.0, (before, after)
    assert float(jnp.min(jacobian_det(disp.reshape(-1, 32, 32, 2)))) > 0.0  # no folding


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
