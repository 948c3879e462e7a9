"""Ctrl-C and SIGTERM to training: said at once, even while the first step compiles (Python's
own handlers wait for the main thread to leave XLA); a second one stops there and then."""

import os
import queue
import signal
import threading
import time

import jax.numpy as jnp

from jwarp.commands import train as command


def test_a_stop_in_the_first_step_is_announced_at_once_and_the_exit_names_what_exists(
    tmp_path, monkeypatch, capsys
):
    import jwarp.training as training

    def iteration(config, states, batches, key, fns, mesh):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the first step runs
        time.sleep(0.5)
        return states, {"loss": jnp.float32(0.5)}

    monkeypatch.setattr(training, "train_iteration", iteration)
    run = tmp_path / "run"
    code = command.main(["--config", "smoke", "--workdir", str(run), "--no-progress",
                         "--set", "train.log_every=1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert ("jwarp-train: stopping after the current step, with a checkpoint; Ctrl-C again to "
            "stop now, without one") in err
    assert out.splitlines()[-1] == (
        f"interrupted at step 1: checkpoints in {run}/checkpoints, metrics in {run}/metrics.jsonl"
    )
    assert not (run / "samples").exists()  # not named: there is none yet


# The first step "compiles" inside C, as XLA does: the main thread holds no Python frame that a
# signal handler could run in (a pthread mutex locked twice), until the process ends.
_STUCK = """
import ctypes, sys
marker, workdir = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None)
held = ctypes.create_string_buffer(64)  # a pthread_mutex_t; zeros: unlocked
libc.pthread_mutex_lock(held)
import jwarp.training as training

def compiling(*args, **kwargs):
    open(marker, "w").close()
    libc.pthread_mutex_lock(held)  # never returns

training.train_iteration = compiling
from jwarp.commands.train import main
sys.exit(main(["--config", "smoke", "--workdir", workdir, "--no-progress"]))
"""


def test_ctrl_c_during_the_first_compile_is_announced_and_a_second_one_stops_now(
    tmp_path, python_child
):
    marker = tmp_path / "compiling"
    proc = python_child(_STUCK, marker, tmp_path / "run", cwd=tmp_path)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        said = ""
        while "stopping" not in said:
            said = lines.get(timeout=10)  # at once, not after the compile
        assert said.strip() == ("jwarp-train: stopping after the current step, with a "
                                "checkpoint; Ctrl-C again to stop now, without one")
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert time.monotonic() - start < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
