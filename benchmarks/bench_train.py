"""Training-step benchmark for presets: compile time, step times, peak memory.

    python benchmarks/bench_train.py faces_l2 faces_gan digits_gan [--repeats 5] [--json out]
    python benchmarks/bench_train.py paper_mnist paper_faces --repeats 2

``paper_mnist`` runs on the bundled digits (same 32x32x1 shapes; no MNIST download). One row per
preset: generator step, critic step (GAN presets) and a full iteration (n_critic critic steps +
one generator step), medians over ``--repeats`` after a warm-up call, peak RSS of the process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import jax
import jax.numpy as jnp
from common import write_json

from jwarp import data as data_lib
from jwarp.config import load_config
from jwarp.training import create_states, make_step_fns


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: KiB


def bench(preset: str, repeats: int) -> dict:
    overrides = {"data.data_dir": ""} if preset != "paper_mnist" else {}
    if preset == "paper_mnist":
        overrides = {"data.name": "digits"}
    config = load_config(preset, overrides)
    x0, x1, paired = data_lib.load_dataset(config.data, "train", 0)
    batches = data_lib.Batches(x0, x1, config.train.batch_size, paired=paired, seed=0)
    states = create_states(config, jax.random.key(0), batches.steps_per_epoch)
    generator_step, critic_step = make_step_fns(config, states)
    batch = {k: jnp.asarray(v) for k, v in next(batches).items()}
    key = jax.random.key(1)
    gen, critic = states.generator, states.critic
    critic_params = critic.params if critic is not None else None

    def run_gen(gen):
        gen, m = generator_step(gen, critic_params, batch)
        jax.block_until_ready(m)
        return gen

    def run_critic(critic):
        critic, m = critic_step(critic, gen.params, batch, key)
        jax.block_until_ready(m)
        return critic

    row = {
        "preset": preset,
        "field": config.flow.field,
        "batch": config.train.batch_size,
        "image": f"{config.data.image_size}x{config.data.image_size}x{config.data.channels}",
    }
    t0 = time.perf_counter()
    gen = run_gen(gen)
    row["gen_compile_s"] = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        gen = run_gen(gen)
        times.append(time.perf_counter() - t0)
    row["gen_step_s"] = statistics.median(times)
    row["gen_step_min_s"], row["gen_step_max_s"] = min(times), max(times)
    if critic is not None:
        t0 = time.perf_counter()
        critic = run_critic(critic)
        row["critic_compile_s"] = time.perf_counter() - t0
        ctimes = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            critic = run_critic(critic)
            ctimes.append(time.perf_counter() - t0)
        row["critic_step_s"] = statistics.median(ctimes)
        row["iteration_s"] = row["gen_step_s"] + config.loss.n_critic * row["critic_step_s"]
    else:
        row["iteration_s"] = row["gen_step_s"]
    row["steps_per_s"] = 1.0 / row["iteration_s"]
    row["peak_rss_gb"] = peak_rss_gb()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
    print(
        f"{'preset':12s} {'field':10s} {'gen s':>8s} {'critic s':>9s} {'iter s':>8s} "
        f"{'it/s':>6s} {'compile s':>9s} {'RSS GB':>7s}"
    )
    rows = []
    for preset in args.presets:
        r = bench(preset, args.repeats)
        rows.append(r)
        print(
            f"{r['preset']:12s} {r['field']:10s} {r['gen_step_s']:8.3f} "
            f"{r.get('critic_step_s', float('nan')):9.3f} {r['iteration_s']:8.3f} "
            f"{r['steps_per_s']:6.2f} {r['gen_compile_s']:9.1f} {r['peak_rss_gb']:7.2f}",
            flush=True,
        )
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
