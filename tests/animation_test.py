"""Animation: run folders to frames, one fitted pair, GIF/PNG output, and the animate.py CLI."""

import importlib.util
import os
import shutil
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageSequence
from scipy import ndimage

from jwarp import integrate_svf, jacobian_det, warp
from jwarp.animation import (
    Animator,
    _animate_jit,
    animate_pair,
    find_latest_run,
    inference_model,
    svf_animation,
)
from jwarp.checkpoint import Checkpoints
from jwarp.config import load_config, save_config
from jwarp.fit import FitConfig
from jwarp.grid import draw_grid, grid_lines
from jwarp.images import load_image
from jwarp.media import (
    contact_sheet,
    encode_gif,
    write_frames,
    write_gif,
    write_png,
)
from jwarp.models import UNet
from jwarp.objective import generator_in_channels
from jwarp.optim import create_states
from jwarp.steps import make_step_fns

ROOT = Path(__file__).resolve().parents[1]
SIZE = 16
FIT = FitConfig()
TS = np.linspace(0.0, 1.0, 7)  # one T for most tests: fewer compilations


def _psnr(a, b):
    return float(-10 * np.log10(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def _blobs(seed, n, size, channels=1, sigma=2.0):
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random((n, size, size, channels)), (0, sigma, sigma, 0))
    return ((x - x.min()) / np.ptp(x)).astype(np.float32)


def _gif_frames(path):
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGBA")) for f in ImageSequence.Iterator(im)]


@pytest.fixture(scope="module")
def cli():
    spec = importlib.util.spec_from_file_location("animate_cli", ROOT / "animate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pair():
    """Grey blobs shifted by (1, -1) px: x1 is x0 moved down and to the left."""
    big = _blobs(0, 4, SIZE + 8)
    return big[:, 4 : 4 + SIZE, 4 : 4 + SIZE], big[:, 3 : 3 + SIZE, 5 : 5 + SIZE]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, pair):
    """A run folder (runs/shift/) of a stationary smoke model trained on the shifted pair."""
    config = load_config(
        "smoke",
        {
            "data.image_size": SIZE,
            "data.channels": 1,
            "optim.lr": 3e-3,
            "optim.b1": 0.9,
            "optim.weight_decay": 0.0,
            "model.unet.out_scale": 4.0,
        },
    )
    states = create_states(config, jax.random.key(0), 1)
    generator_step = make_step_fns(config, states).generator_step
    gen = states.generator
    batch = {"x0": jnp.asarray(pair[0]), "x1": jnp.asarray(pair[1])}
    workdir = tmp_path_factory.mktemp("project") / "runs" / "shift"
    save_config(config, workdir / "config.toml")
    checkpoints = Checkpoints(workdir / "checkpoints")
    for step in range(1, 61):
        gen, _ = generator_step(gen, None, batch)
        if step in (30, 60):  # an older checkpoint too, to pick by --checkpoint
            checkpoints.save(step, {"generator": gen, "critic": None}, {"step": step})
    checkpoints.close()
    return workdir


@pytest.fixture(scope="module")
def animator(run_dir):
    return Animator.load(run_dir)


# --- library --------------------------------------------------------------------------------


def test_load_picks_checkpoints_and_explains_missing_ones(run_dir, tmp_path):
    latest, older = Animator.load(run_dir), Animator.load(run_dir, checkpoint=30)
    assert (latest.step, older.step) == (60, 30)
    leaves = zip(jax.tree.leaves(latest.params), jax.tree.leaves(older.params))
    assert not all(np.array_equal(a, b) for a, b in leaves)
    with pytest.raises(ValueError, match=r"no checkpoint at step 7 \(available: 30, 60\)"):
        Animator.load(run_dir, checkpoint=7)
    with pytest.raises(ValueError, match="not a run folder"):
        Animator.load(tmp_path)
    save_config(load_config("smoke"), tmp_path / "config.toml")
    with pytest.raises(ValueError, match="no checkpoints"):
        Animator.load(tmp_path)
    assert not (tmp_path / "checkpoints").exists()  # looking does not create folders


def test_latest_run_is_the_newest_with_checkpoints(run_dir, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / "old")
    shutil.copytree(run_dir, runs / "new")
    (runs / "empty").mkdir()
    save_config(load_config("smoke"), runs / "empty" / "config.toml")  # no checkpoints
    for step in ("30", "60"):
        os.utime(runs / "old" / "checkpoints" / step, (1e9, 1e9))
    assert find_latest_run(runs) == runs / "new"
    assert find_latest_run(tmp_path / "nowhere") is None


def test_trained_model_moves_from_the_input_towards_the_target(animator, pair):
    x0, x1 = jnp.asarray(pair[0]), jnp.asarray(pair[1])
    frames = animator.frames(x0, TS)
    chex.assert_shape(frames, (7, 4, SIZE, SIZE, 1))
    np.testing.assert_array_equal(frames[0], x0)  # u_0 = 0 exactly
    err = [float(jnp.mean((f - x1) ** 2)) for f in frames]
    assert err[-1] < 0.5 * err[0], err
    assert np.all(np.diff(err) < 1e-6), err  # monotone approach along the way


def test_backward_from_the_end_frame_returns_to_the_start(animator, pair):
    """Inverse consistency: the flow to t = -1 undoes the flow to t = 1."""
    x0 = jnp.asarray(pair[0])
    x1_hat = animator.frames(x0, TS)[-1]
    back = animator.animate(x0, TS, direction="backward")
    np.testing.assert_allclose(back.frames[0], x1_hat, atol=1e-6)  # starts from the end frame
    assert _psnr(back.frames[-1], x0) > 32.0
    assert _psnr(back.frames[-1], x0) > _psnr(x1_hat, x0) + 8.0
    rewarped = jax.vmap(lambda u: warp(x1_hat, u))(back.disp)
    np.testing.assert_allclose(back.frames, rewarped, atol=1e-6)


def test_boomerang_is_forward_then_back_without_repeating_the_end(animator, pair):
    x0 = jnp.asarray(pair[0])
    forward = animator.frames(x0, TS)
    boom = animator.animate(x0, TS, direction="boomerang")
    chex.assert_shape(boom.frames, (13, 4, SIZE, SIZE, 1))
    chex.assert_shape(boom.disp, (13, 4, SIZE, SIZE, 2))
    np.testing.assert_array_equal(boom.frames[:7], forward)
    np.testing.assert_array_equal(boom.frames[7:], forward[-2::-1])


def test_frames_at_any_times_match_separate_solves(animator, pair):
    """One solve at non-uniform ts equals a solve per t (Euler: float precision).

    Each separate solve saves only at its own t (T copies of it: the same compiled function).
    """
    x0 = jnp.asarray(pair[0])
    ts = np.array([0.0, 0.013, 0.3, 0.31, 0.77, 0.999, 1.0])
    together = animator.frames(x0, ts)
    compiled = _animate_jit._cache_size()
    for k, t in enumerate(ts):
        alone = animator.frames(x0, np.full(len(ts), t))
        np.testing.assert_allclose(together[k], alone[0], atol=2e-6)
        np.testing.assert_array_equal(alone, jnp.broadcast_to(alone[:1], alone.shape))
    assert _animate_jit._cache_size() == compiled  # new times, same shapes: no recompiling


def test_neural_field_frames_at_any_times_match_separate_solves():
    config = load_config(
        "smoke",
        {
            "flow.field": "neural",
            "flow.solver": "heun",
            "model.unet.final_init_std": 0.3,
            "model.unet.out_scale": 2.0,
        },
    )
    x0 = jnp.asarray(_blobs(1, 1, SIZE, 4))
    cond = jnp.zeros((1, SIZE, SIZE, generator_in_channels(config)))
    animator = Animator(config, UNet(config.model.unet).init(jax.random.key(0), cond))
    ts = np.array([0.0, 0.1, 0.55, 0.6, 1.0])
    together = animator.displacements(x0, ts)
    assert float(jnp.abs(together[-1]).max()) > 0.1  # the field does move things
    for k, t in enumerate(ts):
        alone = animator.displacements(x0, np.full(len(ts), t))
        np.testing.assert_allclose(together[k], alone[0], atol=2e-5)


def test_a_wide_unet_animates_with_cached_winograd_kernels_on_cpu():
    """A U-Net as wide as the authors' (256 channels here, on 16 px) runs as Winograd with
    kernels transformed once per parameters, on CPU only: the frames equal the ``lax`` U-Net's
    (the neural field: the U-Net runs at every solver step). A narrow U-Net is left as it is."""
    wide = {
        "flow.field": "neural",
        "model.unet.decoder": [256, 8],
        "model.unet.final_init_std": 0.3,
        "model.unet.out_scale": 2.0,
    }
    config = load_config("smoke", wide)
    cond = jnp.zeros((1, SIZE, SIZE, generator_in_channels(config)))
    params = UNet(config.model.unet).init(jax.random.key(0), cond)
    run_config, variables = inference_model(config, params)
    assert run_config == config
    if jax.default_backend() == "cpu":
        assert set(variables) == {"params", "winograd"}
    else:
        assert variables == params
    x0 = jnp.asarray(_blobs(3, 1, SIZE, 4))
    frames = Animator(config, params).frames(x0, TS)
    lax_config = load_config("smoke", {**wide, "execution.unet_conv": "lax"})
    want = _animate_jit(lax_config, params, x0, None, jnp.asarray(TS), "forward", None).frames
    assert float(jnp.abs(want[-1] - x0).max()) > 0.02  # the field does move things
    np.testing.assert_allclose(frames, want, atol=1e-5)
    narrow = load_config("smoke", {"flow.field": "neural"})
    assert inference_model(narrow, params) == (narrow, params)


def test_inputs_are_checked(animator, pair):
    x0 = jnp.asarray(pair[0])
    with pytest.raises(ValueError, match="pass no x1"):
        animator.frames(x0, [1.0], x1=x0)
    with pytest.raises(ValueError, match="1-channel images, got 3"):
        animator.frames(jnp.zeros((1, SIZE, SIZE, 3)), [1.0])
    with pytest.raises(ValueError, match="ts"):
        animator.frames(x0, [0.5, 0.2])
    with pytest.raises(ValueError, match="direction"):
        animator.frames(x0, [1.0], direction="sideways")
    pair_model = Animator(load_config("smoke", {"model.condition": "pair"}), None)
    with pytest.raises(ValueError, match="pass x1"):
        pair_model.frames(jnp.zeros((1, SIZE, SIZE, 4)), [1.0])


def test_animate_pair_recovers_a_known_smooth_warp_without_folding():
    rng = np.random.default_rng(0)
    x0 = jnp.asarray(_blobs(2, 1, 32, 3, sigma=1.5))
    v_true = ndimage.gaussian_filter(rng.normal(size=(1, 32, 32, 2)), (0, 5, 5, 0))
    v_true = jnp.asarray(1.5 * v_true / np.abs(v_true).max(), jnp.float32)
    x1 = svf_animation(v_true, x0, x0, TS).frames[-1]  # jitted as below
    before = _psnr(x0, x1)
    anim = animate_pair(x0, x1, TS, FIT, morph=False)
    np.testing.assert_array_equal(anim.frames[0], x0)
    after = _psnr(anim.frames[-1], x1)
    assert after > 35.0 and after > before + 10.0, (before, after)
    assert float(jnp.min(jacobian_det(anim.disp.reshape(-1, 32, 32, 2)))) > 0.0  # no folding
    # Backward from x1 returns close to x0 (the fit is compiled once: a second costs little).
    back = animate_pair(x0, x1, TS, FIT, direction="backward", morph=False)
    np.testing.assert_array_equal(back.frames[0], x1)
    assert _psnr(back.frames[-1], x0) > 30.0 and _psnr(back.frames[-1], x0) > before + 5.0


def test_morph_starts_on_the_source_ends_on_the_target_and_blends_both_flows():
    rng = np.random.default_rng(3)
    x0, x1 = (jnp.asarray(_blobs(s, 1, SIZE, 3)) for s in (4, 5))
    v = ndimage.gaussian_filter(rng.normal(size=(1, SIZE, SIZE, 2)), (0, 3, 3, 0))
    v = jnp.asarray(2.0 * v / np.abs(v).max(), jnp.float32)
    solver = FIT.solver
    anim = svf_animation(v, x0, x1, TS, "forward", solver, True)
    np.testing.assert_array_equal(anim.frames[0], x0)
    np.testing.assert_array_equal(anim.frames[-1], x1)
    # Every frame against the two flows solved on their own at that time alone.
    for k in (2, 4):
        t = float(TS[k])
        fwd = integrate_svf(v, (t,), config=solver, penalties=False).disp[0]
        back = integrate_svf(v, (1 - t,), direction="backward", config=solver,
                             penalties=False).disp[0]
        want = (1 - t) * warp(x0, fwd) + t * warp(x1, back)
        np.testing.assert_allclose(anim.frames[k], want, atol=2e-5)
        np.testing.assert_allclose(anim.disp[k], fwd, atol=2e-5)
    # Without motion it is the cross-dissolve; backward plays the same frames in reverse.
    still = svf_animation(jnp.zeros_like(v), x0, x1, TS, "forward", solver, True)
    w = TS.reshape(-1, 1, 1, 1, 1)
    dissolve = (1 - w) * np.asarray(x0)[None] + w * np.asarray(x1)[None]
    np.testing.assert_allclose(still.frames, dissolve, atol=1e-6)
    back = svf_animation(v, x0, x1, TS, "backward", solver, True)
    np.testing.assert_allclose(back.frames, anim.frames[::-1], atol=1e-6)


# --- media ----------------------------------------------------------------------------------


def test_gif_keeps_every_frame_loop_and_timing(tmp_path):
    still = np.full((5, 6, 7, 3), 0.25, np.float32)  # identical frames are not merged
    path = write_gif(tmp_path / "s.gif", still, fps=20, scale=3, pause=0.5)
    with Image.open(path) as im:
        assert (im.n_frames, im.size, im.info["loop"]) == (5, (21, 18), 0)
        durations = [f.info["duration"] for f in ImageSequence.Iterator(im)]
    assert durations == [50, 50, 50, 50, 550]
    with Image.open(write_gif(tmp_path / "t.gif", still, fps=30)) as im:
        total = sum(f.info["duration"] for f in ImageSequence.Iterator(im))
    assert total == 170  # 5/30 s in whole centiseconds: 3, 4, 3, 3, 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.gif", "t.gif"]


def test_gif_colours_grey_exact_rgb_global_palette():
    rng = np.random.default_rng(0)
    grey = rng.random((4, 8, 8, 1)).astype(np.float32)
    back = np.stack(_gif_frames_from_bytes(encode_gif(grey)))
    np.testing.assert_array_equal(back[..., 0], np.round(grey[..., 0] * 255))
    # Many colours: a static half must not flicker, and colours stay close (no dithering).
    rgb = rng.random((6, 16, 16, 3)).astype(np.float32)
    rgb[:, :, :8] = rgb[0, :, :8]
    back = np.stack(_gif_frames_from_bytes(encode_gif(rgb)))[..., :3].astype(np.float32)
    assert np.all(back[:, :, :8] == back[:1, :, :8])
    assert _psnr(back / 255, rgb) > 25.0


def test_gif_rgba_is_transparent_below_half_alpha(tmp_path):
    frames = np.zeros((3, 8, 8, 4), np.float32)
    frames[..., :3] = [0.9, 0.6, 0.3]
    frames[:, 2:6, 2:6, 3] = 1.0
    frames[:, 2:6, 1, 3] = 0.4  # below half: transparent
    frames[1, 0, 0, 3] = 0.6  # above half: drawn
    write_gif(tmp_path / "a.gif", frames)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.info["transparency"] == 255
        im.seek(1)
        assert im.disposal_method == 2
    back = np.stack(_gif_frames(tmp_path / "a.gif"))
    np.testing.assert_array_equal(back[..., 3] > 0, frames[..., 3] >= 0.5)
    assert np.all(back[frames[..., 3] >= 0.5][:, :3] == [230, 153, 76])


def _gif_frames_from_bytes(data):
    import io

    with Image.open(io.BytesIO(data)) as im:
        return [np.asarray(f.convert("RGBA")) for f in ImageSequence.Iterator(im)]


def test_a_gif_write_that_dies_or_fails_leaves_the_old_file_and_no_part(tmp_path, monkeypatch):
    import jwarp.files

    gif = tmp_path / "a.gif"
    write_gif(gif, np.zeros((3, 4, 4, 1)))
    before = gif.read_bytes()

    def dies(src, dst):  # killed between writing the temporary file and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(jwarp.files.os, "replace", dies)
    with pytest.raises(KeyboardInterrupt):
        write_gif(gif, np.ones((3, 4, 4, 1)))
    monkeypatch.undo()
    assert gif.read_bytes() == before and os.listdir(tmp_path) == ["a.gif"]

    monkeypatch.setattr(jwarp.files.os, "fdopen", lambda fd, mode: _Failing(fd))
    with pytest.raises(OSError) as info:
        write_png(tmp_path / "b.png", np.zeros((4, 4, 1)))
    assert info.value.filename == str(tmp_path / "b.png")  # the file asked for, not its temp
    assert info.value.strerror == "No space left on device"
    assert os.listdir(tmp_path) == ["a.gif"]


class _Failing:
    """A file whose writes fail as on a full disk."""

    def __init__(self, fd):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def write(self, data):
        raise OSError(28, "No space left on device")


def test_png_frames_and_contact_sheet(tmp_path):
    frames = np.linspace(0, 1, 10, dtype=np.float32)[:, None, None, None] * np.ones((10, 4, 5, 4))
    write_frames(tmp_path / "f", np.zeros((12, 4, 5, 4)))  # stale frames of an earlier run
    paths = write_frames(tmp_path / "f", frames)
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [p.name for p in paths]
    assert len(paths) == 10 and Image.open(paths[3]).mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(Image.open(paths[3])), np.round(frames[3] * 255))
    sheet = contact_sheet(frames, 4)
    chex.assert_shape(sheet, (4, 20, 4))
    np.testing.assert_array_equal(sheet[:, :5], frames[0])
    np.testing.assert_array_equal(sheet[:, -5:], frames[-1])
    write_png(tmp_path / "s.png", sheet)
    assert Image.open(tmp_path / "s.png").size == (20, 4)


def test_grid_lines_move_with_the_warp():
    frames = np.zeros((2, 16, 16, 3), np.float32)
    disp = np.zeros((2, 16, 16, 2), np.float32)
    disp[1] = (0.0, 2.0)  # pull-back by +2 columns: content moves 2 px left
    drawn = draw_grid(frames, disp, spacing=8, color=(1.0, 1.0, 1.0), opacity=1.0)
    lines = grid_lines(16, 16, 8)
    np.testing.assert_array_equal(drawn[0, ..., 0], lines)
    np.testing.assert_array_equal(drawn[1, :, :-2, 0], lines[:, 2:])


def test_load_image_converts_and_says_what_it_did(tmp_path):
    rgb = (np.arange(40 * 30 * 3) % 251).astype(np.uint8).reshape(30, 40, 3)
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    image, note = load_image(tmp_path / "wide.png", 16, 4)
    chex.assert_shape(image, (16, 16, 4))
    assert np.all(image[..., 3] == 1.0)
    assert "centre-cropped to 30x30" in note and "resized to 16x16" in note
    assert "RGB -> RGBA" in note
    Image.fromarray(rgb[:16, :16, 0]).save(tmp_path / "grey.png")
    image, note = load_image(tmp_path / "grey.png", None, None)
    assert note is None and image.shape == (16, 16, 1)
    np.testing.assert_array_equal(np.round(image[..., 0] * 255), rgb[:16, :16, 0])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png: cannot read image") as info:
        load_image(tmp_path / "bad.png", 16, 1)
    assert "\n" not in str(info.value)


def test_load_image_says_an_animated_input_gives_its_first_frame(tmp_path, write_bad_images):
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (40, 200, 120)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    image, note = load_image(tmp_path / "anim.gif", None, 1)
    np.testing.assert_allclose(image, 40 / 255, atol=1e-6)
    assert note is not None and "first of its 3 frames" in note
    write_bad_images(tmp_path)
    with pytest.raises(ValueError, match="bomb.png: cannot read image .*decompression-bomb"):
        load_image(tmp_path / "bomb.png", 16, 1)


# --- animate.py -----------------------------------------------------------------------------


def _one_line_error(capsys, code, needle):
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and err[0].startswith("animate.py: error:"), err


def test_cli_gif_frames_sheet_from_an_input(cli, run_dir, pair, tmp_path, capsys):
    write_png(tmp_path / "in.png", pair[0][0])
    out, frames_dir = tmp_path / "in.gif", tmp_path / "frames"
    argv = ["--workdir", str(run_dir), "--input", str(tmp_path / "in.png"), "--out", str(out)]
    assert cli.main([*argv, "--frames-dir", str(frames_dir), "--sheet", "5"]) == 0
    with Image.open(out) as im:
        assert (im.n_frames, im.size, im.info["loop"]) == (120, (SIZE, SIZE), 0)
    gif = _gif_frames(out)
    first = np.asarray(Image.open(tmp_path / "in.png"))
    np.testing.assert_array_equal(gif[0][..., 0], first)  # the input, to 8-bit rounding
    x1 = np.round(pair[1][0, ..., 0] * 255)
    assert np.mean((gif[-1][..., 0] - x1) ** 2) < 0.5 * np.mean((gif[0][..., 0] - x1) ** 2)
    assert len(list(frames_dir.glob("frame_*.png"))) == 120
    assert Image.open(tmp_path / "in_sheet.png").size == (5 * SIZE, SIZE)

    assert cli.main([*argv, "--direction", "boomerang", "--t-steps", "7", "--grid"]) == 0
    with Image.open(out) as im:
        assert im.n_frames == 13


def test_cli_without_arguments_animates_test_images_of_the_latest_run(
    cli, run_dir, monkeypatch, capsys
):
    monkeypatch.chdir(run_dir.parents[1])  # the project folder holding runs/
    assert cli.main(["--t-steps", "7"]) == 0  # the test images: compiled as in the tests above
    gifs = sorted((run_dir.parents[1] / "animations").glob("*.gif"))
    assert [g.name for g in gifs] == [f"shift_test{i}.gif" for i in range(4)]
    assert Image.open(gifs[0]).n_frames == 7
    assert "at step 60" in capsys.readouterr().out


def test_cli_fits_a_pair_when_there_is_no_run(cli, tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    x0 = _blobs(2, 1, 32, 3, sigma=1.5)[0]
    v = ndimage.gaussian_filter(rng.normal(size=(1, 32, 32, 2)), (0, 5, 5, 0))
    v = jnp.asarray(1.5 * v / np.abs(v).max(), jnp.float32)
    x1 = np.asarray(svf_animation(v, x0[None], x0[None], TS).frames[-1, 0])
    write_png(tmp_path / "a.png", x0)
    write_png(tmp_path / "b.png", x1)
    monkeypatch.chdir(tmp_path)
    argv = ["--input", "a.png", "--target", "b.png", "--t-steps", "7", "--no-morph",
            "--save-field", "u.npy"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "no trained run" in out and "fitted in" in out
    # The summary line's measures are those of the saved end map.
    u = np.load(tmp_path / "u.npy", allow_pickle=False)
    assert u.shape == (32, 32, 2) and u.dtype == np.float32
    min_det = float(out.split("smallest det J ")[1].split(",")[0])
    assert min_det == pytest.approx(float(jacobian_det(jnp.asarray(u[None])).min()), abs=0.01)
    assert min_det > 0.3 and "folded 0.00 %" in out
    x0_png = load_image(tmp_path / "a.png", 32, 3)[0]
    warped = np.asarray(warp(jnp.asarray(x0_png[None]), jnp.asarray(u[None])))[0]
    assert _psnr(warped, x1) > _psnr(x0_png, x1) + 10.0
    gif = _gif_frames(tmp_path / "animations" / "a.gif")
    assert len(gif) == 7
    # Both through the GIF's 256-colour palette, which caps the PSNR near 30 dB here.
    after, before = _psnr(gif[-1][..., :3] / 255, x1), _psnr(gif[0][..., :3] / 255, x1)
    assert after > before + 2.0, (before, after)
    write_png(tmp_path / "c.png", np.concatenate([x1, np.full_like(x1[..., :1], 0.3)], -1))
    _one_line_error(
        capsys, cli.main(["--fit", "--input", "a.png", "--target", "c.png"]), "mismatched channels"
    )


def test_cli_morph_ends_on_the_target_at_the_output_size(cli, tmp_path, monkeypatch, capsys):
    x0, x1 = _blobs(6, 1, 48, 1)[0], _blobs(7, 1, 48, 1)[0]
    write_png(tmp_path / "a.png", x0)
    write_png(tmp_path / "b.png", x1)
    monkeypatch.chdir(tmp_path)
    argv = ["--fit", "--input", "a.png", "--target", "b.png", "--t-steps", "5", "--fit-size",
            "24", "--out", "m.gif", "--frames-dir", "frames", "--save-field", "u.npy"]
    assert cli.main(argv) == 0
    assert "as a morph" in capsys.readouterr().out
    frames = [load_image(tmp_path / "frames" / f"frame_{k:04d}.png", 48, 1)[0] for k in (0, 4)]
    np.testing.assert_allclose(frames[0], load_image(tmp_path / "a.png", 48, 1)[0], atol=1e-6)
    np.testing.assert_allclose(frames[1], load_image(tmp_path / "b.png", 48, 1)[0], atol=1e-6)
    assert np.load(tmp_path / "u.npy").shape == (48, 48, 2)  # the output's size, not the fit's


def test_cli_errors_are_one_line(cli, run_dir, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    good = tmp_path / "good.png"
    write_png(good, np.zeros((SIZE, SIZE, 1)))
    w = ["--workdir", str(run_dir)]
    _one_line_error(capsys, cli.main([*w, "--input", str(tmp_path / "bad.png")]), "bad.png")
    _one_line_error(capsys, cli.main([*w, "--input", str(good), "--target", str(good)]), "--target")
    _one_line_error(capsys, cli.main([*w, "--checkpoint", "5"]), "no checkpoint at step 5")
    _one_line_error(capsys, cli.main([*w, "--input", str(tmp_path / "*.jpg")]), "no files")
    _one_line_error(capsys, cli.main([*w, "--t-steps", "1"]), "--t-steps")


def test_cli_saves_the_end_map_that_makes_the_last_frame(cli, run_dir, animator, pair, tmp_path):
    for i in range(2):
        write_png(tmp_path / f"in{i}.png", pair[0][i])
    x = np.stack([load_image(tmp_path / f"in{i}.png", SIZE, 1)[0] for i in range(2)])
    end = np.asarray(animator.frames(jnp.asarray(x), [1.0]))[-1]
    w = ["--workdir", str(run_dir), "--t-steps", "7"]
    one = ["--input", str(tmp_path / "in0.png"), "--out", str(tmp_path / "a.gif")]
    for direction in ("forward", "backward"):  # backward saves the same forward end map
        field_path = tmp_path / f"{direction}.npy"
        argv = [*w, *one, "--direction", direction, "--save-field", str(field_path)]
        assert cli.main(argv) == 0
        u = np.load(field_path, allow_pickle=False)
        assert u.shape == (SIZE, SIZE, 2) and u.dtype == np.float32
        # Pull-back: the frame at t = 1 is the input sampled at s + u(s).
        np.testing.assert_allclose(warp(jnp.asarray(x[:1]), jnp.asarray(u[None]))[0], end[0],
                                   atol=1e-5)
    both = ["--input", str(tmp_path / "in*.png"), "--out", str(tmp_path / "gifs")]
    assert cli.main([*w, *both, "--save-field", str(tmp_path / "fields")]) == 0
    for i in range(2):
        u = np.load(tmp_path / "fields" / f"in{i}.npy")
        np.testing.assert_allclose(warp(jnp.asarray(x[i : i + 1]), jnp.asarray(u[None]))[0],
                                   end[i], atol=1e-5)


def test_a_model_folder_animates_through_model_and_checks_its_digest(
    cli, run_dir, animator, pair, tmp_path, capsys
):
    from jwarp import pretrained

    folder = pretrained.export(run_dir, tmp_path / "shift", commands=["python train.py ..."])
    loaded = pretrained.load(str(folder))
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(animator.params)):
        np.testing.assert_array_equal(a, b)
    assert loaded.config == animator.config and loaded.step == 60
    assert pretrained.card(str(folder))["commands"][0] == "python train.py ..."
    write_png(tmp_path / "in.png", pair[0][0])
    argv = ["--model", str(folder), "--input", str(tmp_path / "in.png"), "--t-steps", "7",
            "--out", str(tmp_path / "in.gif")]
    assert cli.main(argv) == 0
    assert "model: shipped model" in capsys.readouterr().out
    _one_line_error(capsys, cli.main(["--model", str(folder)]), "--input")
    _one_line_error(capsys, cli.main(["--model", "nosuch", "--input", str(tmp_path / "in.png")]),
                    "no such shipped model")
    blob = bytearray((folder / "params.msgpack").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (folder / "params.msgpack").write_bytes(bytes(blob))
    with pytest.raises(pretrained.PretrainedError, match="params.msgpack: SHA-256"):
        pretrained.load(str(folder))
    _one_line_error(capsys, cli.main(argv), "damaged")
