"""Data parallelism: 4 forced CPU devices against 1, checkpoints across device counts, errors.

The 4-device half runs in a subprocess (``XLA_FLAGS`` must be set before JAX starts: run as
``python tests/parallel_test.py OUT``) while this process computes the 1-device reference, so
the two compile at the same time. Both run the smoke preset, made smaller still (compilation is
what these tests spend), for 3 steps from the same seed on the same global batches.

Tolerance: losses and parameters agree to ``rtol 1e-5, atol 1e-6`` (``np.allclose`` rule). The
only expected difference is float summation order: the batch means are partial sums per device
plus an all-reduce. Checkpoints are compared bitwise: restoring is a copy.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import numpy as np
import pytest
from etils import epath

from jwarp import data as data_lib
from jwarp import parallel
from jwarp.checkpoint import Checkpoints
from jwarp.config import ConfigError, load_config, save_config
from jwarp.files import run_path
from jwarp.optim import States, init_states
from jwarp.runlog import metrics_writer
from jwarp.steps import make_step_fns, train_iteration
from jwarp.training import _read_run_config, training_batches

ROOT = Path(__file__).resolve().parents[1]
# With the session's own XLA flags (conftest), which the subprocess would otherwise lose.
FOUR_DEVICES = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
OVERRIDES = {
    "train.batch_size": 4,
    "data.image_size": 8,
    "model.unet.encoder": [4],
    "model.unet.decoder": [4],
    "model.unet.extra": [],
    "model.critic.channels": [4],
    "flow.step_size": 0.5,
}
STEPS = 3
RTOL, ATOL = 1e-5, 1e-6


def _config(mode: str):
    """``"l2"``, ``"gan"`` (fresh fakes per critic step) or ``"gan_shared"``."""
    extra = {"loss.critic_fakes": "shared"} if mode == "gan_shared" else {}
    return load_config("smoke", {**OVERRIDES, "loss.mode": mode.removesuffix("_shared"), **extra})


def _run(config, states: States, base_key, mesh):
    """``STEPS`` iterations of ``train``'s loop: ``(per-step metrics, final states)``."""
    batches = training_batches(config, mesh)
    step_fns = make_step_fns(config, states, mesh)
    shared = config.loss.mode == "gan" and config.loss.critic_fakes == "shared"
    used = step_fns.gan_step if shared else step_fns.generator_step
    history = []
    for step in range(STEPS):
        key = jax.random.fold_in(base_key, step)
        states, metrics = train_iteration(config, states, batches, key, step_fns, mesh)
        history.append(jax.device_get(metrics))
    assert used._cache_size() == 1  # placed states and batches: traced once
    losses = {k: np.array([float(m[k]) for m in history]) for k in history[0]}
    return losses, states


def _both_modes(mesh) -> dict:
    """``{mode: (losses, states)}`` for l2, gan and gan_shared from one initialisation, and
    ``"init"``: the initial generator parameters."""
    gan = _config("gan")
    steps_per_epoch = gan.data.n_train // gan.train.batch_size
    states, base_key = init_states(gan, gan.train.seed, steps_per_epoch, mesh)
    init = _flat(states.generator.params)
    # The other modes get copies of the same states (the steps donate their state).
    copy = lambda tree: jax.device_put(tree, parallel.replicated(mesh), may_alias=False)
    generator, shared = copy(states.generator), copy(states)
    return {
        "l2": _run(_config("l2"), States(generator, None), base_key, mesh),
        "gan_shared": _run(_config("gan_shared"), shared, base_key, mesh),
        "gan": _run(gan, states, base_key, mesh),
        "init": init,
    }


def _flat(tree) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def _tree(states: States) -> dict:
    return {"generator": states.generator, "critic": states.critic}


def _dump(path: Path, results: dict) -> None:
    arrays = {}
    for mode in ("l2", "gan", "gan_shared"):
        losses, states = results[mode]
        arrays.update({f"{mode}/loss/{k}": v for k, v in losses.items()})
        arrays.update({f"{mode}/state/{k}": v for k, v in _flat(_tree(states)).items()})
    np.savez(path, **arrays)


def _part(arrays, prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: arrays[k] for k in arrays if k.startswith(prefix)}


def _worker(out: Path) -> None:
    """The 4-device half: both modes, a checkpoint, and the 1-device checkpoint restored."""
    jax.config.update("jax_numpy_rank_promotion", "raise")
    mesh = parallel.data_mesh()
    assert mesh.devices.size == 4, jax.devices()
    results = _both_modes(mesh)
    states = results["gan"][1]
    Checkpoints(out / "ckpt4").save(STEPS, _tree(states), {"step": STEPS})
    _dump(out / "four.npz", results)
    deadline = time.time() + 600
    while not (out / "ckpt1.done").exists():
        if time.time() > deadline:
            raise TimeoutError("no 1-device checkpoint")
        time.sleep(0.2)
    restored, _ = Checkpoints(out / "ckpt1").restore(STEPS, _tree(states))
    np.savez(out / "restored_on_four.npz", **_flat(restored))
    devices = {len(x.sharding.device_set) for x in jax.tree.leaves(restored)}
    replicated = all(x.sharding.is_fully_replicated for x in jax.tree.leaves(restored))
    (out / "restored_on_four.json").write_text(
        json.dumps({"devices": sorted(devices), "replicated": replicated})
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel")
    env = {**os.environ, "XLA_FLAGS": FOUR_DEVICES, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, __file__, str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        mesh = parallel.data_mesh()
        assert mesh.devices.size == 1
        one = _both_modes(mesh)
        Checkpoints(out / "ckpt1").save(STEPS, _tree(one["gan"][1]), {"step": STEPS})
        (out / "ckpt1.done").touch()
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-4000:]
    target = _tree(one["gan"][1])
    restored_on_one, _ = Checkpoints(out / "ckpt4").restore(STEPS, target)
    return {
        "one": one,
        "four": dict(np.load(out / "four.npz")),
        "restored_on_one": restored_on_one,
        "restored_on_four": dict(np.load(out / "restored_on_four.npz")),
        "restored_on_four_meta": json.loads((out / "restored_on_four.json").read_text()),
    }


@pytest.mark.parametrize("mode", ["l2", "gan", "gan_shared"])
def test_four_devices_match_one_device(runs, mode):
    losses, states = runs["one"][mode]
    four_losses = _part(runs["four"], f"{mode}/loss/")
    four_states = _part(runs["four"], f"{mode}/state/")
    assert set(four_losses) == set(losses) and "loss" in losses
    chex.assert_trees_all_close(four_losses, losses, rtol=RTOL, atol=ATOL)
    chex.assert_trees_all_close(four_states, _flat(_tree(states)), rtol=RTOL, atol=ATOL)
    # Training moved the parameters by far more than the tolerance: the match is not vacuous.
    final, init = _flat(states.generator.params), runs["one"]["init"]
    assert max(np.max(np.abs(final[k] - init[k])) for k in init) > 100 * ATOL


def test_checkpoint_from_four_devices_restores_on_one(runs):
    restored = runs["restored_on_one"]
    chex.assert_trees_all_equal(_flat(restored), _part(runs["four"], "gan/state/"))
    assert {len(x.sharding.device_set) for x in jax.tree.leaves(restored)} == {1}


def test_checkpoint_from_one_device_restores_on_four(runs):
    chex.assert_trees_all_equal(runs["restored_on_four"], _flat(_tree(runs["one"]["gan"][1])))
    assert runs["restored_on_four_meta"] == {"devices": [4], "replicated": True}


def test_batch_that_does_not_split_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--config", "smoke", "--batch-size", "6"]
        + ["--workdir", str(tmp_path / "run")],
        env={**os.environ, "XLA_FLAGS": FOUR_DEVICES, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "train.batch_size 6" in lines[0] and "4 devices" in lines[0]
    assert not (tmp_path / "run").exists()  # refused before touching the run folder


def test_batch_size_check_and_local_rows():
    assert parallel.local_rows(6, parallel.data_mesh()) == slice(0, 6)  # one process
    parallel.check_batch_size(8, 4)
    with pytest.raises(ConfigError, match="batch_size 6 does not split over 4 devices"):
        parallel.check_batch_size(6, 4)


def test_batches_rows_are_a_slice_of_the_global_stream():
    x0 = np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1)
    full = data_lib.Batches(x0, x0 + 100, 4, paired=False, seed=3)
    part = data_lib.Batches(x0, x0 + 100, 4, paired=False, seed=3, rows=slice(2, 4))
    for _ in range(5):  # across an epoch boundary
        a, b = next(full), next(part)
        np.testing.assert_array_equal(a["x0"][2:4], b["x0"])
        np.testing.assert_array_equal(a["x1"][2:4], b["x1"])
        assert full.state() == part.state()


def test_multi_process_environment_detection():
    assert not parallel.multi_process_env({})
    assert not parallel.multi_process_env({"TPU_WORKER_HOSTNAMES": "localhost"})
    assert parallel.multi_process_env({"TPU_WORKER_HOSTNAMES": "w-0,w-1"})
    assert parallel.multi_process_env({"JAX_COORDINATOR_ADDRESS": "10.0.0.2:1234"})


def test_gs_run_folder_files_go_through_epath(tmp_path, monkeypatch):
    """config.toml, metrics.jsonl and GIFs of a ``gs://`` folder are written by epath with the
    URL intact (no local temp files, renames or appends); here epath maps gs:// to tmp_path."""
    from jwarp.media import write_gif
    from jwarp.runlog import truncate_metrics

    bucket = tmp_path / "bucket"
    local = lambda p: str(p).replace("gs://", f"{bucket}/")

    def open_(original, path, mode):
        assert str(path).startswith("gs://") and "a" not in mode, (path, mode)
        os.makedirs(os.path.dirname(local(path)), exist_ok=True)
        return original(local(path), mode)

    monkeypatch.chdir(tmp_path)
    mocks = dict(open=open_, exists=lambda original, path: original(local(path)))
    with epath.testing.mock_epath(**mocks):
        run = run_path("gs://b/run")
        assert str(run / "config.toml") == "gs://b/run/config.toml"
        config = load_config("smoke")
        save_config(config, run / "config.toml")
        assert _read_run_config(run / "config.toml") == config
        for records in ([1, 2, 3], [4]):
            with metrics_writer(run / "metrics.jsonl", primary=True) as f:
                for step in records:
                    f.write(json.dumps({"step": step}) + "\n")
                    f.flush()
        truncate_metrics(run / "metrics.jsonl", 3, lambda s: None)
        write_gif(run / "samples" / "s.gif", np.zeros((2, 4, 4, 1), np.float32))
    lines = (bucket / "b/run/metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3]
    assert (bucket / "b/run/config.toml").is_file()
    assert (bucket / "b/run/samples/s.gif").read_bytes()[:6] == b"GIF89a"
    assert not (tmp_path / "gs:").exists()  # pathlib would have made gs:/b/run here


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_like_one_device_resume_and_stop_together(tmp_path):
    """train.py as 2 processes x 2 CPU devices (jax.distributed over localhost) against
    train.py on 1 device: same metrics, one writer, collective checkpoints, resume, and a
    Ctrl-C on one process stops both at the same step with a checkpoint."""
    args = ["--config", "smoke", "--mode", "gan", "--batch-size", "4", "--no-progress"]
    args += ["--set", "train.checkpoint_every=2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    one = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args, "--steps", "3"]
        + ["--workdir", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-3000:]

    def distributed(steps: int, *extra: str, interrupt=None) -> list[str]:
        port = _free_port()
        procs = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "train.py"), *args, *extra, "--steps", str(steps)]
                + ["--workdir", str(tmp_path / "two")],
                env={
                    **env,
                    "XLA_FLAGS": FOUR_DEVICES.replace("count=4", "count=2"),
                    "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
                    "JAX_NUM_PROCESSES": "2",
                    "JAX_PROCESS_ID": str(i),
                },
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        try:
            if interrupt is not None:
                interrupt(procs)
            outs = [p.communicate(timeout=600) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
        for p, (_, err) in zip(procs, outs):
            assert p.returncode == 0, err[-3000:]
        return [o for o, _ in outs]

    read = lambda run: [
        json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
    ]
    first = distributed(2)
    assert "done at step 2" in first[0] and "done" not in first[1]  # process 0 alone reports
    second = distributed(3)
    assert "done at step 3" in second[0]
    assert Checkpoints(tmp_path / "two" / "checkpoints").all_steps() == [2, 3]
    ref, got = read("one"), read("two")
    assert [r["step"] for r in got] == [1, 2, 3]  # one writer, resumed after step 2
    for a, b in zip(ref, got):
        a.pop("step_time_s"), b.pop("step_time_s")
        chex.assert_trees_all_close(b, a, rtol=RTOL, atol=ATOL)
    assert sorted(p.name for p in (tmp_path / "two" / "samples").iterdir()) == [
        "step_0000002.gif",
        "step_0000003.gif",
    ]

    def ctrl_c_on_process_1(procs):
        deadline = time.time() + 300
        while time.time() < deadline and not any(r["step"] >= 6 for r in read("two")):
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGINT)

    third = distributed(10**6, "--set", "train.sample_every=1000000", interrupt=ctrl_c_on_process_1)
    stopped = int(re.search(r"interrupted at step (\d+)", third[0]).group(1))
    assert stopped >= 6
    assert Checkpoints(tmp_path / "two" / "checkpoints").latest_step() == stopped
    assert read("two")[-1]["step"] == stopped


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
