"""Training (paper Algorithm 1): L2 mode on pairs, WGAN-GP / LSGAN mode on unpaired sets.

``train`` is the host loop around the jitted steps of ``jwarp.steps`` (objective:
``jwarp.objective``; optimisers and states: ``jwarp.optim``): data, run folder, checkpoints,
metrics (``metrics.jsonl`` and TensorBoard events), samples, progress, signals, the run
folder's lock. In a multi-process run every process runs the loop; only process 0 writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh

from jwarp import data as data_lib
from jwarp import parallel
from jwarp.checkpoint import DIGEST, Checkpoints, NonFiniteStateError
from jwarp.config import Config, load_config, save_config
from jwarp.errors import CheckpointError, ConfigError, RunFolderError, TrainingError
from jwarp.execution import plan
from jwarp.field import flow
from jwarp.files import is_remote, run_path
from jwarp.memory import check_fits
from jwarp.objective import conditioning
from jwarp.optim import States, inference_params, init_states
from jwarp.runlock import run_lock
from jwarp.runlog import events_writer, metrics_writer, truncate_metrics
from jwarp.sampler import warp
from jwarp.steps import StepFns, make_step_fns, train_iteration
from jwarp.stopping import StopRequest
from jwarp.tensorboard import NoEvents

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
        augment=config.data.augment,
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
    stop: StopRequest | None = None,
) -> TrainResult:
    """Trains ``config`` in ``workdir``, resuming from its latest intact checkpoint unless told
    not to.

    Writes ``config.toml``, ``checkpoints/``, ``metrics.jsonl``, ``samples/*.gif`` and
    ``tensorboard/`` (the same metrics and the samples' frames: ``jwarp.runlog``), holding
    the run folder's lock (``jwarp.runlock``; another trainer there is a ``RunFolderError``).
    Ctrl-C or SIGTERM (``stop``, installed by the caller before its own start-up, else here)
    saves a checkpoint at the next step boundary and returns with ``interrupted=True``; during
    start-up it returns before anything is changed. A non-finite loss or state raises
    ``TrainingError`` naming the step and the last checkpoint verified good; no non-finite
    state is ever saved. A damaged latest checkpoint (``Checkpoints.restore``) is moved to
    ``damaged_checkpoints/`` and the run resumes from the newest intact one, with a note.
    ``config.toml`` is written only once the run folder accepted the config and restored.

    Data parallel over ``mesh`` (default: every device of every process): a
    ``train.batch_size`` that does not split over its devices is a ``ConfigError``, and so is
    an image size that cannot fit in memory (``jwarp.memory``). With several processes
    (``jax.distributed``), every process calls ``train`` with the same arguments, loads only
    its rows of each batch and takes part in saving and restoring checkpoints; only process 0
    writes the config, metrics, GIFs, logs and progress bar. ``workdir`` may be a ``gs://``
    URL (through orbax and ``etils.epath``; not locked); a multi-host run needs such a shared
    folder (which gets no TensorBoard events).
    """
    own_stop = stop is None
    if own_stop:  # SIGTERM stays with jax.distributed's preemption service if it has it
        stop = StopRequest(sigterm=not (jax.process_count() > 1 and _preemption_service()))
    try:
        stop.join_processes()
        mesh = parallel.data_mesh() if mesh is None else mesh
        primary = jax.process_index() == 0
        log = log if primary else (lambda message: None)
        parallel.check_batch_size(config.train.batch_size, mesh.devices.size)
        check_fits(config, devices=mesh.devices.size, device_bytes=parallel.device_memory())
        with run_lock(workdir if primary else None):
            return _train_locked(config, workdir, resume, progress, log, mesh, stop, primary)
    finally:
        if own_stop:
            stop.restore()


def _preemption_service() -> bool:
    return bool(jax.config.jax_enable_preemption_service)


class _StoppedEarly(Exception):
    """A stop was asked for during start-up."""


def _train_locked(config, workdir, resume, progress, log, mesh, stop, primary) -> TrainResult:
    """``train`` under the run folder's lock."""
    tcfg = config.train

    def early():
        if stop.signal is not None:
            raise _StoppedEarly

    try:
        # Data before the run folder: bad data (a DataError) changes nothing there.
        early()
        batches = training_batches(config, mesh)
        samples = _sample_images(config)
        early()
        workdir, checkpoints = _open_run_folder(config, workdir, resume, primary)
    except _StoppedEarly:
        log(f"\nstopped by signal {stop.signal} before training began; nothing changed")
        return TrainResult(run_path(workdir), 0, None, {}, interrupted=True)
    try:
        early()
        resuming = bool(checkpoints.all_steps())
        states, base_key, step = _restore_or_init(config, checkpoints, batches, mesh, primary, log)
        if resuming:
            log(f"resuming {workdir} from step {step}")
        if primary:  # only now: the folder accepted this config and restored
            save_config(config, workdir / "config.toml")
        early()
        step_fns = make_step_fns(config, states, mesh)
        sample_fn = _sample_fn(config, mesh)
        run = _Run(
            config, mesh, workdir, primary, checkpoints, batches, base_key, step_fns, sample_fn,
            samples,
        )
        metrics_path = workdir / "metrics.jsonl"
        if primary:
            truncate_metrics(metrics_path, step, log)
            _write_missing_sample(run, step, states)
        early()
    except _StoppedEarly:
        checkpoints.close()
        log(f"\nstopped by signal {stop.signal} before training began")
        return TrainResult(workdir, checkpoints.latest_step() or 0, None, {}, interrupted=True)
    except BaseException:
        checkpoints.close()
        raise
    bar = _progress_bar(tcfg.steps, step) if progress and primary else None
    interrupted = False
    stop.training = True  # from here a stop saves a checkpoint after the current step
    try:
        with (
            metrics_writer(metrics_path, primary) as metrics_file,
            events_writer(workdir, step, primary, log) as events,
        ):
            metrics = _Metrics(tcfg, metrics_file, events, bar, step)
            try:
                states, step = _train_loop(run, states, step, stop, metrics, bar)
                metrics.flush()
            except TrainingError as e:
                raise TrainingError(f"{e}; {_last_good(run, states)}") from e
            if stop.signal is not None and step < tcfg.steps:
                interrupted = True
                if checkpoints.latest_step() != step:
                    _save(run, step, states)
                log(f"\nstopped by signal {stop.signal} at step {step}; checkpoint saved")
    finally:
        if bar is not None:
            bar.close()
        checkpoints.close()
    return TrainResult(workdir, step, states, metrics.last, interrupted)


def _last_good(run: _Run, states: States) -> str:
    """Names the newest checkpoint that restores, matches its digest and is finite."""
    target = {
        "generator": jax.tree.map(_abstract, states.generator),
        "critic": jax.tree.map(_abstract, states.critic),
    }
    step, *_ = run.checkpoints.newest_intact(target)
    folder = run.workdir / "checkpoints"
    if step is None:
        return f"there is no good checkpoint in {folder}"
    return f"the last good checkpoint (verified finite) is step {step} in {folder}"


def _abstract(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))


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
) -> tuple[Path, Checkpoints]:
    """Makes or reopens the run folder (under its lock) and checks it against ``config``.

    Resuming, a saved configuration must be compatible (``RunFolderError``); ``resume=False``
    deletes the folder's checkpoints and metrics. ``config.toml`` is not written here.
    Returns ``(workdir, checkpoints)``, ``checkpoints`` empty when not resuming.
    """
    tcfg = config.train
    workdir = run_path(workdir)
    if not is_remote(workdir):  # object stores have no folders to make
        workdir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = workdir / "checkpoints"
    # Leftovers of a killed save are removed by one process only (the folder is shared), and
    # only under the lock: a second trainer's cleanup would delete a live save.
    checkpoints = Checkpoints(ckpt_dir, max_to_keep=tcfg.max_to_keep, cleanup=primary)
    config_path = workdir / "config.toml"
    try:
        if resume and checkpoints.all_steps() and config_path.exists():
            _check_compatible(_read_run_config(config_path), config, config_path)
        if not resume and checkpoints.all_steps():
            for step in checkpoints.all_steps():
                checkpoints.manager.delete(step)  # collective: every process calls it
            if primary:
                (workdir / "metrics.jsonl").unlink(missing_ok=True)
    except BaseException:
        checkpoints.close()
        raise
    return workdir, checkpoints


def _restore_or_init(
    config: Config,
    checkpoints: Checkpoints,
    batches: data_lib.Batches,
    mesh: Mesh,
    primary: bool,
    log: Callable[[str], None],
) -> tuple[States, jax.Array, int]:
    """``(states, base_key, step)`` to start from: the newest intact checkpoint (which also
    puts ``batches`` back where it was), else fresh states at step 0.

    Damaged checkpoints (``Checkpoints.restore``) newer than it are moved to the run folder's
    ``damaged_checkpoints/``, with a note each; when every checkpoint is damaged that is a
    ``CheckpointError`` (``--no-resume`` starts over).
    """
    steps = checkpoints.all_steps()
    # Resuming needs only the states' shapes: initialising them would compile the networks.
    states, base_key = init_states(
        config, config.train.seed, batches.steps_per_epoch, mesh, shapes_only=bool(steps)
    )
    if not steps:
        return states, base_key, 0
    target = {"generator": states.generator, "critic": states.critic}
    step, restored, record, damaged = checkpoints.newest_intact(target)
    if step is None:
        raise CheckpointError(
            f"{checkpoints.directory}: no intact checkpoint to resume from "
            f"({damaged[0][1]}); --no-resume starts over"
        )
    for bad, reason in damaged:
        log(f"note: {reason}")
        if primary and not is_remote(checkpoints.directory):
            moved = checkpoints.set_aside(bad, Path(checkpoints.directory).parent / DAMAGED)
            log(f"note: moved it to {moved}; resuming from step {step}")
    if DIGEST not in record:
        log(f"note: checkpoint {step} predates checkpoint digests (jwarp 0.2); not verified")
    states = States(restored["generator"], restored["critic"])
    try:  # verified by its digest, except in checkpoints of jwarp 0.2
        batches.restore(record["data"])
        return states, base_key, int(record["step"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{checkpoints.directory}/{step}/record/metadata: no valid step or data position "
            f"({type(e).__name__}: {e}); --no-resume starts over"
        ) from None


def _train_loop(
    run: _Run, states: States, step: int, stop: StopRequest, metrics: _Metrics, bar
) -> tuple[States, int]:
    """Iterations from ``step`` until ``train.steps`` or a stop request, with checkpoints and
    sample GIFs on their schedules (and a checkpoint at a stop). Returns ``(states, step)``."""
    config, tcfg = run.config, run.config.train
    compiled = False
    while step < tcfg.steps and stop.signal is None:
        key = jax.random.fold_in(run.base_key, step)
        states, step_metrics = train_iteration(
            config, states, run.batches, key, run.step_fns, run.mesh
        )
        if not compiled and bar is not None:  # the first call compiled: not in the rate
            bar.set_description_str("", refresh=False)
            bar.unpause()
        compiled = True
        step += 1
        stop.check(step)
        metrics.add(step, step_metrics)
        if bar is not None:
            bar.update(1)
        boundary = step % tcfg.checkpoint_every == 0 or step == tcfg.steps
        if boundary or stop.signal is not None:
            metrics.flush()  # a non-finite loss fails before the save, a state in the save
            _save(run, step, states)
        if _sample_due(tcfg, step):
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
    if not np.isfinite(frames).all():
        raise NonFiniteStateError(
            f"non-finite sample frames at step {step}: the generator is not finite; not written"
        )
    if run.primary:
        scale = max(1, 128 // run.config.data.image_size)
        write_gif(_sample_path(run, step), frames, fps=8, scale=scale)
        events.image(step, "samples", _frame_strip(frames, scale))


def _sample_path(run: _Run, step: int) -> Path:
    return run.workdir / "samples" / f"step_{step:07d}.gif"


def _sample_due(tcfg, step: int) -> bool:
    """Whether step ``step`` gets a sample GIF: every ``train.sample_every`` and the last."""
    return step % tcfg.sample_every == 0 or step == tcfg.steps


def _write_missing_sample(run: _Run, step: int, states: States) -> None:
    """Writes the sample GIF of resumed ``step`` if it is due and missing (a run killed
    between the checkpoint and the GIF), without a TensorBoard image (its events may have one)."""
    if step > 0 and _sample_due(run.config.train, step) and not _sample_path(run, step).exists():
        _write_sample(run, step, states, NoEvents())


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
    bar; ``last`` is the latest read.

    ``step_time_s`` is wall-clock time per step since the previous record (everything the loop
    did: steps, checkpoints, samples), timed when a step's metrics have been read, which waits
    for the step to finish on the devices. The first step, which compiles, has a record of its
    own when it is logged, and is left out of the next one.
    """

    def __init__(self, tcfg, metrics_file, events, bar, start_step: int):
        self.tcfg, self.file, self.events, self.bar = tcfg, metrics_file, events, bar
        self.pending = None  # (step, device metrics) not read yet
        self.last: dict[str, float] = {}
        self.start_step = start_step
        self.clock = (start_step, time.perf_counter())  # (step, when it was finished)

    def add(self, at: int, device_metrics: dict) -> None:
        """Keeps step ``at``'s metrics for later, reading the step before's."""
        if self.pending is not None:
            self._read(self.pending)
        self.pending = (at, device_metrics)

    def flush(self) -> None:
        """Reads the metrics kept for later, if any."""
        if self.pending is not None:
            self._read(self.pending)
            self.pending = None

    def _read(self, item) -> None:
        at, device_metrics = item
        host = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
        now = time.perf_counter()  # step ``at`` has finished
        if not all(math.isfinite(v) for v in host.values()):
            bad = [k for k, v in host.items() if not math.isfinite(v)]
            raise TrainingError(f"non-finite {', '.join(bad)} at step {at}")
        self.last = host
        since, then = self.clock
        if at % self.tcfg.log_every == 0 or at == self.tcfg.steps:
            seconds = (now - then) / (at - since)
            record = {"step": at, **host, "step_time_s": seconds}
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
            self.events.scalars(at, {**host, "step_time_s": seconds}, prefix="train/")
            self.clock = (at, now)
        elif at == self.start_step + 1:  # the first step compiled: start timing after it
            self.clock = (at, now)
        if self.bar is not None:
            shown = ("loss", "fit", "wasserstein", "critic_loss", "neg_jac_frac")
            postfix = {k: f"{host[k]:.4g}" for k in shown if k in host}
            self.bar.set_postfix(postfix, refresh=False)


DAMAGED = "damaged_checkpoints"  # where a resume moves damaged checkpoints


def _progress_bar(total: int, initial: int):
    from tqdm import tqdm

    # "compiling" until the first step's call returns (``_train_loop``), and the time it took
    # is left out of the rate: counted as a step, it made the first estimate read "26:27:27".
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="compiling")


def _read_run_config(path) -> Config:
    """A run folder's ``config.toml``; through ``epath`` for a ``gs://`` folder."""
    if is_remote(path):
        try:
            return load_config(None, tomllib.loads(path.read_text()))
        except (tomllib.TOMLDecodeError, ConfigError) as e:
            raise ConfigError(f"{path}: {e}") from None
    return load_config(str(path))  # names the file in its errors


__all__ = [
    "RunFolderError",
    "TrainResult",
    "TrainingError",
    "train",
    "training_batches",
]
