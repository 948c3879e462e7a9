"""Data-parallel training steps on 1, 2 and 4 devices: step time and the loss they compute.

    python benchmarks/bench_scaling.py [--preset faces_l2] [--devices 1 2 4] [--repeats 5]
    python benchmarks/bench_scaling.py --accelerators [--devices 1 8]   # the GPUs/TPUs present

Default (CPU): each device count runs in its own process with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``, which splits the same CPU cores into N
"devices". The N-device run executes the real sharded program (batch split over devices,
gradients all-reduced), so this is a **correctness run, not a speed claim**: it shows that the
step runs, computes the same loss and what the sharding costs on one machine, never a speed-up.
``--accelerators`` times meshes over the first N real devices in this process (default: 1, 2,
4, ... and all of them); there the per-device batch shrinks as N grows (the global batch is the
preset's), so examples/s measures strong scaling.

One row per device count: generator step (and critic step for GAN presets) medians over
``--repeats`` after a compiling call, the iteration time (n_critic critic steps + one generator
step), examples/s, and the loss of the first step with its relative difference to 1 device.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CORRECTNESS_NOTE = (
    "forced CPU host devices share the same cores: a correctness run, not a speed claim"
)


def bench(preset: str, n_devices: int, repeats: int) -> dict:
    """Compiles and times the step functions on a mesh over the first ``n_devices``."""
    import jax
    from common import timed

    from jwarp import data as data_lib
    from jwarp import parallel
    from jwarp.config import load_config
    from jwarp.optim import create_states
    from jwarp.steps import make_step_fns

    # paper_mnist on the bundled digits: same 32x32x1 shapes, no MNIST download.
    config = load_config(preset, {"data.name": "digits"} if preset == "paper_mnist" else {})
    mesh = parallel.data_mesh(jax.devices()[:n_devices])
    batch_size = config.train.batch_size
    x0, x1, paired = data_lib.load_dataset(config.data, "train", 0)
    batches = data_lib.Batches(
        x0, x1, batch_size, paired=paired, seed=0, rows=parallel.local_rows(batch_size, mesh)
    )
    states = create_states(config, jax.random.key(0), batches.steps_per_epoch, mesh)
    fns = make_step_fns(config, states, mesh)
    generator_step, critic_step = fns.generator_step, fns.critic_step
    batch = parallel.global_batch(next(batches), mesh)
    key = jax.device_put(jax.random.key(1), parallel.replicated(mesh))
    live = {"gen": states.generator, "critic": states.critic, "losses": []}
    critic_params = states.critic.params if states.critic is not None else None

    def gen():
        live["gen"], metrics = generator_step(live["gen"], critic_params, batch)
        live["losses"].append(metrics["loss"])
        return metrics

    def critic():
        live["critic"], metrics = critic_step(live["critic"], live["gen"].params, batch, key)
        return metrics

    row = {
        "preset": preset,
        "devices": n_devices,
        "device": jax.devices()[0].device_kind,
        "global_batch": batch_size,
        "per_device_batch": batch_size // n_devices,
    }
    row["gen_compile_s"], gen_times = timed(gen, repeats=repeats)
    row["gen_step_s"] = sorted(gen_times)[len(gen_times) // 2]
    row["iteration_s"] = row["gen_step_s"]
    if states.critic is not None:
        row["critic_compile_s"], critic_times = timed(critic, repeats=repeats)
        row["critic_step_s"] = sorted(critic_times)[len(critic_times) // 2]
        row["iteration_s"] += config.loss.n_critic * row["critic_step_s"]
    row["examples_per_s"] = batch_size / row["iteration_s"]
    row["loss_step1"] = float(live["losses"][0])
    # The machine's 1-minute load average: on a shared machine, times grow with it.
    row["load_average"] = os.getloadavg()[0]
    return row


def run_forced(preset: str, n_devices: int, repeats: int) -> dict:
    """``bench`` in a fresh process with ``n_devices`` forced CPU devices."""
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(n_devices), "--preset", preset]
        + ["--repeats", str(repeats)],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        sys.exit(f"{n_devices} devices failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    base = rows[0]["loss_step1"]
    print(
        f"{'devices':>7s} {'batch/dev':>9s} {'gen s':>8s} {'critic s':>9s} {'iter s':>8s} "
        f"{'ex/s':>8s} {'compile s':>9s} {'loss step 1':>12s} {'rel diff':>9s} {'load':>5s}"
    )
    for r in rows:
        r["loss_rel_diff"] = abs(r["loss_step1"] - base) / abs(base)
        print(
            f"{r['devices']:7d} {r['per_device_batch']:9d} {r['gen_step_s']:8.3f} "
            f"{r.get('critic_step_s', float('nan')):9.3f} {r['iteration_s']:8.3f} "
            f"{r['examples_per_s']:8.1f} {r['gen_compile_s']:9.1f} {r['loss_step1']:12.6g} "
            f"{r['loss_rel_diff']:9.1e} {r['load_average']:5.1f}",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="faces_l2")
    parser.add_argument("--devices", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--accelerators", action="store_true", help="time the devices present")
    parser.add_argument("--json", default=None, help="default: benchmarks/results/...json")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:  # one forced-device process: print one JSON row
        print(json.dumps(bench(args.preset, args.child, args.repeats)))
        return

    from jwarp.config import load_config

    results = Path(__file__).resolve().parent / "results"
    if args.accelerators:
        import jax

        count = jax.device_count()
        counts = args.devices or sorted({min(2**i, count) for i in range(count.bit_length())})
        batch_size = load_config(args.preset).train.batch_size
        skipped = [n for n in counts if n > count or batch_size % n]
        if skipped:
            print(f"skipped device counts {skipped}: above {count} or not dividing {batch_size}")
        counts = [n for n in counts if n not in skipped]
        print(f"jax {jax.__version__}: {count} x {jax.devices()[0].device_kind}")
        rows = [bench(args.preset, n, args.repeats) for n in counts]
        for r in rows:
            r["kind"] = "accelerators"
        default_json = results / f"{jax.default_backend()}_scaling_{args.preset}.json"
    else:
        print(f"{args.preset} on forced CPU devices ({CORRECTNESS_NOTE})")
        rows = [run_forced(args.preset, n, args.repeats) for n in args.devices or (1, 2, 4)]
        for r in rows:
            r["kind"] = CORRECTNESS_NOTE
        default_json = results / f"cpu_scaling_{args.preset}.json"
    print_table(rows)

    from common import write_json

    write_json(str(args.json or default_json), rows)


if __name__ == "__main__":
    main()
