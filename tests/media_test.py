"""Animation files by format (GIF, WebP, MP4), --out by extension, --resize crop|pad|stretch,
PNG frame folders written as a whole."""

import errno
import importlib.util
import io
import os
import re
import signal
from collections.abc import Sequence

import numpy as np
import pytest
from conftest import slow_write_script
from PIL import Image, ImageSequence, features

from jwarp import images, media
from jwarp.data import read_image
from jwarp.errors import AnimationError
from jwarp.outputs import plan, where
from jwarp.render import RenderOptions, render


def _moving(t=6, h=10, w=14, c=3):
    """Frames that all differ (a bar moving right), so no writer merges any."""
    frames = np.zeros((t, h, w, c), np.float32)
    for k in range(t):
        frames[k, :, k : k + 3] = 1.0
    if c == 4:
        frames[..., 3] = 1.0
    return frames


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_gif_and_webp_round_trip_frames_size_and_timing(tmp_path, fmt):
    if fmt == "webp" and not features.check("webp"):
        pytest.skip("Pillow without WebP")
    path = media.write_animation(tmp_path / f"a.{fmt}", _moving(), fmt, fps=20, scale=2,
                                 pause=0.5)
    with Image.open(path) as im:
        assert im.n_frames == 6 and im.size == (28, 20)
        durations = []
        for frame in ImageSequence.Iterator(im):
            frame.load()  # WebP sets a frame's duration when it is decoded
            durations.append(frame.info["duration"])
        last = np.asarray(im.convert("RGB"), np.float32) / 255
    assert durations == [50] * 5 + [550]
    np.testing.assert_allclose(last[::2, ::2], _moving()[-1], atol=0.1)
    assert [p.name for p in tmp_path.iterdir()] == [f"a.{fmt}"]


@pytest.mark.parametrize(
    ("options", "line"),
    [({"fps": 0.0}, "fps: expected a positive number, got 0.0"),
     ({"fps": float("nan")}, "fps: expected a positive number, got nan"),
     ({"pause": -1.0}, "pause: expected a number >= 0, got -1.0"),
     ({"scale": 0}, "scale: expected an integer >= 1, got 0")],
    ids=["fps", "fps-nan", "pause", "scale"],
)
def test_every_writer_refuses_bad_timing_or_scale_alike_before_any_work(
    tmp_path, monkeypatch, options, line
):
    from jwarp import video

    monkeypatch.setattr(video, "_run", lambda *a: pytest.fail("ffmpeg started"))
    options = {"fps": 10.0, "scale": 1, **options}
    fps, scale = options.pop("fps"), options.pop("scale")
    for fmt in ("gif", "webp", "mp4"):
        with pytest.raises(ValueError, match=rf"^{re.escape(line)}$"):
            media.write_animation(tmp_path / f"a.{fmt}", _moving(), fmt, fps, scale, **options)
    assert _names(tmp_path) == []


def test_webp_keeps_alpha(tmp_path):
    frames = _moving(c=4)
    frames[:, :5, :, 3] = 0.0
    with Image.open(media.write_webp(tmp_path / "a.webp", frames)) as im:
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
    assert np.all(alpha[:5] == 0) and np.all(alpha[5:] == 255)


def test_mp4_frames_and_even_size(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio_ffmpeg

    frames = _moving(h=9, w=13, c=4)  # odd sides: one more row and column; RGBA composited
    path = media.write_animation(tmp_path / "a.mp4", frames, "mp4", fps=10, pause=0.2)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    got = [np.frombuffer(f, np.uint8).reshape(10, 14, 3) for f in reader]
    assert meta["size"] == (14, 10) and len(got) == 6 + 2  # the pause: 2 more frames at 10 fps
    np.testing.assert_allclose(got[0][:9, :13] / 255, frames[0, ..., :3], atol=0.2)
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_mp4_without_imageio_ffmpeg_names_the_extra(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    with pytest.raises(ValueError, match=r'pip install "jwarp\[video\]", or from a checkout '
                                         r'pip install -e "\.\[video\]"$') as info:
        media.write_mp4(tmp_path / "a.mp4", _moving())
    assert "\n" not in str(info.value)
    with pytest.raises(AnimationError, match=r"^--out a.mp4: MP4 output needs .*jwarp\[video\]"):
        render(RenderOptions(out="a.mp4", runs_dir=str(tmp_path / "none")), log=lambda m: None)


def test_out_by_extension_folder_or_error(tmp_path):
    assert where(None, None) == (None, media.Path("animations"), "gif")
    assert where("x.MP4", None).fmt == "mp4" and where("x.webp", None).file.name == "x.webp"
    folder = where(str(tmp_path / "clips"), "webp")
    assert folder.file is None and folder.fmt == "webp"
    (tmp_path / "d.gif").mkdir()  # an existing folder is a folder, whatever its name
    assert where(str(tmp_path / "d.gif"), None).folder == tmp_path / "d.gif"
    with pytest.raises(AnimationError, match=r"--out x.avi: unknown extension '.avi'; "
                                             r"expected .gif, .webp, .mp4"):
        where("x.avi", None)
    with pytest.raises(AnimationError, match="--format gif: --out x.mp4"):
        where("x.mp4", "gif")
    paths = plan(["a", "a", "b"], folder, "boomerang").animations
    assert [p.name for p in paths] == ["a_boomerang.webp", "a_2_boomerang.webp",
                                       "b_boomerang.webp"]
    with pytest.raises(AnimationError, match="names one file, but there are 2 animations"):
        plan(["a", "b"], where("x.mp4", None), "forward")
    with pytest.raises(AnimationError, match="--resize: expected one of"):
        RenderOptions(resize="fill")
    with pytest.raises(AnimationError, match="--format: expected one of"):
        RenderOptions(format="avi")


def _names(folder):
    return sorted(os.listdir(folder))


def test_frames_replace_an_earlier_set_as_a_whole(tmp_path):
    target = tmp_path / "out" / "f"
    media.write_frames(target, _moving(t=12))  # made with the folders above it
    target.chmod(0o750)
    paths = media.write_frames(target, _moving(t=3))
    assert paths == [target / f"frame_{k:04d}.png" for k in range(3)]
    assert _names(target) == [p.name for p in paths]  # no stale frame 3..11 of the longer set
    assert _names(tmp_path / "out") == ["f"]  # no temporary folder left beside it
    assert oct(target.stat().st_mode & 0o777) == oct(0o750)  # the folder's own permissions
    np.testing.assert_array_equal(np.asarray(Image.open(paths[1])), np.round(_moving(t=3)[1] * 255))
    link = tmp_path / "link"
    link.symlink_to(target)
    media.write_frames(link, _moving(t=2))  # through a link: the folder it names is replaced
    assert link.is_symlink() and _names(target) == ["frame_0000.png", "frame_0001.png"]


@pytest.mark.parametrize("stop", [OSError(errno.ENOSPC, "No space left on device"),
                                  KeyboardInterrupt()], ids=["disk-full", "ctrl-c"])
def test_a_frames_write_that_stops_midway_leaves_no_trace(tmp_path, monkeypatch, stop):
    earlier = tmp_path / "earlier"
    media.write_frames(earlier, _moving(t=4))
    contents = {name: (earlier / name).read_bytes() for name in _names(earlier)}
    write_png, written = media.write_png, []

    def stops_after_two(path, image):
        if len(written) == 2:
            raise stop
        written.append(path)
        return write_png(path, image)

    monkeypatch.setattr(media, "write_png", stops_after_two)
    for target in (earlier, tmp_path / "new"):
        written.clear()
        with pytest.raises(type(stop)) as info:
            media.write_frames(target, _moving(t=6))
        assert len(written) == 2
        if isinstance(stop, OSError):  # named as asked, not as its temporary
            assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(target))
        assert _names(tmp_path) == ["earlier"]  # no partial "new", no temporary folder
        assert {name: (earlier / name).read_bytes() for name in _names(earlier)} == contents


_SLOW_FRAMES = slow_write_script("media.write_frames(sys.argv[1], Slow())", 8)


def test_sigterm_during_a_frames_write_leaves_no_trace(tmp_path, python_child):
    earlier = tmp_path / "frames"
    media.write_frames(earlier, _moving(t=3))
    contents = {name: (earlier / name).read_bytes() for name in _names(earlier)}
    child = python_child(_SLOW_FRAMES, earlier, cwd=tmp_path)
    assert child.stdout.readline() == "writing\n"
    child.terminate()
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGTERM and stderr == ""  # ended by SIGTERM, as before
    assert _names(tmp_path) == ["frames"]  # no temporary folder
    assert {name: (earlier / name).read_bytes() for name in _names(earlier)} == contents


def test_frames_never_replace_a_folder_with_other_files(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    (mine / "frame_0000.png").write_bytes(b"old")
    with pytest.raises(ValueError, match=r"mine: holds files other than frame_NNNN.png frames "
                                         r"\(notes.txt\); the frames replace their folder"):
        media.write_frames(mine, _moving(t=2))
    assert _names(mine) == ["frame_0000.png", "notes.txt"]
    assert _names(tmp_path) == ["mine"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "frame_0000.png").write_bytes(b"old")
    with pytest.raises(ValueError, match=r"^\.: is the current folder"):
        media.write_frames(".", _moving(t=2))


def test_frames_never_replace_a_folder_or_link_named_like_a_frame(tmp_path, monkeypatch):
    from jwarp import render as render_module
    from jwarp.animation import Animation
    from jwarp.render import Rendered

    frames = tmp_path / "frames"
    (frames / "frame_0001.png").mkdir(parents=True)
    (frames / "frame_0001.png" / "mine.txt").write_text("keep")
    (frames / "frame_0000.png").write_bytes(b"old")
    (tmp_path / "elsewhere.png").write_bytes(b"theirs")
    (frames / "frame_0002.png").symlink_to(tmp_path / "elsewhere.png")
    os.mkfifo(frames / ".frame_0003.png.abcd1234.tmp")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError) as info:
        media.write_frames(frames, _moving(t=4))
    assert str(info.value).startswith(
        f"{frames}: holds files other than frame_NNNN.png frames (.frame_0003.png.abcd1234.tmp: "
        "not a regular file, frame_0001.png: a folder, frame_0002.png: a link); the frames "
        "replace"
    )
    calls = []

    def fit(opts, ts, log):
        calls.append(opts)
        disp = np.zeros((4, 10, 14, 2), np.float32)
        return [Rendered("a", Animation(_moving(t=4), disp), disp[-1])]

    monkeypatch.setattr(render_module, "_fit_animations", fit)
    monkeypatch.chdir(tmp_path)
    for name in ("a.png", "b.png"):
        media.write_png(tmp_path / name, _moving()[0])
    opts = RenderOptions(inputs=("a.png",), targets=("b.png",), fit=True, out="a.gif",
                         frames_dir="frames")
    with pytest.raises(AnimationError, match=r"^--frames-dir frames: holds files other than "
                                             r"frame_NNNN.png frames \(.*frame_0001.png: a "
                                             r"folder") as info:
        render(opts, log=lambda m: None)
    assert "\n" not in str(info.value) and calls == []  # refused before any work
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == sorted(
        [*before, "a.png", "b.png"])  # nothing written, nothing deleted
    assert (frames / "frame_0001.png" / "mine.txt").read_text() == "keep"


def test_frames_replace_only_the_names_write_frames_gives(tmp_path):
    """``frame_{k:04d}.png``: four digits, more only past 9999; anything else is a user's."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("frame_0000.png", "frame_10000.png", ".frame_0001.png.k2j_9xq0.tmp"):
        (frames / name).write_bytes(b"old")
    media.check_frames_folder(frames)  # all written by an earlier write_frames
    for name in ("frame_1.png", "frame_00001.png", "frame_123.png", ".frame_0001.png.mine.tmp",
                 "frame_\u0661\u0662\u0663\u0664.png"):  # digits to \d, never written
        (frames / name).write_bytes(b"mine")
        with pytest.raises(ValueError, match=rf"holds files other than frame_NNNN.png frames "
                                             rf"\({re.escape(name)}\)"):
            media.write_frames(frames, _moving(t=2))
        assert (frames / name).read_bytes() == b"mine"
        (frames / name).unlink()
    assert _names(frames) == [".frame_0001.png.k2j_9xq0.tmp", "frame_0000.png",
                              "frame_10000.png"]


def test_a_linked_frames_folder_holding_the_animation_is_refused_before_any_work(tmp_path):
    """--frames-dir a link to --out's folder: the frames would replace the animation. Found
    through the link, as ``outputs.clash`` finds files, before anything is written."""
    (tmp_path / "out").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "out")
    with pytest.raises(AnimationError, match=rf"^--frames-dir {tmp_path}/link: would also hold "
                                             rf"{tmp_path}/out/a.gif; the frames replace"):
        plan(["a"], where(str(tmp_path / "out" / "a.gif"), None), "forward",
             frames_dir=str(tmp_path / "link"))
    assert _names(tmp_path / "out") == []


def test_a_sheet_is_written_in_the_format_its_extension_names(tmp_path, capsys):
    from jwarp.cli import run_cli
    from jwarp.commands.evaluate import _main
    from jwarp.evaluate import write_sheet

    sheet = _moving(t=1, c=4)[0]
    sheet[:, :2, 3] = 0.0  # transparent: JPEG composites it on white
    for name, fmt in [("s.png", "PNG"), ("s.JPG", "JPEG"), ("s.jpeg", "JPEG"),
                      ("s.webp", "WEBP")]:
        if fmt == "WEBP" and not features.check("webp"):
            continue
        write_sheet(tmp_path / name, sheet, rows=1, min_px=10)
        with Image.open(tmp_path / name) as im:
            assert im.format == fmt and im.size == (14, 10)
            pixels = np.asarray(im.convert("RGB"), np.float32) / 255
        np.testing.assert_allclose(pixels[:, 2:], sheet[:, 2:, :3], atol=0.05)
        if fmt == "JPEG":
            np.testing.assert_allclose(pixels[:, :2], 1.0, atol=0.05)
    for name in ("s.bmp", "sheet"):
        with pytest.raises(ValueError, match=rf"^{tmp_path / name}: (unknown|no) image "
                                             r"extension.*; expected .png, .jpg, .jpeg, .webp$"):
            write_sheet(tmp_path / name, sheet, rows=1)
        assert not (tmp_path / name).exists()
    # The command refuses it before the evaluation: here before finding no run folder.
    argv = ["--workdir", str(tmp_path / "no_run"), "--sheet", "s.gif"]
    assert run_cli("jwarp-evaluate", lambda a: _main(a, "jwarp-evaluate"), argv) == 2
    assert capsys.readouterr().err == (
        "jwarp-evaluate: error: --sheet s.gif: unknown image extension '.gif'; expected .png, "
        ".jpg, .jpeg, .webp\n")


def test_resize_crop_pad_stretch(tmp_path):
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :10] = (255, 0, 0)  # red on the left quarter, green on the right quarter
    wide[:, 30:] = (0, 255, 0)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    crop = read_image(tmp_path / "wide.png", 8, 3)
    assert crop[..., 0].max() < 0.1 and crop[..., 1].max() < 0.1  # the centre: black only
    pad = images.read_input(tmp_path / "wide.png", 8, 3, resize="pad")
    assert pad.content == (2, 0, 4, 8) and pad.aspect == (4, 8)
    # The edge rows repeated outwards, so every row is the photo's.
    np.testing.assert_array_equal(pad.image[0], pad.image[2])
    np.testing.assert_allclose(pad.image[:, 0], [[1.0, 0, 0]] * 8, atol=1e-6)
    stretch = images.read_input(tmp_path / "wide.png", 8, 3, resize="stretch")
    assert stretch.content == (0, 0, 8, 8) and stretch.aspect == (4, 8)
    assert "stretched to 8x8" in stretch.note and "padded to 8x8" in pad.note
    for got in (pad, stretch):
        frames, disp = images.restore_aspect(
            got.image[None], np.ones((2, 1, 8, 8, 2), np.float32), got.content, got.aspect
        )
        assert frames.shape == (1, 4, 8, 3) and disp.shape == (2, 1, 4, 8, 2)
    # Displacements are scaled with the resampling: dy halves with the height.
    np.testing.assert_allclose(disp[..., 0], 0.5, atol=1e-5)
    np.testing.assert_allclose(disp[..., 1], 1.0, atol=1e-5)
    own = images.read_input(tmp_path / "wide.png", None, None, 16, keep_aspect=True)
    assert own.image.shape == (8, 16, 3) and own.aspect == (8, 16)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")
def test_fit_animates_a_wide_photo_at_its_own_aspect(tmp_path):
    from scipy import ndimage

    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(rng.random((24, 40, 3)), (2, 2, 0))
    x = (x - x.min()) / np.ptp(x)
    media.write_png(tmp_path / "a.png", x)
    media.write_png(tmp_path / "b.png", np.roll(x, 1, axis=1))
    opts = RenderOptions(inputs=(str(tmp_path / "a.png"),), targets=(str(tmp_path / "b.png"),),
                         fit=True, t_steps=3, fit_steps=5, out=str(tmp_path / "a.webp"))
    (path,) = render(opts, log=lambda m: None)
    with Image.open(path) as im:
        assert im.size == (40, 24) and im.n_frames >= 2


class _Lazy(Sequence):
    """A sequence of frames read one at a time (as ``jwarp.faces.PhotoAnimation``)."""

    def __init__(self, frames):
        self.frames = frames

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, k):
        return self.frames[k]


def test_uint8_and_lazy_frames_write_what_float_frames_write(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 24, 32, 3), dtype=np.uint8)
    floats = pixels.astype(np.float32) / 255
    assert media.encode_gif(pixels) == media.encode_gif(floats)
    assert media.encode_gif(_Lazy(pixels)) == media.encode_gif(floats)
    np.testing.assert_array_equal(media.contact_sheet(_Lazy(pixels), 3),
                                  np.concatenate([pixels[0], pixels[2], pixels[4]], axis=1))
    media.write_frames(tmp_path / "f", _Lazy(pixels))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "f" / "frame_0004.png")),
                                  pixels[4])
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        media.write_mp4(tmp_path / "a.mp4", _Lazy(pixels), fps=10)
        media.write_mp4(tmp_path / "b.mp4", floats, fps=10)
        assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_a_sampled_gif_palette_keeps_dark_pixels_opaque(monkeypatch):
    """Many pixels: the palette comes from a sample and every pixel is mapped to it; with
    transparency, no opaque pixel may land on the transparent index."""
    monkeypatch.setattr(media, "_PALETTE_PIXELS", 500)
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (3, 20, 30, 4), dtype=np.uint8)
    rgba[..., :3] //= 4  # dark colours, near the black a reference palette is padded with
    rgba[..., 3] = np.where(rng.uniform(size=(3, 20, 30)) < 0.3, 0, 255)
    with Image.open(io.BytesIO(media.encode_gif(rgba))) as gif:
        frames = [np.asarray(f.convert("RGBA")) for f in ImageSequence.Iterator(gif)]
    for got, want in zip(frames, rgba):
        np.testing.assert_array_equal(got[..., 3] == 0, want[..., 3] == 0)
        opaque = want[..., 3] > 0
        assert np.abs(got[opaque, :3].astype(int) - want[opaque, :3]).mean() < 12


# A full disk for every writer: a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so writes
# fail with EFBIG) in one child process, after the old outputs were written without it.
_FULL_DISK = """
import hashlib, json, os, resource, signal, sys
from pathlib import Path
import numpy as np
from jwarp import media
from jwarp.cli import error_message
from jwarp.files import atomic_write

frames = np.random.default_rng(0).random((6, 32, 32, 3)).astype(np.float32)
writers = {
    "gif": lambda p, f: media.write_gif(p, f),
    "webp": lambda p, f: media.write_webp(p, f),
    "mp4": lambda p, f: media.write_mp4(p, f, fps=10),
    "png": lambda p, f: media.write_png(p, f[0]),
    "jpg": lambda p, f: media.write_image(p, f[0]),  # a sheet (jwarp.evaluate.write_sheet)
    "frames": lambda p, f: media.write_frames(p, f),
    "npy": lambda p, f: atomic_write(p, f.tobytes()),
    "json": lambda p, f: atomic_write(p, json.dumps(f.tolist())),
}
def digest(path):
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()

fmts = sys.argv[1:]
old = {}
for fmt in fmts:
    writers[fmt](f"old.{fmt}", frames[:2, :8, :8])
    old[fmt] = digest(Path(f"old.{fmt}"))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
for fmt in fmts:
    try:
        writers[fmt](f"old.{fmt}", frames)
        print(json.dumps([fmt, None, "written", False]))
    except OSError as e:
        same = digest(Path(f"old.{fmt}")) == old[fmt]
        print(json.dumps([fmt, e.errno, error_message(e), same]))
"""
_FORMATS = ["gif", "webp", "mp4", "png", "jpg", "frames", "npy", "json"]


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory, python_child):
    """The folder, and ``{format: (errno, one-line message, old output kept)}`` of writes on a
    full disk."""
    import json

    pytest.importorskip("resource")

    folder = tmp_path_factory.mktemp("full")
    fmts = [f for f in _FORMATS if f != "mp4" or importlib.util.find_spec("imageio_ffmpeg")]
    child = python_child(_FULL_DISK, *fmts, cwd=folder)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    results = {}
    for line in out.splitlines():
        fmt, *result = json.loads(line)
        results[fmt] = result
    return folder, results


@pytest.mark.parametrize("fmt", _FORMATS)
def test_a_full_disk_keeps_every_old_output(full_disk, fmt):
    folder, results = full_disk
    if fmt not in results:
        pytest.skip("no imageio-ffmpeg")
    code, message, kept = results[fmt]
    assert code == errno.EFBIG, message
    assert message.startswith(f"old.{fmt}: ") and "\n" not in message and ".tmp" not in message
    assert kept  # byte for byte
    assert not [p for p in os.listdir(folder) if p.startswith(".")]  # no temporary left
