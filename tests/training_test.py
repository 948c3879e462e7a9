"""Training: smoke runs in both modes, learning through the ODE, exact resume, NaN, SIGTERM,
TensorBoard events."""

import dataclasses
import io
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state
from scipy import ndimage

from jwarp.animation import Animator
from jwarp.checkpoint import Checkpoints
from jwarp.config import load_config
from jwarp.execution import plan
from jwarp.models import Critic
from jwarp.optim import create_states, inference_params, params_ema
from jwarp.penalties import gradient_penalty
from jwarp.steps import make_step_fns
from jwarp.training import TrainingError, train

ROOT = Path(__file__).resolve().parents[1]


def _leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _tensorboard(run_dir: Path) -> tuple[dict[int, dict[str, float]], dict[int, np.ndarray]]:
    """A run folder's TensorBoard events: ``({step: {tag: value}}, {step: sample image})``."""
    from PIL import Image

    from jwarp.tensorboard import read_events

    scalars, images = {}, {}
    for event in read_events(run_dir / "tensorboard"):
        for value in event.summary.value:
            if value.HasField("image"):
                assert value.tag == "samples" and event.step not in images
                png = Image.open(io.BytesIO(value.image.encoded_image_string))
                assert png.size == (value.image.width, value.image.height)
                images[event.step] = np.asarray(png)
            else:
                scalars.setdefault(event.step, {})[value.tag] = value.simple_value
    return scalars, images


def _as_scalars(records: list[dict]) -> dict[int, dict[str, float]]:
    """``metrics.jsonl`` records as TensorBoard keeps them: ``train/NAME``, float32."""
    return {
        r["step"]: {f"train/{k}": float(np.float32(v)) for k, v in r.items() if k != "step"}
        for r in records
    }


# GAN runs are in CI through test_resume_is_exact (three of them); ~30 s of compiles here. The
# L2 run keeps the parameter average too, so CI still checks that a saved run animates with it.
@pytest.mark.parametrize("mode", ["l2", pytest.param("gan", marks=pytest.mark.slow)])
def test_smoke_run_writes_a_loadable_run_folder(tmp_path, mode):
    # Both keep a parameter average, which the saved run must animate with.
    config = load_config("smoke", {"loss.mode": mode, "optim.ema_decay": 0.5})
    initial = create_states(config, jax.random.split(jax.random.key(0))[0], 1)
    result = train(config, tmp_path, progress=False, log=lambda s: None)
    assert result.step == 2
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in records)
    assert (tmp_path / "config.toml").exists() and list((tmp_path / "samples").glob("*.gif"))
    scalars, images = _tensorboard(tmp_path)
    assert scalars == _as_scalars(records)  # every metric, at its step
    assert list(images) == [2]  # the sample's frames at t = 0, 1/3, 2/3, 1, one under another
    size, scale = config.data.image_size, 128 // config.data.image_size
    assert images[2].shape[0] == 4 * size * scale and images[2].shape[1] % (size * scale) == 0
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    assert checkpoints.latest_step() == 2
    target = {"generator": result.states.generator, "critic": result.states.critic}
    restored, record = checkpoints.restore(2, target)
    assert record["step"] == 2
    assert _leaves_equal(restored["generator"].params, result.states.generator.params)
    assert not _leaves_equal(initial.generator.params, result.states.generator.params)
    animator_params = Animator.load(tmp_path).params
    assert _leaves_equal(animator_params, inference_params(result.states.generator))
    assert not _leaves_equal(animator_params, result.states.generator.params)
    if mode == "gan":
        assert not _leaves_equal(initial.critic.params, result.states.critic.params)
        assert _leaves_equal(restored["critic"].params, result.states.critic.params)
    else:
        assert result.states.critic is None  # L2 mode has no critic to change


def test_params_ema_is_the_bias_corrected_average_of_the_updated_parameters():
    """Against Adam-style bias correction by hand (a zero-started average divided by
    ``1 - decay^n``); the updates pass through unchanged."""
    decay, lr = 0.6, 0.1
    tx = optax.chain(optax.sgd(lr), params_ema(decay))
    params = {"w": jnp.array([1.0, -2.0])}
    state = tx.init(params)
    biased, p = np.zeros(2), np.array([1.0, -2.0])
    for n in range(6):
        grads = {"w": jnp.array([0.5 * n, 1.0])}
        updates, state = tx.update(grads, state, params)
        np.testing.assert_allclose(updates["w"], -lr * grads["w"], rtol=1e-6)
        params = optax.apply_updates(params, updates)
        p = p - lr * np.array([0.5 * n, 1.0])
        biased = decay * biased + (1 - decay) * p
        want = biased / (1 - decay ** (n + 1))
        state_params = train_state.TrainState(0, None, params, tx, state)
        np.testing.assert_allclose(inference_params(state_params)["w"], want, rtol=1e-5)
    assert inference_params(train_state.TrainState(0, None, params, tx, state[:1])) is params


def test_generator_and_critic_rates_decay_together_once_per_epoch():
    """As the authors' two schedulers, which step once per epoch: the critic, which makes
    ``n_critic`` updates per iteration, decays after ``n_critic`` times as many updates. With a
    constant gradient Adam's bias-corrected step is the learning rate itself."""
    overrides = {
        "loss.mode": "gan",
        "loss.n_critic": 3,
        "optim.decay_rate": 0.5,
        "optim.decay_every": 2,
        "optim.weight_decay": 0.0,
        "optim.ema_decay": 0.0,
    }
    config = load_config("smoke", overrides)
    steps_per_epoch = 2
    states = create_states(config, jax.random.key(0), steps_per_epoch)

    def rates(tx, lr, n):
        params = {"w": jnp.zeros(())}
        state, out = tx.init(params), []
        for _ in range(n):
            updates, state = tx.update({"w": jnp.ones(())}, state, params)
            out.append(-float(updates["w"]) / lr)
        return np.array(out)

    per_decay = config.optim.decay_every * steps_per_epoch  # iterations between decays
    want = 0.5 ** (np.arange(3 * per_decay) // per_decay)
    np.testing.assert_allclose(
        rates(states.generator.tx, config.optim.lr, 3 * per_decay), want, rtol=1e-5
    )
    n_critic = config.loss.n_critic
    critic_rates = rates(states.critic.tx, config.optim.critic_lr, 3 * per_decay * n_critic)
    np.testing.assert_allclose(critic_rates, np.repeat(want, n_critic), rtol=1e-5)


def test_critic_updates_run_the_same_critic_as_the_generators_loss():
    """On CPU the plan runs WGAN-GP critic updates with Winograd convolutions (the gradient
    penalty's second-order gradients): the same function of the same parameters, to fp32
    rounding, through the penalty's gradient."""
    config = load_config("smoke", {"loss.mode": "gan", "data.image_size": 16})
    run = plan(config, "train")
    critic_fn = run.critic(config.model.critic).apply
    update_fn = run.critic(config.model.critic, update=True).apply
    rng = np.random.default_rng(0)
    real, fake = (jnp.asarray(rng.random((2, 16, 16, 3)), jnp.float32) for _ in range(2))
    params = Critic(config.model.critic).init(jax.random.key(0), real)

    def gp_grads(fn):
        gp = lambda p: gradient_penalty(lambda x: fn(p, x), real, fake, jax.random.key(1))
        return jax.jit(jax.value_and_grad(gp))(params)

    (want, want_g), (got, got_g) = gp_grads(critic_fn), gp_grads(update_fn)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    chex.assert_trees_all_close(got_g, want_g, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("field", ["stationary", "straight"])
def test_l2_learns_a_translation_through_the_ode(field):
    """The endpoint error falls 8x: gradients flow through the solver into the U-Net.

    The exact shift leaves 1/16 of the start's error (the target's border holds pixels the
    start does not have); the smoke U-Net settles at 1/9 to 1/11 by step 100, depending on the
    initialisation's draw (seeds 0-2)."""
    config = load_config(
        "smoke",
        {
            "flow.field": field,
            "data.image_size": 16,
            "data.channels": 1,
            "optim.lr": 3e-3,
            "optim.b1": 0.9,
            "optim.weight_decay": 0.0,
            "flow.step_size": 0.25,
            "model.unet.out_scale": 4.0,
        },
    )
    rng = np.random.default_rng(0)
    blobs = ndimage.gaussian_filter(rng.random((4, 24, 24, 1)), (0, 2, 2, 0))
    blobs = (blobs - blobs.min()) / np.ptp(blobs)
    x0 = jnp.asarray(blobs[:, 4:20, 4:20], jnp.float32)
    x1 = jnp.asarray(blobs[:, 5:21, 3:19], jnp.float32)  # shifted by (1, -1) px
    batch = {"x0": x0, "x1": x1}
    states = create_states(config, jax.random.key(0), 1)
    generator_step = make_step_fns(config, states).generator_step
    gen = states.generator
    errors = []
    for _ in range(150):
        gen, metrics = generator_step(gen, None, batch)
        errors.append(float(metrics["endpoint_sq"]))
    assert errors[-1] < errors[0] / 8, (errors[0], errors[-1])
    assert generator_step._cache_size() == 1  # jitted once: no retracing across steps


@pytest.mark.slow  # ~36 s of compiles on 2 cores; the shared-fakes iteration is paper_mnist's
def test_shared_fakes_step_equals_critic_steps_then_a_generator_step():
    """The fused ``"shared"`` iteration against the unfused steps: ``n_critic`` critic steps on
    fakes from the same sources and parameters (so the same fakes), then a generator step
    against the updated critic, whose gradient ``jax.grad`` takes from scratch."""
    n = 3
    config = load_config(
        "smoke", {"loss.mode": "gan", "loss.n_critic": n, "loss.critic_fakes": "shared"}
    )
    size, c, b = config.data.image_size, config.data.channels, config.train.batch_size
    x = jax.random.uniform(jax.random.key(3), (n + 2, b, size, size, c))
    batch, reals = {"x0": x[0], "x1": x[1]}, x[2:]
    key = jax.random.key(7)
    copy = lambda tree: jax.tree.map(jnp.copy, tree)  # the steps donate their states
    states = create_states(config, jax.random.key(0), 1)
    fns = make_step_fns(config, states)
    gen, critic, metrics = fns.gan_step(
        copy(states.generator), copy(states.critic), batch, reals, key
    )

    ref_gen, ref_critic = copy(states.generator), copy(states.critic)
    for i in range(n):
        source_real = {"x0": batch["x0"], "x1": reals[i]}
        ref_critic, ref_cm = fns.critic_step(
            ref_critic, ref_gen.params, source_real, jax.random.fold_in(key, i)
        )
    ref_gen, ref_gm = fns.generator_step(ref_gen, ref_critic.params, batch)
    chex.assert_trees_all_close(critic.params, ref_critic.params, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(gen.params, ref_gen.params, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(metrics, {**ref_gm, **ref_cm}, rtol=1e-4, atol=1e-6)
    # Not vacuous: the critic moved, and the generator's update depends on the moved critic.
    moved = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), critic.params, states.critic.params)
    assert max(jax.tree.leaves(moved)) > 1e-4
    stale_gen, _ = fns.generator_step(copy(states.generator), states.critic.params, batch)
    diff = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), gen.params, stale_gen.params)
    assert max(jax.tree.leaves(diff)) > 1e-7


def test_resume_is_exact(tmp_path):
    overrides = {"loss.mode": "gan", "train.checkpoint_every": 3, "train.sample_every": 100}
    straight = train(
        load_config("smoke", {**overrides, "train.steps": 6}),
        tmp_path / "a",
        progress=False,
        log=lambda s: None,
    )
    first = train(
        load_config("smoke", {**overrides, "train.steps": 3}),
        tmp_path / "b",
        progress=False,
        log=lambda s: None,
    )
    assert first.step == 3
    # What a run killed after step 3's checkpoint leaves: events after it, one cut short.
    from jwarp.tensorboard import EventWriter, event_files

    orphans = EventWriter(tmp_path / "b" / "tensorboard", 3)
    orphans.scalars(4, {"loss": 99.0}, prefix="train/")
    orphans.image(5, "samples", np.zeros((4, 4, 3)))
    orphans.close()
    with open(event_files(tmp_path / "b" / "tensorboard")[-1], "ab") as f:
        f.write(b"\x30\x00\x00")
    resumed = train(
        load_config("smoke", {**overrides, "train.steps": 6}),
        tmp_path / "b",
        progress=False,
        log=lambda s: None,
    )
    assert resumed.step == 6
    chex.assert_trees_all_equal(straight.states.generator.params, resumed.states.generator.params)
    chex.assert_trees_all_equal(straight.states.critic.params, resumed.states.critic.params)
    chex.assert_trees_all_equal(
        straight.states.generator.opt_state, resumed.states.generator.opt_state
    )
    lines = lambda p: (p / "metrics.jsonl").read_text().splitlines()
    strip = lambda ls: [{k: v for k, v in json.loads(x).items() if k != "step_time_s"} for x in ls]
    assert strip(lines(tmp_path / "a")) == strip(lines(tmp_path / "b"))
    # TensorBoard too: the orphans are dropped, the resumed run's events follow step 3's.
    drop_time = lambda scalars: {
        s: {k: v for k, v in tags.items() if k != "train/step_time_s"}
        for s, tags in scalars.items()
    }
    (a_scalars, a_images), (b_scalars, b_images) = (_tensorboard(tmp_path / r) for r in "ab")
    assert sorted(b_scalars) == [1, 2, 3, 4, 5, 6]
    assert drop_time(a_scalars) == drop_time(b_scalars)
    assert sorted(a_images) == [6] and sorted(b_images) == [3, 6]  # samples at each run's end
    np.testing.assert_array_equal(a_images[6], b_images[6])


def test_a_run_resumes_under_other_execution_settings(tmp_path):
    """Execution settings are not part of the model: a run folder resumes with another loop and
    other convolutions, saves them, and ends where the uninterrupted run ends, up to float
    rounding."""
    steps = {"train.checkpoint_every": 2, "train.sample_every": 100}
    quiet = dict(progress=False, log=lambda s: None)
    straight = train(load_config("smoke", {**steps, "train.steps": 4}), tmp_path / "a", **quiet)
    train(load_config("smoke", {**steps, "train.steps": 2}), tmp_path / "b", **quiet)
    other = {"execution.loop": "unrolled", "execution.unet_conv": "im2col"}
    resumed = train(
        load_config("smoke", {**steps, **other, "train.steps": 4}), tmp_path / "b", **quiet
    )
    assert resumed.step == 4
    assert load_config(tmp_path / "b" / "config.toml").execution.unet_conv == "im2col"
    chex.assert_trees_all_close(
        straight.states.generator.params, resumed.states.generator.params, atol=1e-5, rtol=1e-4
    )


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = load_config(
        "smoke",
        {"train.steps": 6, "train.checkpoint_every": 1, "optim.lr": 1e30, "optim.b1": 0.0},
    )
    with pytest.raises(TrainingError, match=r"non-finite .* at step (\d+)") as info:
        train(config, tmp_path, progress=False, log=lambda s: None)
    bad_step = int(re.search(r"at step (\d+)", str(info.value)).group(1))
    latest = Checkpoints(tmp_path / "checkpoints").latest_step()
    assert latest is not None and latest < bad_step
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in records)


def test_sigterm_saves_a_checkpoint_and_exits_0(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--config",
            "smoke",
            "--workdir",
            str(tmp_path),
            "--steps",
            "1000000",
            "--no-progress",
            "--set",
            "train.log_every=20",
            "--set",
            "train.checkpoint_every=1000000",
            "--set",
            "train.sample_every=1000000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 180
    while not (metrics.exists() and metrics.read_text().strip()) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    latest = Checkpoints(tmp_path / "checkpoints").latest_step()
    assert latest is not None and 20 <= latest < 1000000


class _SlowScalar:
    """A metric that takes ``seconds`` to read: a step still running on the device."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __float__(self) -> float:
        time.sleep(self.seconds)
        return 0.5


def test_step_time_is_the_wall_time_per_step_and_the_compile_is_not_in_the_rate(
    tmp_path, monkeypatch, capsys
):
    """Steps that return at once (asynchronous dispatch) but take 0.1 s to finish: each record's
    ``step_time_s`` is the wall time per step (not the dispatch time), and the first call's
    compile (1 s here) is neither in the later records nor in the progress bar's rate, which
    says "compiling" until then."""
    import jwarp.training as training

    calls, bars = [], []

    def iteration(config, states, batches, key, fns, mesh):
        if not calls:
            time.sleep(1.0)  # the first call compiles
        calls.append(time.perf_counter())
        return states, {"loss": _SlowScalar(0.1)}

    def progress_bar(total, initial):
        bars.append(real_bar(total, initial))
        return bars[-1]

    real_bar = training._progress_bar
    monkeypatch.setattr(training, "train_iteration", iteration)
    monkeypatch.setattr(training, "_progress_bar", progress_bar)
    monkeypatch.setattr(training, "_write_sample", lambda *a: None)
    config = load_config("smoke", {"train.steps": 8, "train.log_every": 2,
                                   "train.checkpoint_every": 100})
    t0 = time.perf_counter()
    train(config, tmp_path, log=lambda s: None)
    elapsed = time.perf_counter() - t0
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    for r in records:  # the compile is left out; each step's 0.1 s is in
        assert 0.09 <= r["step_time_s"] < 0.5, records
    logged = sum(r["step_time_s"] * 2 for r in records)
    assert 0.7 <= logged <= elapsed - 1.0, (logged, elapsed)
    scalars, _ = _tensorboard(tmp_path)
    assert [scalars[s]["train/step_time_s"] for s in (2, 4, 6, 8)] == pytest.approx(
        [r["step_time_s"] for r in records], rel=1e-6)
    assert "compiling" in capsys.readouterr().err
    (bar,) = bars
    assert bar.start_t >= calls[0] - 0.05  # the bar's clock started after the compile
    assert bar.format_dict["elapsed"] < elapsed - 0.9


def test_resume_drops_metrics_after_its_step_and_a_line_cut_short_by_kill_9(tmp_path):
    from jwarp.runlog import truncate_metrics

    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (1, 2, 3)]
    path.write_text("\n".join(lines) + '\n{"step": 4, "lo')  # the run died mid-write
    notes = []
    truncate_metrics(path, 2, notes.append)
    assert path.read_text() == lines[0] + "\n" + lines[1] + "\n"
    truncate_metrics(path, 2, notes.append)  # nothing left to drop: the file is kept as it is
    assert path.read_text() == lines[0] + "\n" + lines[1] + "\n"
    path.write_text(lines[0] + "\n" + lines[1])  # died just before the newline
    truncate_metrics(path, 2, notes.append)
    assert path.read_text() == lines[0] + "\n" + lines[1] + "\n"
    assert notes == [] and not path.with_name("metrics.jsonl.damaged").exists()


def test_resume_keeps_a_copy_of_a_metrics_file_with_damaged_lines(tmp_path):
    from jwarp.runlog import truncate_metrics

    path = tmp_path / "metrics.jsonl"
    good = [json.dumps({"step": s, "loss": 1.0 / s}).encode() for s in (1, 2, 3)]
    original = b"\n".join([good[0], b"\xff\xfe not utf-8 \x80", good[1], b"[1, 2]", good[2]])
    path.write_bytes(original + b"\n")
    notes = []
    truncate_metrics(path, 3, notes.append)
    assert path.read_bytes() == b"\n".join(good) + b"\n"
    assert path.with_name("metrics.jsonl.damaged").read_bytes() == original + b"\n"
    assert len(notes) == 1 and "dropped 2 damaged lines" in notes[0]


def test_resume_drops_events_after_its_step_and_a_record_cut_short_by_kill_9(tmp_path):
    from jwarp.tensorboard import EventWriter, event_files, read_events, truncate_events

    directory = tmp_path / "tensorboard"
    writer = EventWriter(directory)
    for step in (1, 2, 3):
        writer.scalars(step, {"loss": 1.0 / step}, prefix="train/")
    writer.image(2, "samples", np.full((2, 3, 1), 0.5))
    writer.close()
    (path,) = event_files(directory)
    whole = path.read_bytes()
    path.write_bytes(whole + whole[-20:])  # the run died mid-write
    truncate_events(directory, 2)
    kept = [(e.step, [v.tag for v in e.summary.value]) for e in read_events(directory)]
    assert kept == [(0, []), (1, ["train/loss"]), (2, ["train/loss"]), (2, ["samples"])]
    truncated = path.read_bytes()
    truncate_events(directory, 2)  # nothing left to drop: the file is kept as it is
    assert path.read_bytes() == truncated
    truncate_events(directory, 0)  # a fresh start (--no-resume): no summaries, no file
    assert event_files(directory) == []


def test_a_full_disk_fails_an_event_write_naming_the_file(tmp_path):
    """As a ``metrics.jsonl`` write does: an ``OSError`` that ``jwarp.cli`` prints as
    ``path: reason``; writes are synchronous, so none is lost in a background thread."""
    from jwarp.tensorboard import EventWriter

    writer = EventWriter(tmp_path)
    writer._file.close()
    writer._file = open("/dev/full", "wb", buffering=0)  # every write: ENOSPC
    with pytest.raises(OSError, match="No space left") as info:
        writer.scalars(1, {"loss": 1.0})
    assert info.value.filename == str(writer.path)
    writer.close()


def test_real_data_sets_train_on_their_training_split_only(mini_smiles, real_mnist):
    from jwarp import parallel
    from jwarp.data import load_dataset
    from jwarp.training import training_batches

    for name, data_dir in (("smiles", mini_smiles), ("mnist", real_mnist)):
        config = load_config(
            "smoke", {"data.name": name, "data.data_dir": str(data_dir), "data.paired": False,
                      "data.channels": 1, "loss.mode": "gan"}
        )
        batches = training_batches(config, parallel.data_mesh())
        x0_test, x1_test, paired = load_dataset(config.data, "test")
        assert not paired
        for train_images, test_images in ((batches.x0, x0_test), (batches.x1, x1_test)):
            seen = {im.tobytes() for im in train_images}
            assert len(seen) > 0 and not any(im.tobytes() in seen for im in test_images), name


def test_area_and_bending_terms_add_their_weighted_measures_to_the_loss():
    from jwarp.metrics import bending_energy
    from jwarp.objective import generate, generator_loss
    from jwarp.penalties import area_excess

    base = load_config("smoke", {"data.channels": 1, "model.unet.final_init_std": 0.5,
                                 "model.unet.out_scale": 4.0})
    states = create_states(base, jax.random.key(0), 1)
    x = jnp.asarray(ndimage.gaussian_filter(np.random.default_rng(0).random((2, 16, 16, 1)),
                                            (0, 1, 1, 0)), jnp.float32)
    batch = {"x0": x, "x1": x[::-1]}
    params, apply_fn = states.generator.params, states.generator.apply_fn
    loss = lambda c: generator_loss(params, None, batch, c, apply_fn, None)
    plain, _ = loss(base)
    weighted = dataclasses.replace(
        base, loss=dataclasses.replace(base.loss, w_area=3.0, area_band=1.2, w_bend=5.0)
    )
    total, metrics = loss(weighted)
    u1 = generate(base, apply_fn, params, batch, penalties=False)[1].disp[-1]
    area, bend = jnp.mean(area_excess(u1, 1.2)), jnp.mean(bending_energy(u1))
    assert float(area) > 0 and float(bend) > 0  # a field strong enough to be penalised
    np.testing.assert_allclose(metrics["area"], area, rtol=1e-5)
    np.testing.assert_allclose(metrics["bend"], bend, rtol=1e-5)
    np.testing.assert_allclose(total - plain, 3.0 * area + 5.0 * bend, rtol=1e-4)

