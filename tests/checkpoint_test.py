"""Checkpoints: a save killed with SIGKILL at any point, or failing on a full disk, never costs
the previous checkpoint; a resumed run continues bitwise; nothing is pickled or sent anywhere.

The kill tests run a child process that installs an audit hook (``sys.addaudithook``) and kills
itself with SIGKILL at a chosen file operation of a checkpoint save: the same as ``kill -9``
arriving at that moment, but at a reproducible point.
"""

import errno
import json
import os
import signal
import threading
import time
from pathlib import Path

import chex
import jax
import numpy as np
import pytest
from orbax.checkpoint._src.handlers import json_checkpoint_handler

from jwarp import checkpoint as checkpoint_lib
from jwarp.checkpoint import CheckpointError, Checkpoints

ROOT = Path(__file__).resolve().parents[1]

# Shared by the children: traps for network and pickle use, and the kill switch.
_GUARDS = r"""
import os, signal, sys

_MARKS = {"network": [], "pickle": [], "events": []}
_NET = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto",
        "socket.bind", "urllib.Request", "http.client.connect")
_KILL = {"armed": False, "at": None, "count": 0}
_WATCH = ("open", "os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir",
          "shutil.rmtree")


def _writes(event, args):
    if event != "open":
        return True
    mode, flags = args[1], args[2]
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def _hook(event, args):
    if event in _NET:
        _MARKS["network"].append(event)
    if not _KILL["armed"] or event not in _WATCH or not _writes(event, args):
        return
    _MARKS["events"].append(f"{event} {args[0]}")
    if _KILL["at"] is not None and _KILL["at"](event, [str(a) for a in args[:2]]):
        os.kill(os.getpid(), signal.SIGKILL)


sys.addaudithook(_hook)

import pickle


def _trap(name):
    real = getattr(pickle, name)

    def trapped(*args, **kwargs):
        _MARKS["pickle"].append(name)
        return real(*args, **kwargs)

    return trapped


for _name in ("load", "loads", "dump", "dumps"):
    setattr(pickle, _name, _trap(_name))

# Kill points of a save of step STEP in folder DIR (predicates on an audit event).
def kill_point(name, step):
    tmp = f"{step}.orbax-checkpoint-tmp"
    state_metadata = "state.orbax-checkpoint-tmp/_METADATA"
    seen = {"rmtree": False, "removes": 0}

    def after_rmtree(event, args):
        if event == "shutil.rmtree":
            seen["rmtree"] = True
        elif seen["rmtree"] and event == "os.remove":
            seen["removes"] += 1
        return seen["removes"] == 2  # the old step is half deleted

    return {
        # the temporary folder exists, nothing written into it yet
        "folder": lambda e, a: e == "open" and tmp in a[0],
        # arrays written (tensorstore), their metadata not yet
        "arrays": lambda e, a: e == "open" and a[0].endswith(state_metadata),
        # everything written, the final rename not done
        "rename": lambda e, a: e == "os.rename" and a[1].endswith(f"/{step}"),
        # the new step complete, the old one being deleted (max_to_keep)
        "delete": after_rmtree,
    }[name]
"""

# Saves step 1, then step 2 with the kill switch armed.
_SAVE_CHILD = (
    _GUARDS
    + r"""
import json
import numpy as np
from jwarp.checkpoint import Checkpoints

folder, point = sys.argv[1], sys.argv[2]


def state(step):
    rng = np.random.default_rng(step)
    return {
        "generator": {
            "params": {"w": rng.normal(size=(64, 64)).astype(np.float32),
                       "b": rng.normal(size=64).astype(np.float32)},
            "step": np.array(step, np.int32),
        },
        "critic": None,
    }


checkpoints = Checkpoints(folder, max_to_keep=1, cleanup=True)
checkpoints.save(1, state(1), {"step": 1})
_KILL["armed"], _KILL["at"] = True, (None if point == "none" else kill_point(point, 2))
checkpoints.save(2, state(2), {"step": 2})
_KILL["armed"] = False
restored, record = checkpoints.restore(2, state(0))
checkpoints.close()

# The trees training saves (train states with optimiser states, GAN: a critic too) round-trip
# without pickle as well; zeros of the right shapes, no compilation.
import jax
from jwarp.config import load_config
from jwarp.optim import create_states

config = load_config("smoke", {"loss.mode": "gan"})
shapes = jax.eval_shape(lambda: create_states(config, jax.random.key(0), 1))
states = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
tree = {"generator": states.generator, "critic": states.critic}
checkpoints = Checkpoints(folder + "_states")
checkpoints.save(1, tree, {"step": 1, "data": {"epoch": 0, "index": 0}, "seed": 0})
restored, record = checkpoints.restore(1, tree)
checkpoints.close()
assert jax.tree.structure(restored) == jax.tree.structure(tree)
print(json.dumps(_MARKS))
"""
)

KILL_POINTS = ("folder", "arrays", "rename", "delete")


def _state(step):
    """The child's ``state(step)``."""
    rng = np.random.default_rng(step)
    return {
        "generator": {
            "params": {
                "w": rng.normal(size=(64, 64)).astype(np.float32),
                "b": rng.normal(size=64).astype(np.float32),
            },
            "step": np.array(step, np.int32),
        },
        "critic": None,
    }


@pytest.fixture(scope="module")
def killed_saves(tmp_path_factory, python_child):
    """``{point: (returncode, stdout, stderr, folder)}``: the save children, run concurrently."""
    base = tmp_path_factory.mktemp("kill")
    procs = {}
    for point in (*KILL_POINTS, "none"):
        folder = base / point / "checkpoints"
        procs[point] = (python_child(_SAVE_CHILD, folder, point, cwd=base), folder)
    out = {}
    for point, (proc, folder) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[point] = (proc.returncode, stdout, stderr, folder)
    return out


def test_no_module_can_unpickle():
    sources = [*(ROOT / "jwarp").glob("*.py"), ROOT / "train.py", ROOT / "animate.py"]
    for path in sources:
        text = path.read_text()
        for needle in (
            "import pickle",
            "cloudpickle",
            "allow_pickle=True",
            "import dill",
            "import joblib",
        ):
            assert needle not in text, (path, needle)
        assert text.count("np.load(") == text.count("allow_pickle=False)"), path


def test_an_uninterrupted_save_uses_no_network_and_no_pickle(killed_saves):
    code, stdout, stderr, folder = killed_saves["none"]
    assert code == 0, stderr
    marks = json.loads(stdout.strip().splitlines()[-1])
    assert marks["network"] == [] and marks["pickle"] == [], marks
    # The kill points below exist in this orbax version's sequence of file operations.
    events = marks["events"]
    assert any("2.orbax-checkpoint-tmp/_CHECKPOINT_METADATA" in e for e in events), events
    assert any(e.startswith("os.rename") and "2.orbax-checkpoint-tmp" in e for e in events)
    assert any(e.startswith("shutil.rmtree") for e in events), events
    assert sorted(os.listdir(folder)) == ["2"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_9_during_a_save_keeps_the_previous_checkpoint(killed_saves, point):
    code, _, stderr, folder = killed_saves[point]
    assert code == -signal.SIGKILL, stderr  # killed at the chosen moment, not before or after
    reader = Checkpoints(folder)  # what animate.py / a resuming run sees
    latest = reader.latest_step()
    expected = 2 if point == "delete" else 1  # step 2 is only complete once renamed
    assert latest == expected
    restored, record = reader.restore(latest, _state(0))
    chex.assert_trees_all_equal(restored, _state(latest))
    assert {k: v for k, v in record.items() if k != "digest"} == {"step": latest}
    reader.close()
    if point != "delete":
        assert any(".orbax-checkpoint-tmp" in name for name in os.listdir(folder))

    # The next writer removes the leftovers and saves again.
    writer = Checkpoints(folder, max_to_keep=1, cleanup=True)
    assert not any(".orbax-checkpoint-tmp" in name for name in os.listdir(folder))
    writer.save(3, _state(3), {"step": 3})
    assert writer.all_steps() == [3] and sorted(os.listdir(folder)) == ["3"]
    restored, _ = writer.restore(3, _state(0))
    chex.assert_trees_all_equal(restored, _state(3))
    writer.close()


def test_a_full_disk_during_a_save_is_one_error_and_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch
):
    checkpoints = Checkpoints(tmp_path, max_to_keep=1, cleanup=True)
    checkpoints.save(1, _state(1), {"step": 1})

    async def disk_full(self, item, directory):
        raise OSError(errno.ENOSPC, "No space left on device", str(directory))

    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", disk_full)
    with pytest.raises(CheckpointError) as info:
        checkpoints.save(2, _state(2), {"step": 2})
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    assert message.startswith(f"{tmp_path}: cannot save step 2 (No space left on device)")
    assert message.endswith("step 1 is kept")
    assert sorted(os.listdir(tmp_path)) == ["1"]  # the partial step 2 is gone: space matters
    assert checkpoints.latest_step() == 1
    restored, _ = checkpoints.restore(1, _state(0))
    chex.assert_trees_all_equal(restored, _state(1))

    checkpoints.close()  # what train() does before it reports the error
    monkeypatch.undo()  # space freed: the next run saves again
    checkpoints = Checkpoints(tmp_path, max_to_keep=1, cleanup=True)
    checkpoints.save(2, _state(2), {"step": 2})
    assert checkpoints.all_steps() == [2]
    checkpoints.close()


def test_a_failed_save_waits_for_a_writer_listed_while_it_was_starting(tmp_path):
    """``threading.enumerate`` lists threads that are still starting, and ``join`` refuses
    them; the partial folder must still be removed only after such a writer has finished."""
    checkpoints = Checkpoints(tmp_path)
    partial = tmp_path / f"5{checkpoint_lib._TMP_SUFFIX}"
    partial.mkdir()
    finished = []

    def write():
        time.sleep(0.2)
        (partial / "late").write_text("x")
        finished.append(True)

    writer = threading.Thread(target=write)
    threading.Timer(0.1, writer.start).start()  # not started yet when it is joined
    checkpoints._discard_partial(5, {writer})
    assert finished == [True]
    assert not partial.exists()
    checkpoints.close()


def test_a_damaged_checkpoint_is_one_error_naming_its_folder(tmp_path):
    checkpoints = Checkpoints(tmp_path, max_to_keep=2)
    checkpoints.save(1, _state(1), {"step": 1})
    checkpoints.save(2, _state(2), {"step": 2})
    for f in (tmp_path / "2" / "state").rglob("*"):
        if f.is_file() and "ocdbt" in str(f.relative_to(tmp_path / "2" / "state")):
            f.unlink()
    with pytest.raises(CheckpointError) as info:
        checkpoints.restore(2, _state(0))
    message = str(info.value)
    assert message.startswith(f"{tmp_path}/2: cannot restore this checkpoint")
    assert "other steps here: 1" in message and "\n" not in message and len(message) < 500
    with pytest.raises(CheckpointError, match="does not match|cannot restore"):
        checkpoints.restore(1, {"generator": {"params": {"w": np.zeros((3, 3))}}})
    checkpoints.close()


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _largest_chunk(step_dir: Path) -> Path:
    files = [f for f in (step_dir / "state").rglob("*") if f.is_file() and f.parent.name == "d"]
    return max(files, key=lambda f: f.stat().st_size)


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory):
    """A folder holding steps 1 and 2 of a state with a 1 MB array (its own data chunk)."""
    folder = tmp_path_factory.mktemp("two_steps") / "checkpoints"
    checkpoints = Checkpoints(folder, max_to_keep=2)
    for step in (1, 2):
        state = _state(step)
        state["generator"]["params"]["w"] = np.random.default_rng(step).normal(
            size=(512, 512)).astype(np.float32)
        checkpoints.save(step, state, {"step": step})
    checkpoints.close()
    return folder


# How a step folder gets damaged, and what the message says is wrong with it.
_DAMAGES = {
    "chunk-cut-short": (lambda d: _cut(_largest_chunk(d)), "the data of generator.params.w"),
    "chunk-missing": (lambda d: _largest_chunk(d).unlink(), "the data of generator.params.w"),
    "record-cut-short": (lambda d: _cut(d / "record" / "metadata"),
                         "record/metadata is not valid JSON"),
    "record-missing": (lambda d: (d / "record" / "metadata").unlink(),
                       "record/metadata is missing"),
    "record-not-an-object": (lambda d: (d / "record" / "metadata").write_text("[]"),
                             "record/metadata is not a JSON object"),
    "metadata-cut-short": (lambda d: _cut(d / "state" / "_METADATA"),
                           "state/_METADATA is not valid JSON"),
}


@pytest.mark.parametrize("damage", sorted(_DAMAGES))
def test_a_damaged_step_is_one_short_line_naming_it_and_what_is_wrong(
    two_steps, tmp_path, damage
):
    """Restored into device arrays, as training and animate.py restore: orbax's wrapper of
    tensorstore's error (``See full TensorStore details: <bound method ...>``) is not shown."""
    import shutil

    folder = Path(shutil.copytree(two_steps, tmp_path / "checkpoints"))
    damage_fn, needle = _DAMAGES[damage]
    damage_fn(folder / "2")
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    state = _state(0)
    state["generator"]["params"]["w"] = np.zeros((512, 512), np.float32)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), state)
    checkpoints = Checkpoints(folder)
    with pytest.raises(CheckpointError) as info:
        checkpoints.restore(2, target)
    message = str(info.value)
    assert message.startswith(f"{folder}/2: cannot restore this checkpoint: it is damaged")
    assert needle in message and message.endswith("other steps here: 1"), message
    assert "\n" not in message and len(message) < 300, message
    for noise in ("TensorStore", "bound method", "tensorstore_spec", "slice("):
        assert noise not in message, message
    chex.assert_trees_all_equal(checkpoints.restore(1, target)[0]["generator"]["step"], 1)
    checkpoints.close()


# --- the same with training: kill -9 mid-save, resume, compare with an uninterrupted run ----

_TRAIN_CHILD = (
    _GUARDS
    + r"""
import jax
import numpy as np
from jwarp import checkpoint
from jwarp.config import load_config
from jwarp.training import train

workdir, point, reference = sys.argv[1], sys.argv[2], sys.argv[3]
real_save = checkpoint.Checkpoints.save


def save(self, step, state, record):
    if step == 4:  # the uninterrupted run's state at step 4, then a save that dies
        leaves = jax.tree_util.tree_leaves_with_path(state)
        np.savez(reference, **{jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves})
        _KILL["armed"], _KILL["at"] = True, kill_point(point, 4)
    real_save(self, step, state, record)


checkpoint.Checkpoints.save = save
config = load_config("smoke", {"train.steps": 4, "train.checkpoint_every": 2,
                               "train.max_to_keep": 1, "train.sample_every": 1000})
train(config, workdir, progress=False, log=lambda s: None)
"""
)


@pytest.mark.slow
def test_kill_9_mid_save_then_resume_is_bitwise_the_uninterrupted_run(tmp_path, python_child):
    from jwarp.config import load_config
    from jwarp.training import train

    points = ("arrays", "rename", "delete")
    procs = {
        p: python_child(_TRAIN_CHILD, tmp_path / p, p, tmp_path / f"{p}.npz", cwd=tmp_path)
        for p in points
    }
    for proc in procs.values():
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == -signal.SIGKILL, stderr
    config = load_config(
        "smoke",
        {
            "train.steps": 4,
            "train.checkpoint_every": 2,
            "train.max_to_keep": 1,
            "train.sample_every": 1000,
        },
    )
    for point in points:
        workdir = tmp_path / point
        latest = Checkpoints(workdir / "checkpoints").latest_step()
        assert latest == (4 if point == "delete" else 2)
        result = train(config, workdir, progress=False, log=lambda s: None)
        assert result.step == 4
        state = {"generator": result.states.generator, "critic": result.states.critic}
        leaves = {
            jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_leaves_with_path(state)
        }
        with np.load(tmp_path / f"{point}.npz") as reference:
            assert sorted(reference.files) == sorted(leaves)
            for key in reference.files:
                np.testing.assert_array_equal(leaves[key], reference[key], err_msg=key)
        records = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [1, 2, 3, 4]
        names = os.listdir(workdir / "checkpoints")
        assert "4" in names and not any("tmp" in n for n in names)


# --- digests: a checkpoint is what was saved, and finite ---------------------------------------


def test_a_restore_returns_what_was_saved_and_the_digest_is_order_only(tmp_path):
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(3, _state(3), {"step": 3, "data": {"epoch": 1}})
    state, record = checkpoints.restore(3, _state(0))
    assert record["digest"] == checkpoint_lib.digest(_state(3), {"step": 3, "data": {"epoch": 1}})
    assert record["digest"] != checkpoint_lib.digest(_state(3), {"step": 4, "data": {"epoch": 1}})
    chex.assert_trees_all_equal(state, _state(3))
    checkpoints.close()


def test_flipped_bytes_in_a_checkpoint_are_one_error_and_resume_finds_the_intact_one(
    tmp_path, flip_checkpoint_bytes
):
    checkpoints = Checkpoints(tmp_path, max_to_keep=3)
    for step in (1, 2):
        checkpoints.save(step, _state(step), {"step": step})
    assert flip_checkpoint_bytes(tmp_path / "2") > 0
    with pytest.raises(CheckpointError) as info:
        checkpoints.restore(2, _state(0))
    message = str(info.value)
    assert message.startswith(f"{tmp_path}/2: ") and "\n" not in message
    assert "damaged" in message or "cannot restore" in message
    step, state, record, damaged = checkpoints.newest_intact(_state(0))
    assert step == 1 and [s for s, _ in damaged] == [2]
    chex.assert_trees_all_equal(state, _state(1))
    moved = checkpoints.set_aside(2, tmp_path.parent / "damaged")
    assert Path(moved, "state").is_dir() and checkpoints.all_steps() == [1]
    checkpoints.save(2, _state(5), {"step": 2})  # the step can be saved again
    chex.assert_trees_all_equal(checkpoints.restore(2, _state(0))[0], _state(5))
    checkpoints.close()


def test_a_value_changed_within_its_encoding_fails_the_digest(tmp_path, monkeypatch):
    """A checkpoint that reads back cleanly but differs (what orbax cannot notice itself)."""
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(1, _state(1), {"step": 1})
    real = checkpoints.manager.restore

    def altered(step, args):
        out = real(step, args=args)
        out["state"]["generator"]["params"]["b"] = out["state"]["generator"]["params"]["b"] + 1e-6
        return out

    monkeypatch.setattr(checkpoints.manager, "restore", altered)
    with pytest.raises(CheckpointError, match=r"/1: this checkpoint is damaged: its contents"):
        checkpoints.restore(1, _state(0))
    checkpoints.close()


def test_a_non_finite_state_is_never_saved(tmp_path):
    checkpoints = Checkpoints(tmp_path)
    state = _state(1)
    state["generator"]["params"]["w"][3, 4] = np.inf
    with pytest.raises(checkpoint_lib.NonFiniteStateError, match=r"\['w'\] at step 1; not saved"):
        checkpoints.save(1, state, {"step": 1})
    assert checkpoints.all_steps() == [] and not any(tmp_path.iterdir())
    checkpoints.close()
