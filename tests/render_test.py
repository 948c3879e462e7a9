"""``animate.py`` (``jwarp.render``): outputs checked against inputs and each other, bounds on
sizes and frames, and no non-finite animation written; before any frame is made."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jwarp import render
from jwarp.animation import Animation
from jwarp.cli import run_cli
from jwarp.errors import AnimationError
from jwarp.render import Rendered
from jwarp.render_options import MAX_SIDE, MAX_T_STEPS, RenderOptions, check_frames

GIB = 1024**3


def _animate(argv):
    from jwarp.commands import animate

    return lambda _: animate._main(argv, "animate.py")


def _one_line(capsys, code):
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def _png(path, h=8, w=8, channels=3, value=120):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    shape = (h, w, channels) if channels > 1 else (h, w)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)


def _listing(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def scene(tmp_path, monkeypatch):
    """The current folder, holding 8x8 ``a.png`` and ``b.png`` and ``photo.gif``."""
    monkeypatch.chdir(tmp_path)
    _png("a.png")
    _png("b.png", value=30)
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save("photo.gif")
    return tmp_path


@pytest.fixture
def fits(monkeypatch):
    """Stands in for pair fitting: each input's 5-frame animation, recorded in the list."""
    calls = []

    def fit(opts, ts, log):
        calls.append(opts)
        frames = np.linspace(0, 1, 5, dtype=np.float32)[:, None, None, None] * np.ones((5, 8, 8, 3))
        disp = np.zeros((5, 8, 8, 2), np.float32)
        return [Rendered(render.Path(p).stem, Animation(frames, disp), disp[-1])
                for p in render.expand_inputs(opts.inputs)]

    monkeypatch.setattr(render, "_fit_animations", fit)
    return calls


FIT = ["--fit", "--target", "b.png", "--t-steps", "5"]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--input", "photo.gif", "--out", "photo.gif"],
         "--out photo.gif: is the input --input photo.gif; it would be replaced"),
        (["--input", "a.png", "--out", "hard.gif"],  # a hard link to --fit's other input
         "--out hard.gif: is the input --target b.png; it would be replaced"),
        (["--input", "photo.gif", "--out", "link.gif"],
         "--out link.gif: is the input --input photo.gif"),
        (["--input", "d/p.gif", "d/q.gif", "--out", "d/"],
         "--out d/p.gif: is the input --input d/p.gif"),
        (["--input", "a.png", "--out", "x.gif", "--save-field", "x.gif"],
         "--save-field x.gif/a.npy: lies in x.gif, the output of --out"),
        (["--input", "a.png", "--out", "x.gif", "--frames-dir", "x.gif"],
         "--frames-dir x.gif: is also the output of --out x.gif"),
        (["--input", "a.png", "--out", "x.gif", "--sheet", "3", "--save-field", "x_sheet.png"],
         "--save-field x_sheet.png/a.npy: lies in x_sheet.png, the output of --sheet"),
    ],
    ids=["out-is-input", "out-is-target", "out-links-to-input", "out-folder-of-inputs",
         "save-field-in-out", "frames-dir-is-out", "save-field-in-sheet"],
)
def test_an_output_that_is_an_input_or_another_output_is_refused_first(
    scene, fits, capsys, argv, line
):
    """Issue 32 #2: the input overwritten (exit 0), or one output failing after the render."""
    os.symlink("photo.gif", "link.gif")
    os.link("b.png", "hard.gif")
    for name in ("p.gif", "q.gif"):
        _png(scene / "d" / name)
    before = _listing(scene)
    got = _one_line(capsys, run_cli("animate.py", _animate([*FIT, *argv]), []))
    assert got.startswith(f"animate.py: error: {line}"), got
    assert fits == []  # before any fitting
    assert _listing(scene) == before  # every input as it was, nothing new


def test_colliding_names_give_one_animation_each(scene, fits, capsys):
    """Issue 32 #4: a.png, a_2.png and sub/a.png gave two animations, a_2.gif written twice."""
    _png("a_2.png")
    _png("sub/a.png")
    argv = [*FIT, "--input", "a.png", "a_2.png", "sub/a.png", "--out", "out/"]
    assert run_cli("animate.py", _animate(argv), []) == 0
    assert sorted(os.listdir("out")) == ["a.gif", "a_2.gif", "a_3.gif"]
    assert capsys.readouterr().out.count("wrote ") == 3


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--sheet", "0"], ["--sheet: expected a number of frames from 1 to 100, got 0"]),
        (["--sheet", "1000000"], ["--sheet: expected a number of frames from 1 to 100, got"]),
        (["--grid", "0"], ["--grid: expected a spacing >= 2 pixels, got 0"]),
        (["--grid", "-5"], ["--grid: expected a spacing >= 2 pixels, got -5"]),
        (["--scale", "100000"], ["--scale: expected an integer from 1 to 64, got 100000"]),
        (["--t-steps", "3000000"], [f"--t-steps: expected 2 to {MAX_T_STEPS} frames"]),
        (["--t-steps", "100000000"], [f"--t-steps: expected 2 to {MAX_T_STEPS} frames"]),
        (["--size", "50000"], [f"--size: expected 8 to {MAX_SIDE} pixels, got 50000"]),
        (["--fps", "0.001"], ["--fps: expected 0.1 to 120 frames per second, got 0.001"]),
        (["--fps", "1e-300"], ["--fps: expected 0.1 to 120 frames per second, got 1e-300"]),
        (["--fps", "inf"], ["--fps: expected 0.1 to 120 frames per second, got inf"]),
        (["--fps", "nan"], ["--fps: expected 0.1 to 120 frames per second, got nan"]),
        (["--pause", "inf"], ["--pause: expected 0 to 60 seconds, got inf"]),
        (["--pause", "1000"], ["--pause: expected 0 to 60 seconds, got 1000"]),
        (["--pause", "1e9"], ["--pause: expected 0 to 60 seconds, got 1000000000"]),
        (["--fit-steps", "3000000000"], ["--fit-steps: expected 1 to 10000 steps, got 3000000000"]),
        (["--fit-steps", "100000000"], ["--fit-steps: expected 1 to 10000 steps, got 100000000"]),
        (["--fit-smoothness", "inf"], ["--fit-smoothness: expected a finite number >= 0"]),
    ],
    ids=["sheet-0", "sheet-huge", "grid-0", "grid-negative", "scale", "t-steps", "t-steps-huge",
         "size", "fps-tiny", "fps-tinier", "fps-inf", "fps-nan", "pause-inf", "pause-1000",
         "pause-1e9", "fit-steps-overflow", "fit-steps-hours", "fit-smoothness-inf"],
)
def test_flags_out_of_bounds_are_one_line_before_any_work(scene, fits, capsys, flags, needles):
    """Issue 32 #9, #10, #13: tracebacks, minutes of silence, 0 silently ignored."""
    argv = ["--fit", "--input", "a.png", "--target", "b.png", "--out", "x.gif", *flags]
    line = _one_line(capsys, run_cli("animate.py", _animate(argv), []))
    for needle in needles:
        assert needle in line, line
    assert fits == [] and not os.path.exists("x.gif")


@pytest.mark.parametrize("fmt", ["gif", "webp", "mp4"])
def test_the_timing_bounds_keep_every_format_valid(tmp_path, fmt):
    """Issue 32 (held out): GIF's 16-bit delays overflowed at --fps 0.001 or --pause 1000;
    MP4 repeats the last frame pause x fps times. At the bounds each format is written."""
    from jwarp import media
    from jwarp.render_options import MAX_FPS, MAX_PAUSE, MIN_FPS

    if fmt == "mp4":
        try:
            media.mp4_writer()
        except ValueError:
            pytest.skip("no MP4 encoder (jwarp[video])")
    frames = np.linspace(0, 1, 2, dtype=np.float32)[:, None, None, None] * np.ones((2, 4, 4, 3))
    for fps, pause in ((MIN_FPS, MAX_PAUSE), (MAX_FPS, MAX_PAUSE), (MIN_FPS, 0.0)):
        path = tmp_path / f"a_{fps}_{pause}.{fmt}"
        media.write_animation(path, frames, fmt, fps, pause=pause)
        assert path.stat().st_size > 0
        if fmt != "mp4":
            with Image.open(path) as img:
                durations = []
                for i in range(img.n_frames):
                    img.seek(i)
                    img.load()  # WebP: the frame's duration is read with it
                    durations.append(img.info["duration"])
            assert sum(durations) == pytest.approx(1000 * (2 / fps + pause), abs=40), durations


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--size", "4000"], "--size 4000: 120 frames of 4000x4000 need at least 44.7 GiB of "
                             "memory, and 1 GiB is available; lower --t-steps, --size or --scale, "
                             "or animate fewer images at once"),
        (["--size", "1000", "--scale", "30"],
         f"--size 1000: 1000x1000 frames at --scale 30 would be 30000x30000 pixels; expected at "
         f"most {MAX_SIDE} on a side (--scale <= 16 for 1000x1000)"),
    ],
    ids=["memory", "side"],
)
def test_frames_that_cannot_fit_are_refused_before_the_image_is_read(
    scene, capsys, monkeypatch, flags, line
):
    """Issue 32 #8: --fit --size 50000 grew to 24 GB and was killed (exit 137)."""
    import jwarp.images
    import jwarp.memory

    monkeypatch.setattr(jwarp.memory, "available_host_bytes", lambda: GIB)
    reads = []
    monkeypatch.setattr(jwarp.images, "read_input", lambda *a, **k: reads.append(a))
    argv = ["--fit", "--whole-image", "--input", "a.png", "--target", "b.png", *flags]
    got = _one_line(capsys, run_cli("animate.py", _animate(argv), []))
    assert got == f"animate.py: error: {line}", got
    assert reads == [] and not os.path.exists("animations")


def test_check_frames_counts_frames_channels_scale_and_the_device():
    opts = RenderOptions(t_steps=100, scale=4)
    check_frames(opts, "x", (64, 64, 3), memory=(GIB, None))  # 100 x 64^2 x (3 + 2) x 4 B x 2
    with pytest.raises(AnimationError, match=r"^x: 100 frames of 64x64 need at least .* of "
                                             r"memory, and 10 MiB is available"):
        check_frames(opts, "x", (64, 64, 3), memory=(10 * 2**20, None))
    with pytest.raises(AnimationError, match=r"^x: 2 x 199 frames of 64x64 need .* on the "
                                             r"device, and it has 1 MiB"):
        check_frames(RenderOptions(t_steps=100, direction="boomerang"), "x", (64, 64, 3), 2,
                     memory=(GIB, 2**20))
    # Frames read one at a time (in place in a photo): only the GIF encoder's palette indices.
    check_frames(opts, "x", (64, 64, 3), fmt="mp4", computed=False, memory=(2**20, None))
    with pytest.raises(AnimationError, match=r"^x: 8x4100 frames at --scale 4 would be 32x16400"):
        check_frames(opts, "x", (4100, 8, 3), memory=(None, None))


def test_a_fit_that_cannot_fit_in_memory_is_refused_before_the_image_is_read(
    scene, capsys, monkeypatch
):
    """Issue 32 (held out): --size 16383 --fit-size 16383 --t-steps 2 passed the frames'
    check (6.4 GB) and the fit at that size was killed (exit 137)."""
    import jwarp.images
    import jwarp.memory

    monkeypatch.setattr(jwarp.memory, "available_host_bytes", lambda: 16 * GIB)
    reads = []
    monkeypatch.setattr(jwarp.images, "read_input", lambda *a, **k: reads.append(a))
    argv = ["--fit", "--whole-image", "--input", "a.png", "--target", "b.png", "--size",
            "16383", "--fit-size", "16383", "--t-steps", "2"]
    got = _one_line(capsys, run_cli("animate.py", _animate(argv), []))
    assert got == ("animate.py: error: --size 16383: fitting 16383x16383 needs at least 110 GiB "
                   "of memory, and 16 GiB is available; lower --fit-size (or --size)"), got
    assert reads == [] and not os.path.exists("animations")


def test_check_fit_shape_counts_the_fit_at_its_own_size_on_the_device():
    from jwarp.render_options import check_fit_shape

    opts = RenderOptions(t_steps=2, fit_size=64)
    check_fit_shape(opts, Path("a.png"), 2000, 2000, memory=(GIB, None))  # fitted at 64x64
    with pytest.raises(AnimationError, match=r"^a.png: fitting 2000x2000 needs at least 1.64 "
                                             r"GiB of memory, and 1 GiB is available"):
        check_fit_shape(RenderOptions(t_steps=2, fit_size=2000), Path("a.png"), 2000, 2000,
                        memory=(GIB, None))
    with pytest.raises(AnimationError, match=r"^a.png: fitting 2000x1000, fitted at 1000x500 "
                                             r"\(--fit-size 1000\) needs .* on the device"):
        check_fit_shape(RenderOptions(t_steps=2, fit_size=1000), Path("a.png"), 1000, 2000, 3,
                        memory=(64 * GIB, 128 * 2**20))


@pytest.mark.slow
@pytest.mark.parametrize("similarity", ["l2", "lncc"])
def test_the_fits_memory_bound_is_below_what_xla_allocates(similarity):
    """``fit_floats_per_pixel`` is a lower bound (a refusal is never wrong): XLA's own count."""
    import jax
    import jax.numpy as jnp

    from jwarp.animation import fit_field
    from jwarp.fit import FitConfig
    from jwarp.render_options import fit_floats_per_pixel

    for c in (1, 3):
        x = jax.ShapeDtypeStruct((1, 32, 32, c), jnp.float32)
        m = fit_field.lower(x, x, FitConfig(similarity=similarity), 64).compile()
        m = m.memory_analysis()
        if m is None:
            pytest.skip("no memory analysis on this backend")
        total = m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
        assert fit_floats_per_pixel(c) * 4 * 32 * 32 <= total, (c, total)


def test_a_pair_too_small_to_fit_is_one_line(scene, capsys):
    """Issue 32 #9: a 1x1 image with --fit was a traceback (a zero-size reduction)."""
    _png("one.png", 1, 1)
    _png("strip.png", 200, 20)
    for argv, line in [
        (["--input", "one.png"], "one.png: 1x1 pixels; pair fitting needs at least 8 pixels"),
        (["--input", "strip.png", "--fit-size", "32"],
         "strip.png: 20x200 pixels, fitted at 3x32 (--fit-size 32); pair fitting needs"),
    ]:
        full = ["--fit", "--whole-image", "--target", "b.png", *argv]
        got = _one_line(capsys, run_cli("animate.py", _animate(full), []))
        assert got.startswith(f"animate.py: error: {line}"), got
    assert not os.path.exists("animations")


def test_out_of_memory_in_xla_is_one_line(scene, capsys, monkeypatch):
    """What the lower bound lets through and the device cannot hold (issue 32 #9:
    RESOURCE_EXHAUSTED was a traceback)."""
    import jax

    def exhausted(opts, fmt, log):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 15GiB.\n"
                                         "more")

    monkeypatch.setattr(render, "_animations", exhausted)
    argv = [*FIT, "--input", "a.png", "--out", "x.gif"]
    line = _one_line(capsys, run_cli("animate.py", _animate(argv), []))
    assert line == ("animate.py: error: --t-steps 5: the frames do not fit in memory "
                    "(RESOURCE_EXHAUSTED: Out of memory allocating 15GiB.); lower --t-steps, "
                    "--size or --scale, or animate fewer images at once"), line
    assert not os.path.exists("x.gif")


def test_a_model_that_is_not_finite_writes_nothing(scene, capsys, monkeypatch):
    """Issue 32 #6: NaN parameters wrote an all-NaN .npy and a blank GIF, exit 0."""
    import jax

    from jwarp.animation import Animator
    from jwarp.config import load_config
    from jwarp.optim import create_states, inference_params

    config = load_config("smoke", {"data.image_size": 8, "data.channels": 3,
                                   "model.unet.encoder": [4, 4], "model.unet.decoder": [4, 4]})
    shapes = jax.eval_shape(lambda: create_states(config, jax.random.key(0), 1)).generator
    nan = jax.tree.map(lambda s: np.full(s.shape, np.nan, s.dtype), inference_params(shapes))
    model = Animator(config, nan, step=2, workdir="runs/x")
    monkeypatch.setattr(render, "_load_animator", lambda opts, workdir, log: (model, "runs/x"))
    before = _listing(scene)
    argv = ["--workdir", "runs/x", "--input", "a.png", "--t-steps", "3", "--out", "a.gif",
            "--save-field", "u.npy", "--sheet", "2"]
    line = _one_line(capsys, run_cli("animate.py", _animate(argv), []))
    assert line.startswith("animate.py: error: the model in runs/x: the animation is not "
                           "finite (NaN or infinity)"), line
    assert _listing(scene) == before


def test_a_pair_read_twice_prints_each_note_once(scene, capsys, monkeypatch):
    """Issue 32 #21: grey and colour are both read again in colour, and their notes were
    printed twice."""

    class Stop:  # the fit itself: the notes are all out by then
        def lower(self, *args):
            raise AnimationError("stopped before the fit")

    monkeypatch.setattr(render, "fit_field", Stop())
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((24, 20, 3)) * 255).astype(np.uint8)).save("c.png")
    Image.fromarray((rng.random((24, 24)) * 255).astype(np.uint8)).save("g.png")
    argv = ["--fit", "--whole-image", "--input", "c.png", "--target", "g.png", "--out", "m.gif"]
    assert run_cli("animate.py", _animate(argv), []) == 2
    out, err = capsys.readouterr()
    assert err == "animate.py: error: stopped before the fit\n"
    out = out.splitlines()
    assert [line for line in out if line.startswith("note:")] == [
        "note: g.png: 24x24 L image centre-cropped to 20x24, grey -> RGB (grey repeated)"], out
