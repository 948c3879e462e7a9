"""Reliability of a run folder: one trainer at a time (an OS lock), checkpoints verified on
every restore with resume falling back to the newest intact one, no non-finite state ever
saved, signals honoured from the first moment, and a failed start that changes nothing.

Behaviour that is about processes (locks, signals, kill -9) runs in real child processes.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import chex
import jax
import pytest

from jwarp.animation import Animator
from jwarp.checkpoint import CheckpointError, Checkpoints, non_finite_leaves
from jwarp.config import load_config
from jwarp.errors import ConfigError, RunFolderError
from jwarp.memory import check_fits
from jwarp.optim import create_states
from jwarp.runlock import run_lock
from jwarp.training import TrainingError, train

# A restore that fails leaves tensorstore callbacks that find orbax's event loop closed
# ("Exception ignored ... Event loop is closed"): library teardown noise, which the commands
# silence too (jwarp.cli), not a failure of what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"progress": False, "log": lambda s: None}
SMOKE = {"train.checkpoint_every": 1, "train.sample_every": 2, "train.max_to_keep": 3}


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory):
    """A smoke run of 3 steps with a checkpoint after each: ``(folder, result)``."""
    folder = tmp_path_factory.mktemp("run") / "a"
    result = train(load_config("smoke", {**SMOKE, "train.steps": 3}), folder, **QUIET)
    return folder, result


# --- the lock ---------------------------------------------------------------------------------

_HOLD = """
import sys, time
from jwarp.runlock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_trainer_is_one_line_and_exit_2_and_kill_9_frees_the_lock(
    tmp_path, python_child, child_env
):
    run = tmp_path / "run"
    holder = python_child(_HOLD, run, cwd=tmp_path)
    try:
        assert holder.stdout.readline().strip() == "locked"
        leftover = run / "checkpoints" / "7.orbax-checkpoint-tmp-1234"  # the holder's save
        leftover.mkdir(parents=True)
        second = subprocess.run(
            [sys.executable, str(ROOT / "train.py"), "--config", "smoke", "--workdir", str(run),
             "--no-progress"],
            capture_output=True, text=True, cwd=tmp_path, env=child_env, timeout=300,
        )
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(f"train.py: error: {run}: another training run (process ")
        assert leftover.is_dir()  # not cleaned up from under its owner
        assert sorted(os.listdir(run)) == [".lock", "checkpoints"]  # nothing else written
        with pytest.raises(RunFolderError, match="another training run"):
            with run_lock(run):
                pass
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock
        holder.wait()
    with run_lock(run):  # no stale lock
        assert (run / ".lock").read_text().strip() == str(os.getpid())


def test_a_failed_start_leaves_no_folder_behind(tmp_path):
    with pytest.raises(RuntimeError):
        with run_lock(tmp_path / "new"):
            raise RuntimeError("bad data")
    assert not (tmp_path / "new").exists()
    with pytest.raises(RuntimeError):  # a start-up that failed after making checkpoints/
        with run_lock(tmp_path / "new"):
            (tmp_path / "new" / "checkpoints").mkdir()
            raise RuntimeError("could not initialise")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()  # a folder the user made stays, with whatever it holds
    with pytest.raises(RuntimeError):
        with run_lock(tmp_path / "mine"):
            raise RuntimeError("bad data")
    assert (tmp_path / "mine").is_dir()


# --- digests, fallback, config.toml -----------------------------------------------------------


def test_a_damaged_checkpoint_is_refused_everywhere_and_resume_falls_back(
    three_steps, tmp_path, flip_checkpoint_bytes
):
    folder, straight = three_steps
    run = tmp_path / "b"
    shutil.copytree(folder, run)
    assert flip_checkpoint_bytes(run / "checkpoints" / "3")
    with pytest.raises(CheckpointError) as info:
        Animator.load(run)
    message = str(info.value)
    assert message.startswith(f"{run / 'checkpoints'}/3: ") and "\n" not in message
    assert Animator.load(run, 2).step == 2  # the intact ones still load
    notes = []
    resumed = train(
        load_config("smoke", {**SMOKE, "train.steps": 3}), run, progress=False, log=notes.append
    )
    assert any("resuming from step 2" in n for n in notes), notes
    moved = list((run / "damaged_checkpoints").iterdir())
    assert [p.name.split("-")[0] for p in moved] == ["3"]  # kept, not deleted
    assert Checkpoints(run / "checkpoints").all_steps() == [1, 2, 3]
    chex.assert_trees_all_equal(straight.states.generator.params, resumed.states.generator.params)


def test_every_checkpoint_damaged_is_one_error_and_keeps_config_toml(
    three_steps, tmp_path, flip_checkpoint_bytes
):
    folder, _ = three_steps
    run = tmp_path / "c"
    shutil.copytree(folder, run)
    for step in (1, 2, 3):
        assert flip_checkpoint_bytes(run / "checkpoints" / str(step))
    config_before = (run / "config.toml").read_bytes()
    changed = load_config("smoke", {**SMOKE, "train.steps": 5, "optim.lr": 3e-3})
    with pytest.raises(CheckpointError, match=r"no intact checkpoint to resume from .*--no-resume"):
        train(changed, run, **QUIET)
    assert (run / "config.toml").read_bytes() == config_before
    assert not (run / "damaged_checkpoints").exists()


def test_a_refused_resume_keeps_the_run_folders_config_toml(three_steps):
    folder, _ = three_steps
    before = (folder / "config.toml").read_bytes()
    other = load_config("smoke", {**SMOKE, "model.unet.encoder": [4, 8]})
    with pytest.raises(RunFolderError, match=r"different \[model\] settings"):
        train(other, folder, **QUIET)
    assert (folder / "config.toml").read_bytes() == before  # the original command resumes


def test_a_missing_sample_gif_is_written_again_on_resume(three_steps, tmp_path):
    folder, _ = three_steps
    run = tmp_path / "d"
    shutil.copytree(folder, run)
    gif = run / "samples" / "step_0000003.gif"  # the last step's
    reference = gif.read_bytes()
    gif.unlink()
    train(load_config("smoke", {**SMOKE, "train.steps": 3}), run, **QUIET)
    assert gif.read_bytes() == reference


# --- non-finite states ------------------------------------------------------------------------


def test_a_state_made_non_finite_by_its_update_is_never_saved(tmp_path):
    """The loss is finite (computed before the update) but the parameters after it are not."""
    config = load_config(
        "smoke", {**SMOKE, "train.steps": 6, "optim.lr": 3e38, "optim.b1": 0.0}
    )
    with pytest.raises(TrainingError) as info:
        train(config, tmp_path, **QUIET)
    message = str(info.value)
    assert "\n" not in message and "non-finite" in message
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    steps = checkpoints.all_steps()
    if steps:
        assert f"last good checkpoint (verified finite) is step {steps[-1]}" in message
    else:
        assert "there is no good checkpoint" in message
    shapes = jax.eval_shape(lambda: create_states(config, jax.random.key(0), 1))
    for step in steps:
        state, _ = checkpoints.restore(step, {"generator": shapes.generator, "critic": None})
        assert non_finite_leaves(state) == []


def test_learning_rates_that_overflow_float32_are_config_errors():
    with pytest.raises(ConfigError, match=r"^optim.lr: expected a number float32 can hold"):
        load_config("smoke", {"optim.lr": 1e39})
    assert load_config("smoke", {"optim.lr": 3e38}).optim.lr == 3e38


# --- memory -----------------------------------------------------------------------------------


def test_an_image_size_that_cannot_fit_is_refused_before_anything_is_allocated(tmp_path):
    small = load_config("smoke")
    check_fits(small, host_bytes=2**30)
    # (The largest size a config accepts, 8192, on a machine with 8 GiB.)
    with pytest.raises(ConfigError, match=r"^data.image_size = 8192: .* needs at least"):
        check_fits(load_config("smoke", {"data.image_size": 8192}), host_bytes=2**33)
    with pytest.raises(ConfigError, match="per device"):
        check_fits(
            load_config("smoke", {"data.image_size": 4096}), host_bytes=2**40, device_bytes=2**20
        )
    from jwarp.commands.train import main

    assert main(["--config", "smoke", "--image-size", "100000", "--workdir",
                 str(tmp_path / "big"), "--no-progress"]) == 2
    assert not (tmp_path / "big").exists()


# --- signals during start-up ------------------------------------------------------------------

# SIGTERM delivered at a chosen moment of start-up: when ``jax`` is first imported (an audit
# hook), or while the training data load (a wrapped loader).
_EARLY = """
import os, signal, sys
moment, workdir = sys.argv[1], sys.argv[2]
fired = []

def hook(event, args):
    if moment == "import" and event == "import" and args[0] == "jax" and not fired:
        fired.append(1)
        os.kill(os.getpid(), signal.SIGTERM)

sys.addaudithook(hook)
if moment == "data":
    import jwarp.training as training
    real = training.training_batches

    def batches(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    training.training_batches = batches
from jwarp.commands.train import main
sys.exit(main(["--config", "smoke", "--workdir", workdir, "--no-progress"]))
"""


@pytest.mark.parametrize("moment", ["import", "data"])
def test_sigterm_during_start_up_exits_0_and_changes_nothing(tmp_path, moment, python_child):
    proc = python_child(_EARLY, moment, tmp_path / "run", cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "stopped by signal 15 before training began" in out
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()
