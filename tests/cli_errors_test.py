"""Every bad input to train.py, animate.py and jwarp.evaluate: one stderr line, exit code 2.

One table of bad inputs. A module fixture writes them all into one scene folder and runs every
command in its own subprocess, a few at a time (each one imports JAX: seconds), and the
parametrized test checks each result: exit code 2, exactly one stderr line
``PROG: error: ...`` naming the path or key and what was expected, no traceback.
animate.py's flag checks and its --checkpoint and --target rules are tested in-process in
animation_test.py; ``jwarp.cli`` itself in-process below.
"""

import concurrent.futures
import dataclasses
import errno
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from jwarp import media
from jwarp.checkpoint import CheckpointError, Checkpoints
from jwarp.cli import ArgumentParser, error_message, run_cli
from jwarp.config import ConfigError, load_config, save_config
from jwarp.data import DataError, SkippedFilesWarning
from jwarp.errors import RunFolderError, TrainingError
from jwarp.files import atomic_write
from jwarp.optim import create_states

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 4  # subprocesses at once: enough to keep 2 cores busy, little memory

# A checkpoint save that meets a full disk, reported through run_cli (no training: cheap).
_DISK_FULL = textwrap.dedent(
    """
    import errno, sys
    import numpy as np
    from orbax.checkpoint._src.handlers import json_checkpoint_handler
    from jwarp.checkpoint import Checkpoints
    from jwarp.cli import run_cli

    async def disk_full(self, item, directory):
        raise OSError(errno.ENOSPC, "No space left on device", str(directory))

    def main(argv):
        checkpoints = Checkpoints(argv[0], cleanup=True)
        try:
            checkpoints.save(1, {"w": np.zeros(64, np.float32)}, {"step": 1})
            json_checkpoint_handler.JsonCheckpointHandler._save_fn = disk_full
            checkpoints.save(2, {"w": np.ones(64, np.float32)}, {"step": 2})
        finally:
            checkpoints.close()

    sys.exit(run_cli("train.py", main, sys.argv[1:]))
    """
)


@dataclasses.dataclass(frozen=True)
class Case:
    """A bad input: ``prog argv`` run in the scene folder must fail naming ``needles``."""

    id: str
    prog: str  # "train.py", "animate.py", "evaluate" or "-c" (argv[0] is then the script)
    argv: tuple[str, ...]
    needles: tuple[str, ...]  # all in the one stderr line: the path or key, the expectation
    behaviour: str  # what jwarp does with it, for the reader of this table


def _train(id, argv, needles, behaviour="refused"):
    workdir = ("--workdir", f"runs/{id}", "--no-progress")
    return Case(id, "train.py", (*argv, *workdir), needles, behaviour)


def _animate(id, argv, needles, behaviour="refused"):
    return Case(id, "animate.py", tuple(argv), needles, behaviour)


def _evaluate(id, argv, needles, behaviour="refused"):
    return Case(id, "evaluate", tuple(argv), needles, behaviour)


_PROGS = {"-c": "train.py", "evaluate": "python -m jwarp.evaluate"}


_FOLDER = ("--data", "folder", "--mode", "gan", "--no-paired", "--data-dir")
_NPY = ("--data", "npy", "--data-dir")
_FIT = ("--fit", "--target", "ok.png", "--input")

CASES = [
    # --- train.py: data --------------------------------------------------------------------
    _train("missing-folder", (*_FOLDER, "nothere"), ("nothere: folder not found", "expected")),
    _train("empty-folders", (*_FOLDER, "empty"), ("empty/source", "the folder is empty")),
    _train("no-images", (*_FOLDER, "notimg"), ("notimg/source", "found only notes.txt")),
    _train(
        "unreadable-only",
        (*_FOLDER, "unreadable"),
        ("unreadable/source", "none of the 5 image files can be read", "expected a PNG"),
        "unreadable files are skipped with a warning; an error when none is left",
    ),
    _train(
        "paired-names",
        ("--data", "folder", "--paired", "--data-dir", "mismatch"),
        ("mismatch", "same file names in source/ and target/", "lonely.png"),
    ),
    _train(
        "batch-too-large",
        (*_FOLDER, "tiny", "--batch-size", "8"),
        ("train.batch_size", "expected 1 to 1", "got 8"),
    ),
    _train("npy-rank", (*_NPY, "rank.npy"), ("rank.npy", "[2, N, H, W, C]", "found (2, 3, 4)")),
    _train("npy-nan", (*_NPY, "nan.npz"), ("nan.npz [source]", "NaN or Inf", "floats in [0, 1]")),
    _train("npy-object", (*_NPY, "objects.npy"), ("objects.npy", "object array", "expected")),
    _train("pickle", (*_NPY, "data.pkl"), ("data.pkl", "never loaded", "np.savez(")),
    _train("npy-missing", (*_NPY, "nothere.npz"), ("nothere.npz: file not found", "expected")),
    # --- train.py: configuration and run folders ----------------------------------------------
    _train("unknown-key", ("--set", "train.stepz=3"), ("train.stepz", "known keys in [train]")),
    _train("out-of-range", ("--set", "flow.step_size=-0.1"), ("flow.step_size", "expected")),
    _train("bad-flag", ("--steps", "many"), ("--steps", "invalid int value: 'many'")),
    Case(
        "incompatible-run",
        "train.py",
        ("--config", "smoke", "--workdir", "runs/trained", "--set", "model.unet.encoder=[4,4]"),
        ("runs/trained/config.toml", "different [model] settings", "--no-resume"),
        "refused before anything is written",
    ),
    Case(
        "ema-mismatch",
        "train.py",
        (
            "--config",
            "smoke",
            "--workdir",
            "runs/trained-ema",  # its own copy: one trainer per run folder at a time
            "--set",
            "model.unet.encoder=[4,4]",
            "--set",
            "model.unet.decoder=[4,4]",
            "--set",
            "optim.ema_decay=0.9",
        ),
        ("runs/trained-ema/config.toml", "optim.ema_decay = 0.0", "no parameter average"),
        "refused: the optimiser state would not restore",
    ),
    Case(
        "disk-full",
        "-c",
        (_DISK_FULL, "runs/full"),
        ("runs/full: cannot save step 2 (No space left on device)", "step 1 is kept"),
        "reported; the partial step removed, the previous one kept",
    ),
    # --- animate.py --------------------------------------------------------------------------
    _animate("input-missing", (*_FIT, "nothere.png"), ("--input nothere.png: file not found",)),
    _animate("input-empty", (*_FIT, "bad/empty.png"), ("bad/empty.png", "empty file", "expected")),
    _animate("input-truncated", (*_FIT, "bad/truncated.png"), ("bad/truncated.png", "truncated")),
    _animate("input-not-image", (*_FIT, "bad/text.png"), ("bad/text.png", "not an image file")),
    _animate(
        "input-bomb",
        (*_FIT, "bad/bomb.png"),
        ("bad/bomb.png", "decompression-bomb limit", "expected"),
        "refused; Pillow's guard stays on and its warning is an error too",
    ),
    _animate("run-missing", ("--workdir", "nothere"), ("nothere: folder not found", "run folder")),
    _animate("no-run", (), ("no trained run found under runs/", "python train.py --mode l2")),
    _animate(
        "incomplete-checkpoint",
        ("--workdir", "runs/damaged"),
        ("runs/damaged/checkpoints/2: cannot restore", "expected a complete checkpoint"),
        "refused; other complete steps are listed (train.py: the slow test below)",
    ),
    _animate(
        "edited-config",
        ("--workdir", "runs/edited"),
        ("runs/edited/checkpoints/2: cannot restore", "matching the run's config.toml"),
    ),
    _animate(
        "out-under-a-file",
        (*_FIT, "ok.png", "--out", "ok.png/anim.gif"),
        ("--out ok.png/anim.gif: cannot write: ok.png is a file, not a folder",),
    ),
    _animate(
        "fit-smoothness",
        (*_FIT, "ok.png", "--fit-smoothness", "-1"),
        ("--fit-smoothness", "expected a finite number >= 0", "got -1.0"),
    ),
    _animate(
        "fit-similarity",
        (*_FIT, "ok.png", "--fit-similarity", "ssd"),
        ("--fit-similarity", "invalid choice: 'ssd'"),
    ),
    # --- python -m jwarp.evaluate --------------------------------------------------------------
    _evaluate("run-missing", ("--workdir", "nothere"), ("--workdir nothere: no such run folder",)),
    _evaluate("not-a-run", ("--workdir", "norun"), ("norun: not a run folder (no config.toml)",)),
    _evaluate(
        "incomplete-checkpoint",
        ("--workdir", "runs/damaged"),
        ("runs/damaged/checkpoints/2: cannot restore", "expected a complete checkpoint"),
    ),
]


def _write_run(workdir: Path, config) -> None:
    """A run folder with a checkpoint at step 2 (zeros: only its shapes matter)."""
    save_config(config, workdir / "config.toml")
    shapes = jax.eval_shape(lambda: create_states(config, jax.random.key(0), 1))
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    checkpoints = Checkpoints(workdir / "checkpoints")
    record = {"step": 2, "data": {"epoch": 0, "index": 0}, "seed": 0}
    checkpoints.save(2, {"generator": zeros.generator, "critic": zeros.critic}, record)
    checkpoints.close()


def _write_scene(scene: Path, write_bad_images) -> None:
    """Every bad input of ``CASES``, by the relative paths the cases use."""
    Image.fromarray(np.full((16, 16, 3), 120, np.uint8)).save(scene / "ok.png")
    for side in ("source", "target"):
        (scene / "empty" / side).mkdir(parents=True)
        (scene / "notimg" / side).mkdir(parents=True)
        (scene / "notimg" / side / "notes.txt").write_text("not an image")
        (scene / "mismatch" / side).mkdir(parents=True)
        shutil.copy(scene / "ok.png", scene / "mismatch" / side / "a.png")
        (scene / "tiny" / side).mkdir(parents=True)
        shutil.copy(scene / "ok.png", scene / "tiny" / side / "a.png")
        write_bad_images(scene / "unreadable" / side)
    shutil.copy(scene / "ok.png", scene / "mismatch" / "source" / "lonely.png")
    write_bad_images(scene / "bad")

    np.save(scene / "rank.npy", np.zeros((2, 3, 4), np.uint8))
    np.savez(scene / "nan.npz", source=np.full((2, 4, 4, 1), np.nan), target=np.zeros((2, 4, 4, 1)))
    objects = np.empty((2, 2, 4, 4, 1), dtype=object)
    np.save(scene / "objects.npy", objects, allow_pickle=True)  # the test writes it; jwarp never
    (scene / "data.pkl").write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94.")

    config = load_config("smoke", {"model.unet.encoder": [4, 4], "model.unet.decoder": [4, 4]})
    _write_run(scene / "runs" / "trained", config)
    shutil.copytree(scene / "runs" / "trained", scene / "runs" / "damaged")
    shutil.copytree(scene / "runs" / "trained", scene / "runs" / "trained-ema")
    state = scene / "runs" / "damaged" / "checkpoints" / "2" / "state"
    for f in state.rglob("*"):
        if f.is_file() and "ocdbt" in str(f.relative_to(state)):
            f.unlink()  # the arrays are gone, the folder still looks like a step
    shutil.copytree(scene / "runs" / "trained", scene / "runs" / "edited")
    edited = load_config("smoke", {"model.unet.encoder": [8, 8], "model.unet.decoder": [4, 4]})
    save_config(edited, scene / "runs" / "edited" / "config.toml")
    # "no-run" runs where there is no runs/ folder: its own cwd.
    (scene / "norun").mkdir()


def _run(case: Case, scene: Path) -> tuple[int, str, float]:
    if case.prog == "-c":
        command = [sys.executable, "-c", *case.argv]
    elif case.prog == "evaluate":
        command = [sys.executable, "-m", "jwarp.evaluate", *case.argv]
    else:
        command = [sys.executable, str(ROOT / case.prog), *case.argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("JWARP_DEBUG", None)
    cwd = scene / "norun" if case.id == "no-run" else scene
    start = time.perf_counter()
    proc = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env, timeout=300, check=False
    )
    return proc.returncode, proc.stderr, time.perf_counter() - start


@pytest.fixture(scope="module")
def scene(tmp_path_factory, write_bad_images):
    """The folder holding every bad input of ``CASES``."""
    scene = tmp_path_factory.mktemp("scene")
    _write_scene(scene, write_bad_images)
    return scene


@pytest.fixture(scope="module")
def results(scene):
    """``{(prog, case id): (exit code, stderr, seconds)}`` for every case, run concurrently."""
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = {(c.prog, c.id): pool.submit(_run, c, scene) for c in CASES}
        return {key: f.result() for key, f in futures.items()}


def test_the_table_has_one_entry_per_case():
    assert len({(c.prog, c.id) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.prog}:{c.id}" for c in CASES])
def test_bad_input_is_one_line_naming_what_was_expected(results, case):
    _assert_one_line_error(case, *results[case.prog, case.id][:2])


_DATA_CASES = [c for c in CASES if c.prog == "train.py" and "--data-dir" in c.argv]


@pytest.mark.parametrize("case", _DATA_CASES, ids=[c.id for c in _DATA_CASES])
def test_bad_data_leaves_no_run_folder(results, scene, case):
    """The data is read before the run folder is made, so a refused run leaves nothing."""
    assert results[case.prog, case.id][0] == 2
    assert not (scene / "runs" / case.id).exists()


def _assert_one_line_error(case, code, stderr):
    lines = stderr.strip().splitlines()
    prog = _PROGS.get(case.prog, case.prog)
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{prog}: error: "), stderr
    for needle in case.needles:
        assert needle in lines[0], (needle, lines[0])


def test_resuming_from_an_incomplete_checkpoint_is_one_line(scene):
    """The restore fails before anything compiles (it restores into the states' shapes)."""
    case = Case(
        "incomplete-checkpoint",
        "train.py",
        ("--config", "runs/damaged/config.toml", "--workdir", "runs/damaged", "--no-progress"),
        ("runs/damaged/checkpoints/2: cannot restore", "expected a complete checkpoint"),
        "refused",
    )
    _assert_one_line_error(case, *_run(case, scene)[:2])


def test_a_refused_run_folder_is_left_as_it_was(results, scene):
    trained = scene / "runs" / "trained"
    assert load_config(str(trained / "config.toml")).model.unet.encoder == (4, 4)
    assert sorted(os.listdir(trained / "checkpoints")) == ["2"]


def test_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--debug", "--set", "train.stepz=3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 1  # Python's own exit code for an uncaught exception
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ConfigError: unknown key 'train.stepz'" in proc.stderr


_STRAY_FUTURE = """
import asyncio, gc, sys
from jwarp.checkpoint import CheckpointError
from jwarp.cli import run_cli

stray = []

def main(argv):
    # As a failed orbax restore: the other errors of a gathered read stay in a future nobody
    # reads, which asyncio logs as "never retrieved" when it is collected, after the error.
    loop = asyncio.new_event_loop()
    future = loop.create_future()
    future.set_exception(ValueError("Requested shape is not compatible"))
    stray.append(future)
    loop.close()
    raise CheckpointError("runs/a/checkpoints/2: cannot restore")

code = run_cli("animate.py", main)
stray.clear()
gc.collect()
sys.exit(code)
"""


def test_a_future_collected_after_the_error_does_not_add_lines(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _STRAY_FUTURE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["animate.py: error: runs/a/checkpoints/2: cannot restore"]


# --- jwarp.cli in-process ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (ConfigError("train.steps: expected >= 1, got 0"), 2, "train.steps: expected >= 1"),
        (DataError("d/source: no image files"), 2, "d/source: no image files"),
        (CheckpointError("c/2: cannot restore"), 2, "c/2: cannot restore"),
        (RunFolderError("r/config.toml: different [model]"), 2, "r/config.toml: different"),
        (TrainingError("non-finite loss at step 7"), 1, "non-finite loss at step 7"),
        (FileNotFoundError(2, "No such file or directory", "x.toml"), 2, "x.toml: No such file"),
        (OSError(28, "No space left on device", "runs/a/m.jsonl"), 2, "runs/a/m.jsonl: No space"),
        (PermissionError(13, "Permission denied", "out"), 2, "out: Permission denied"),
    ],
)
def test_run_cli_reports_user_errors_in_one_line(capsys, error, code, line):
    def main(argv):
        raise error

    assert run_cli("tool.py", main, []) == code
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"tool.py: error: {line}"), err


def test_run_cli_lets_bugs_through_and_debug_reraises(capsys):
    def bug(argv):
        raise KeyError("a bug, not bad input")

    with pytest.raises(KeyError):
        run_cli("tool.py", bug, [])

    def bad(argv):
        raise ConfigError("train.steps: expected >= 1")

    with pytest.raises(ConfigError):
        run_cli("tool.py", bad, ["--debug"])
    with pytest.raises(ConfigError):
        run_cli("tool.py", bad, ["--deb"])  # argparse accepts the abbreviation too
    assert run_cli("tool.py", lambda argv: 0, []) == 0
    assert run_cli("tool.py", lambda argv: None, []) == 0


def test_run_cli_messages_are_one_line_and_bounded(capsys):
    def main(argv):
        raise DataError("first line\nsecond   line " + "x" * 5000)

    assert run_cli("tool.py", main, []) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("tool.py: error: first line second line xxx")
    assert len(err[0]) < 1100 and err[0].endswith("...")


def test_run_cli_prints_jwarp_warnings_in_one_line_and_ctrl_c_as_130(capsys):
    def main(argv):
        message = "d/source: skipped 2 of 9 image files: a.png (x)"
        warnings.warn(SkippedFilesWarning(message), stacklevel=2)
        raise KeyboardInterrupt

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert run_cli("tool.py", main, []) == 130
    assert capsys.readouterr().err.splitlines() == [
        "tool.py: warning: d/source: skipped 2 of 9 image files: a.png (x)",
        "tool.py: interrupted",
    ]


def test_argument_parser_errors_are_one_line(capsys):
    parser = ArgumentParser(prog="tool.py")
    parser.add_argument("--steps", type=int)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--steps", "x"])
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["tool.py: error: argument --steps: invalid int value: 'x' (see tool.py --help)"]
    assert parser.parse_args(["--debug"]).debug


def test_error_message_of_an_os_error_names_the_path():
    full = OSError(28, "No space left on device", "a/b")
    assert error_message(full) == "a/b: No space left on device"
    assert error_message(OSError("plain")) == "plain"


# --- output paths that cannot be written (in-process) -------------------------------------------


def _json(path):
    """What ``python -m jwarp.evaluate --json PATH`` does once it has its results."""
    return lambda argv: atomic_write(path, b"{}\n")


def _animate(argv):
    """``animate.py ARGV`` (its flag checks and output checks come before any fitting)."""
    from jwarp.commands import animate

    return lambda _: animate._main(["--fit", "--input", "ok.png", "--target", "ok.png", *argv],
                                   "animate.py")


def _one_line(capsys, code):
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.fixture
def out_scene(tmp_path, monkeypatch):
    """A folder with ``regfile`` (a file) and ``ok.png``, as the current folder."""
    (tmp_path / "regfile").write_text("not a folder")
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(tmp_path / "ok.png")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("main", "line"),
    [
        (_json("regfile/x.json"), "regfile/x.json: cannot write: regfile is a file, not a folder"),
        (_json("regfile/a/x.json"), "regfile/a/x.json: cannot write: regfile is a file, not a"),
        (_animate(["--out", "regfile/x.gif"]), "--out regfile/x.gif: cannot write: regfile is a"),
        (_animate(["--frames-dir", "regfile/f"]), "--frames-dir regfile/f: cannot write: regfile"),
        (_animate(["--frames-dir", "regfile"]), "--frames-dir regfile: cannot write: it is a"),
        (_animate(["--save-field", "regfile/u.npy"]), "--save-field regfile/u.npy: cannot write: "),
        (_json("dir"), "dir: cannot write: it is a folder, not a file"),
        (_animate(["--save-field", "dir/u.npy"]), "--save-field dir/u.npy: cannot write: it is a"),
    ],
    ids=["json", "json-deeper", "out", "frames-dir-under", "frames-dir-file", "save-field",
         "json-folder", "save-field-folder"],
)
def test_an_output_below_a_file_or_onto_a_folder_says_so(out_scene, capsys, main, line):
    (out_scene / "dir" / "u.npy").mkdir(parents=True)
    before = sorted(os.listdir(out_scene))
    line_got = _one_line(capsys, run_cli("tool.py", main, []))
    assert line_got.startswith(f"tool.py: error: {line}"), line_got
    assert sorted(os.listdir(out_scene)) == before  # nothing left behind


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    ("main", "path"),
    [(_json("/proc/x.json"), "/proc/x.json"), (_animate(["--out", "/proc/x.gif"]), "/proc/x.gif"),
     (_animate(["--frames-dir", "/proc/sub/f"]), "/proc/sub/f")],
    ids=["json", "out", "frames-dir"],
)
def test_an_output_where_no_file_can_be_made_says_why(out_scene, capsys, main, path):
    line = _one_line(capsys, run_cli("tool.py", main, []))
    # Even for root: /proc answers "No such file or directory" to a new name.
    reason = "/proc does not accept new files (No such file or directory)"
    assert f"{path}: cannot write: {reason}" in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_an_output_in_a_read_only_folder_says_so(out_scene, capsys):
    (out_scene / "locked").mkdir(mode=0o555)
    for main, flag in ((_json("locked/x.json"), ""), (_animate(["--out", "locked/a/x.gif"]),
                                                      "--out ")):
        line = _one_line(capsys, run_cli("tool.py", main, []))
        assert line.startswith(f"tool.py: error: {flag}locked/"), line
        assert ": cannot write: no permission to write in locked (Permission denied)" in line


def test_reading_errors_keep_their_words(out_scene):
    """A missing input is missing: "No such file or directory", whatever its folder."""
    for path in ("nothere.toml", "nofolder/x.toml"):
        with pytest.raises(OSError) as info:
            open(path).close()
        assert error_message(info.value) == f"{path}: No such file or directory"
    with pytest.raises(OSError) as info:
        open("regfile/x.toml").close()
    assert error_message(info.value) == "regfile/x.toml: regfile is a file, not a folder"


def _canned_fit(calls):
    """Stands in for the pair fit: a 5-frame animation named ``ok``."""
    from jwarp.animation import Animation
    from jwarp.render import Rendered

    def fit(opts, ts, log):
        calls.append(opts)
        frames = np.linspace(0, 1, 5, dtype=np.float32)[:, None, None, None] * np.ones((5, 8, 8, 3))
        disp = np.zeros((5, 8, 8, 2), np.float32)
        return [Rendered("ok", Animation(frames, disp), disp[-1])]

    return fit


def _listing(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_frames_dir_is_written_whole_or_not_at_all(out_scene, capsys, monkeypatch):
    from jwarp import render

    monkeypatch.setattr(render, "_fit_animations", _canned_fit([]))
    assert run_cli("tool.py", _animate(["--out", "a.gif", "--frames-dir", "frames"]), []) == 0
    assert sorted(os.listdir(out_scene / "frames")) == [f"frame_{k:04d}.png" for k in range(5)]
    before = _listing(out_scene)

    real_write_png, written = media.write_png, []

    def disk_full_after_two(path, image):
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        return real_write_png(path, image)

    monkeypatch.setattr(media, "write_png", disk_full_after_two)
    for folder in ("frames", "new/frames"):  # an earlier set of frames; a folder not there yet
        written.clear()
        argv = ["--out", "a.gif", "--frames-dir", folder]
        line = _one_line(capsys, run_cli("tool.py", _animate(argv), []))
        assert line == f"tool.py: error: {folder}: cannot write: No space left on device", line
        assert len(written) == 2
        # The earlier frames as they were; no partial folder, no temporaries (a.gif, written
        # before the frames, is the same animation again).
        assert _listing(out_scene) == before
        assert not (out_scene / "new" / "frames").exists()


def test_frames_dir_never_replaces_other_files(out_scene, capsys, monkeypatch):
    from jwarp import render

    calls = []
    monkeypatch.setattr(render, "_fit_animations", _canned_fit(calls))
    (out_scene / "frames").mkdir()
    (out_scene / "frames" / "notes.txt").write_text("mine")
    line = _one_line(capsys, run_cli("tool.py", _animate(["--frames-dir", "frames"]), []))
    assert "--frames-dir frames: holds files other than frame_NNNN.png frames (notes.txt)" in line
    line = _one_line(capsys, run_cli(
        "tool.py", _animate(["--frames-dir", "new", "--out", "new/a.gif"]), []))
    assert "--frames-dir new: would also hold new/a.gif" in line
    assert calls == [] and not (out_scene / "new").exists()  # refused before any fit
    assert os.listdir(out_scene / "frames") == ["notes.txt"]


# --help, --version and a mistyped flag answer before anything heavy is imported.
_LIGHT_COMMANDS = {
    "train.py": [str(ROOT / "train.py")],
    "animate.py": [str(ROOT / "animate.py")],
    "jwarp-animate": ["-m", "jwarp.commands.animate"],
    "jwarp-train": ["-m", "jwarp.commands.train"],
    "jwarp-evaluate": ["-m", "jwarp.commands.evaluate"],
}
_HEAVY_MODULES = {"jax", "jaxlib", "flax", "optax", "diffrax", "orbax", "numpy", "PIL"}


@pytest.mark.parametrize("prog", sorted(_LIGHT_COMMANDS))
@pytest.mark.parametrize(
    ("flag", "code"), [("--help", 0), ("--version", 0), ("--stepz", 2)]
)
def test_help_version_and_bad_flags_import_nothing_heavy(tmp_path, prog, flag, code):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *_LIGHT_COMMANDS[prog], flag],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == code, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    imported = {line.split("|")[-1].strip().split(".")[0] for line in lines if "|" in line}
    assert not imported & _HEAVY_MODULES, sorted(imported & _HEAVY_MODULES)
    if flag == "--help":
        assert proc.stdout.startswith(f"usage: {prog}")
        assert "(default:" in proc.stdout
    elif flag == "--version":
        assert proc.stdout.strip() == f"{prog} (jwarp) 0.2.0"
    else:
        errors = [line for line in lines if "|" not in line]
        assert errors == [
            f"{prog}: error: unrecognized arguments: --stepz (see {prog} --help)"
        ]


def test_print_config_prints_what_training_would_use(capsys):
    from jwarp.commands import train as command

    assert command.main(["--config", "smoke", "--steps", "3", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert load_config("smoke", {"train.steps": 3}) == load_config(None, tomllib.loads(out))
