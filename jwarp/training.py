"""Training (paper Algorithm 1): L2 mode on pairs, WGAN-GP / LSGAN mode on unpaired sets.

``train`` is the host loop around the jitted steps of ``jwarp.steps`` (objective:
``jwarp.objective``; optimisers and states: ``jwarp.optim``): data, run folder, checkpoints,
metrics (``metrics.jsonl`` and TensorBoard events), samples, progress, signals. In a
multi-process run every process runs the loop; only process 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from jwarp import data as data_lib
from jwarp import parallel
from jwarp.checkpoint import Checkpoints
from jwarp.config import Config, load_config, save_config
from jwarp.errors import RunFolderError, TrainingError
from jwarp.execution import plan
from jwarp.field import flow
from jwarp.files import atomic_write, is_remote, run_path
from jwarp.objective import conditioning
from jwarp.optim import States, inference_params, init_states
from jwarp.sampler import warp
from jwarp.steps import StepFns, make_step_fns, train_iteration
from jwarp.tensorboard import EventWriter, NoEvents, truncate_events

# --- data -----------------------------------------------------------------------------------


def training_batches(config: Config, mesh: Mesh) -> data_lib.Batches:
    """The training set's resumable batch stream; this process's rows of each global batch.

    GAN mode is unpaired even on paired data: sources and targets are shuffled separately.
    """
    tcfg = config.train
    x0, x1, paired = data_lib.load_dataset(config.data, "train", tcfg.seed)
    return data_lib.Batches(
        x0,
        x1,
        tcfg.batch_size,
        paired=paired and config.loss.mode == "l2",
        seed=tcfg.seed,
        rows=parallel.local_rows(tcfg.batch_size, mesh),
    )


# --- the host loop --------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """What ``train`` leaves behind."""

    workdir: Path  # an etils.epath.Path for a gs:// run folder
    step: int
    states: States
    last_metrics: dict[str, float]
    interrupted: bool = False


def _check_compatible(saved: Config, config: Config, path: Path) -> None:
    """A run folder can resume only with the same model, flow and data shapes, and the same
    optimiser state layout (with or without the parameter average); ``[execution]`` may
    change (it decides how, not what)."""
    for section in ("model", "flow", "data"):
        a, b = getattr(saved, section), getattr(config, section)
        if a != b:
            fields = [
                f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)
            ]
            raise RunFolderError(
                f"{path}: run folder was trained with different [{section}] settings "
                f"({', '.join(fields)}); use another --workdir or --no-resume"
            )
    if saved.loss.mode != config.loss.mode:
        raise RunFolderError(
            f"{path}: run folder was trained with loss.mode = "
            f"{saved.loss.mode!r}; use another --workdir or --no-resume"
        )
    if (saved.optim.ema_decay > 0) != (config.optim.ema_decay > 0):
        raise RunFolderError(
            f"{path}: run folder was trained with optim.ema_decay = {saved.optim.ema_decay}, "
            f"which keeps {'a' if saved.optim.ema_decay > 0 else 'no'} parameter average; "
            "use the same setting, another --workdir or --no-resume"
        )


def _sample_fn(config: Config, mesh: Mesh, t_steps: int = 16):
    """Jitted forward animation of a batch: ``(params, x0, x1) -> [T, B, H, W, C]``.

    Replicated over ``mesh`` (a handful of images): every process gets the frames.
    """
    run = plan(config, "sample")
    apply_fn = run.unet(config.model.unet).apply
    ts = np.linspace(0.0, 1.0, t_steps)

    def frames(params, x0, x1):
        cond = conditioning(config, x0, x1)
        res = flow(apply_fn, params, cond, ts, config=config.flow, loop=run.loop, penalties=False)
        return jax.vmap(lambda u: warp(x0, u))(res.disp)

    repl = parallel.replicated(mesh)
    return jax.jit(frames, in_shardings=repl, out_shardings=repl)


def _side_by_side(frames) -> np.ndarray:
    """``[T, B, H, W, C] -> [T, H, B*W, C]``."""
    frames = np.asarray(frames)
    return np.concatenate(list(frames.transpose(1, 0, 2, 3, 4)), axis=2)


def train(
    config: Config,
    workdir: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    mesh: Mesh | None = None,
) -> TrainResult:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint unless told not to.

    Writes ``config.toml``, ``checkpoints/``, ``metrics.jsonl``, ``samples/*.gif`` and
    ``tensorboard/`` (``_events_writer``: the same metrics and the samples' frames). Ctrl-C
    or SIGTERM saves a checkpoint at the next step boundary and returns with
    ``interrupted=True``. A non-finite loss raises ``TrainingError`` naming the step; the last
    checkpoint written before it stays the latest.

    Data parallel over ``mesh`` (default: every device of every process): a
    ``train.batch_size`` that does not split over its devices is a ``ConfigError``. With
    several processes (``jax.distributed``), every process calls ``train`` with the same
    arguments, loads only its rows of each batch and takes part in saving and restoring
    checkpoints; only process 0 writes the config, metrics, GIFs, logs and progress bar.
    ``workdir`` may be a ``gs://`` URL (through orbax and ``etils.epath``); a multi-host run
    needs such a shared folder (which gets no TensorBoard events).
    """
    mesh = parallel.data_mesh() if mesh is None else mesh
    tcfg = config.train
    parallel.check_batch_size(tcfg.batch_size, mesh.devices.size)
    primary = jax.process_index() == 0
    log = log if primary else (lambda message: None)
    # Data first: bad data (a DataError) must not leave an empty run folder behind.
    batches = training_batches(config, mesh)
    samples = _sample_images(config)
    workdir, checkpoints, latest = _open_run_folder(config, workdir, resume, primary)
    states, base_key, step = _restore_or_init(config, checkpoints, latest, batches, mesh)
    if latest is not None:
        log(f"resuming {workdir} from step {step}")
    step_fns = make_step_fns(config, states, mesh)
    sample_fn = _sample_fn(config, mesh)
    run = _Run(
        config, mesh, workdir, primary, checkpoints, batches, base_key, step_fns, sample_fn, samples
    )

    metrics_path = workdir / "metrics.jsonl"
    if primary:
        _truncate_metrics(metrics_path, step)
    stop = _StopRequest()  # from here on Ctrl-C and SIGTERM stop at the next step boundary
    bar = _progress_bar(tcfg.steps, step) if progress and primary else None
    interrupted = False
    try:
        with (
            _metrics_writer(metrics_path, primary) as metrics_file,
            _events_writer(workdir, step, primary, log) as events,
        ):
            metrics = _Metrics(
                tcfg, metrics_file, events, bar, checkpoints, workdir / "checkpoints"
            )
            states, step = _train_loop(run, states, step, stop, metrics, bar)
            metrics.flush()
            if stop.signal is not None and step < tcfg.steps:
                interrupted = True
                if checkpoints.latest_step() != step:
                    _save(run, step, states)
                log(f"\nstopped by signal {stop.signal} at step {step}; checkpoint saved")
    finally:
        if bar is not None:
            bar.close()
        stop.restore()
        checkpoints.close()
    return TrainResult(workdir, step, states, metrics.last, interrupted)


@dataclasses.dataclass(frozen=True)
class _Run:
    """What one ``train`` call's loop works with, fixed for the run."""

    config: Config
    mesh: Mesh
    workdir: Path  # an etils.epath.Path for a gs:// run folder
    primary: bool  # process 0, the one that writes files
    checkpoints: Checkpoints
    batches: data_lib.Batches
    base_key: jax.Array  # iteration ``step`` uses ``fold_in(base_key, step)``
    step_fns: StepFns
    sample_fn: Callable  # ``_sample_fn``
    samples: tuple[np.ndarray, np.ndarray]  # ``_sample_images``


def _sample_images(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The sources and targets the sample GIFs animate: the first (at most 4) test images."""
    x0_test, x1_test, _ = data_lib.load_dataset(config.data, "test", config.train.seed)
    n_samples = min(4, len(x0_test), len(x1_test))
    return x0_test[:n_samples], x1_test[:n_samples]


def _open_run_folder(
    config: Config, workdir: str | Path, resume: bool, primary: bool
) -> tuple[Path, Checkpoints, int | None]:
    """Makes or reopens the run folder and writes its ``config.toml``.

    Resuming, a saved configuration must be compatible (``RunFolderError``); ``resume=False``
    deletes the folder's checkpoints and metrics. Returns ``(workdir, checkpoints, latest)``,
    ``latest`` the step to resume from or ``None`` to start afresh.
    """
    tcfg = config.train
    workdir = run_path(workdir)
    if not is_remote(workdir):  # object stores have no folders to make
        workdir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = workdir / "checkpoints"
    # Leftovers of a killed save are removed by one process only (the folder is shared).
    checkpoints = Checkpoints(ckpt_dir, max_to_keep=tcfg.max_to_keep, cleanup=primary)
    latest = checkpoints.latest_step() if resume else None
    config_path = workdir / "config.toml"
    if latest is not None and config_path.exists():
        _check_compatible(_read_run_config(config_path), config, config_path)
    if not resume and checkpoints.all_steps():
        for step in checkpoints.all_steps():
            checkpoints.manager.delete(step)  # collective: every process calls it
        if primary:
            (workdir / "metrics.jsonl").unlink(missing_ok=True)
    if primary:
        save_config(config, config_path)
    return workdir, checkpoints, latest


def _restore_or_init(
    config: Config,
    checkpoints: Checkpoints,
    latest: int | None,
    batches: data_lib.Batches,
    mesh: Mesh,
) -> tuple[States, jax.Array, int]:
    """``(states, base_key, step)`` to start from: fresh states at step 0, or checkpoint
    ``latest``, which also puts ``batches`` back where it was."""
    # Resuming needs only the states' shapes: initialising them would compile the networks.
    states, base_key = init_states(
        config, config.train.seed, batches.steps_per_epoch, mesh, shapes_only=latest is not None
    )
    if latest is None:
        return states, base_key, 0
    target = {"generator": states.generator, "critic": states.critic}
    restored, record = checkpoints.restore(latest, target)
    states = States(restored["generator"], restored["critic"])
    batches.restore(record["data"])
    return states, base_key, int(record["step"])


def _train_loop(
    run: _Run, states: States, step: int, stop: _StopRequest, metrics: _Metrics, bar
) -> tuple[States, int]:
    """Iterations from ``step`` until ``train.steps`` or a stop request, with checkpoints and
    sample GIFs on their schedules (and a checkpoint at a stop). Returns ``(states, step)``."""
    config, tcfg = run.config, run.config.train
    while step < tcfg.steps and stop.signal is None:
        t0 = time.perf_counter()
        key = jax.random.fold_in(run.base_key, step)
        states, step_metrics = train_iteration(
            config, states, run.batches, key, run.step_fns, run.mesh
        )
        step += 1
        stop.check(step)
        metrics.add(step, step_metrics, time.perf_counter() - t0)
        if bar is not None:
            bar.update(1)
        boundary = step % tcfg.checkpoint_every == 0 or step == tcfg.steps
        if boundary or stop.signal is not None:
            metrics.flush()  # never checkpoint a non-finite state
            _save(run, step, states)
        if step % tcfg.sample_every == 0 or step == tcfg.steps:
            _write_sample(run, step, states, metrics.events)
    return states, step


def _save(run: _Run, at_step: int, states: States) -> None:
    """A checkpoint of ``states`` after ``at_step`` steps, with the batch stream's position."""
    run.checkpoints.save(
        at_step,
        {"generator": states.generator, "critic": states.critic},
        {"step": at_step, "data": run.batches.state(), "seed": run.config.train.seed},
    )


def _write_sample(run: _Run, step: int, states: States, events) -> None:
    """``samples/step_XXXXXXX.gif``: the sample sources animated by ``states``' generator, side
    by side; and to ``events``, the image ``samples`` at ``step``: its frames at t = 0, 1/3,
    2/3 and 1, top to bottom. Every process computes the frames; process 0 writes them."""
    from jwarp.media import write_gif  # host-side only

    params = inference_params(states.generator)
    frames = _side_by_side(run.sample_fn(params, *run.samples))
    if run.primary:
        scale = max(1, 128 // run.config.data.image_size)
        write_gif(run.workdir / "samples" / f"step_{step:07d}.gif", frames, fps=8, scale=scale)
        events.image(step, "samples", _frame_strip(frames, scale))


def _frame_strip(frames: np.ndarray, scale: int, n: int = 4) -> np.ndarray:
    """``[T, H, W, C] -> [n*H*scale, W*scale, C]``: ``n`` evenly spaced frames (the first and
    the last included) one under another, enlarged ``scale`` times (nearest pixel)."""
    picks = np.round(np.linspace(0, len(frames) - 1, min(n, len(frames)))).astype(int)
    strip = np.concatenate(list(np.asarray(frames)[picks]), axis=0)
    return strip.repeat(scale, axis=0).repeat(scale, axis=1)


class _Metrics:
    """Each step's metrics, read from the devices one step late (no sync per step): checked
    finite (else ``TrainingError``), written every ``train.log_every`` steps and at the last
    (to ``metrics.jsonl`` and as TensorBoard scalars ``train/NAME``), shown on the progress
    bar; ``last`` is the latest read."""

    def __init__(self, tcfg, metrics_file, events, bar, checkpoints: Checkpoints, ckpt_dir: Path):
        self.tcfg, self.file, self.events, self.bar = tcfg, metrics_file, events, bar
        self.checkpoints, self.ckpt_dir = checkpoints, ckpt_dir
        self.pending = None  # (step, device metrics, step time) not read yet
        self.last: dict[str, float] = {}

    def add(self, at: int, device_metrics: dict, seconds: float) -> None:
        """Keeps step ``at``'s metrics for later, reading the step before's."""
        if self.pending is not None:
            self._read(self.pending)
        self.pending = (at, device_metrics, seconds)

    def flush(self) -> None:
        """Reads the metrics kept for later, if any."""
        if self.pending is not None:
            self._read(self.pending)
            self.pending = None

    def _read(self, item) -> None:
        at, device_metrics, seconds = item
        host = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
        if not all(math.isfinite(v) for v in host.values()):
            bad = [k for k, v in host.items() if not math.isfinite(v)]
            raise TrainingError(
                f"non-finite {', '.join(bad)} at step {at}; the last good checkpoint "
                f"is step {self.checkpoints.latest_step()} in {self.ckpt_dir}"
            )
        self.last = host
        if at % self.tcfg.log_every == 0 or at == self.tcfg.steps:
            record = {"step": at, **host, "step_time_s": seconds}
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
            self.events.scalars(at, {**host, "step_time_s": seconds}, prefix="train/")
        if self.bar is not None:
            shown = ("loss", "fit", "wasserstein", "critic_loss", "neg_jac_frac")
            postfix = {k: f"{host[k]:.4g}" for k in shown if k in host}
            self.bar.set_postfix(postfix, refresh=False)


class _StopRequest:
    """Ctrl-C and SIGTERM, from construction to ``restore``: ``signal`` becomes the signal
    that asks the loop to stop (at the next step boundary, with a checkpoint); asked twice,
    it stops at once (``KeyboardInterrupt``), without one."""

    def __init__(self):
        self.signal = None
        self.asked = False
        # Several processes must stop at the same step, or one would wait forever in a
        # collective the others never join. jax.distributed's preemption service turns a
        # SIGTERM on any process into one agreed step (reached_preemption_sync_point, in
        # ``check``); Ctrl-C is forwarded to it as a SIGTERM, and SIGTERM is left to its
        # handler.
        self.agree = jax.process_count() > 1 and jax.config.jax_enable_preemption_service
        signals = (signal.SIGINT,) if self.agree else (signal.SIGINT, signal.SIGTERM)
        self.old_handlers = {s: signal.signal(s, self._request) for s in signals}

    def _request(self, signum, frame):
        if self.asked:  # asked twice: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.asked = True
        if self.agree:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            self.signal = signum

    def check(self, step: int) -> None:
        """After ``step``: in a multi-process run, whether every process stops here."""
        if self.agree and multihost_utils.reached_preemption_sync_point(step):
            self.signal = signal.SIGTERM

    def restore(self) -> None:
        """Puts back the handlers there were before."""
        for s, h in self.old_handlers.items():
            signal.signal(s, h)


def _progress_bar(total: int, initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _read_run_config(path) -> Config:
    """A run folder's ``config.toml``; through ``epath`` for a ``gs://`` folder."""
    if is_remote(path):
        return load_config(None, tomllib.loads(path.read_text()))
    return load_config(str(path))


class _Discard:
    """The metrics file of processes other than 0."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class _ObjectLog:
    """``metrics.jsonl`` on an object store, which cannot append: the whole file is uploaded
    again at most every ``every_s`` seconds and on close."""

    def __init__(self, path, every_s: float = 30.0):
        self.path, self.every_s = path, every_s
        self.parts = [path.read_text()] if path.exists() else []
        self.uploaded = time.monotonic()

    def write(self, text: str) -> None:
        self.parts.append(text)

    def flush(self, force: bool = False) -> None:
        if force or time.monotonic() - self.uploaded >= self.every_s:
            self.path.write_text("".join(self.parts))
            self.uploaded = time.monotonic()


@contextlib.contextmanager
def _metrics_writer(path, primary: bool):
    """An append-only text file for ``metrics.jsonl`` (``write``, ``flush``)."""
    if not primary:
        yield _Discard()
    elif is_remote(path):
        log = _ObjectLog(path)
        try:
            yield log
        finally:
            log.flush(force=True)
    else:
        with open(path, "a") as f:
            yield f


@contextlib.contextmanager
def _events_writer(workdir, step: int, primary: bool, log: Callable[[str], None]):
    """TensorBoard events in ``workdir/tensorboard/`` for a run that starts after ``step`` steps
    (``jwarp.tensorboard.EventWriter``: ``scalars``, ``image``, ``flush``), on process 0 of a
    local run folder; events after ``step`` left there by an earlier run are dropped first, as
    ``metrics.jsonl``'s records are. A ``gs://`` run folder gets none (one line in the log):
    TensorBoard's writers append to files, which an object store cannot do.

    Writing fails as ``metrics.jsonl`` does: an ``OSError`` naming the file, from the training
    loop. Each event is flushed as it is written (as each record of ``metrics.jsonl`` is), and
    the file closed on the way out, whatever happens; closing does not hide the error that
    ends a run.
    """
    if not primary:
        yield NoEvents()
        return
    if is_remote(workdir):
        log(f"{workdir}: TensorBoard events are written in local run folders only; none here")
        yield NoEvents()
        return
    directory = Path(workdir) / "tensorboard"
    truncate_events(directory, step)
    events = EventWriter(directory, step)
    try:
        yield events
    except BaseException:
        with contextlib.suppress(OSError):  # the same full disk, say
            events.close()
        raise
    events.close()


def _truncate_metrics(path: Path, step: int) -> None:
    """Drops records after ``step`` (written after the checkpoint a resume starts from), and
    a last line cut short by a killed run."""
    if not path.exists():
        return
    text = path.read_text()
    lines = text.splitlines()
    kept = [ln for ln in lines if (record := _parse_record(ln)) and record.get("step", 0) <= step]
    if len(kept) != len(lines) or not text.endswith("\n"):  # the next record starts a line
        atomic_write(path, "".join(ln + "\n" for ln in kept))


def _parse_record(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


__all__ = [
    "RunFolderError",
    "TrainResult",
    "TrainingError",
    "train",
    "training_batches",
]
