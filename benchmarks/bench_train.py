"""Training-step benchmark for presets: compile time, step times, peak memory.

    python benchmarks/bench_train.py faces_l2 faces_gan digits_gan [--repeats 5] [--json out]
    python benchmarks/bench_train.py paper_mnist paper_faces
    python benchmarks/bench_train.py paper_mnist --set flow.field=stationary

``paper_mnist`` runs on the bundled digits (same 32x32x1 shapes; no MNIST download). Rows per
preset: the generator step; in GAN mode also the critic step and the full iteration
(``n_critic`` critic steps + one generator step): with ``loss.critic_fakes = "shared"`` the
iteration is one fused call, timed as such, and the critic row is one critic update on given
fakes (what the iteration runs ``n_critic`` times); with ``"fresh"`` the iteration is the sum
of the medians. Medians / min / max over ``--repeats`` calls after a compiling call; peak RSS
of the process (run one preset per process for per-preset memory, as ``benchmarks/bench.py``
does); ``/authors``: the median over the authors' time, ``speed-up``: the inverse. The
authors' critic step is their LSGAN critic's (their MNIST command), without a gradient penalty.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from common import compile_time, peak_rss_gb, row, write_json

from jwarp import data as data_lib
from jwarp.config import load_config
from jwarp.config_args import parse_set
from jwarp.execution import plan
from jwarp.objective import critic_objective
from jwarp.optim import create_states
from jwarp.steps import make_step_fns

# The authors' PyTorch code on the reference 2-core CPU (issue 7), seconds.
AUTHORS_S = {
    ("paper_mnist", "generator step"): 31.7,
    ("paper_mnist", "critic step"): 0.086,
    ("paper_mnist", "iteration"): 32.7,
    ("paper_faces", "generator step"): 30.2,
}


def bench(preset: str, repeats: int, sets: dict | None = None) -> list[dict]:
    overrides = {"data.name": "digits"} if preset == "paper_mnist" else {}
    config = load_config(preset, {**overrides, **(sets or {})})
    x0, x1, paired = data_lib.load_dataset(config.data, "train", 0)
    batches = data_lib.Batches(x0, x1, config.train.batch_size, paired=paired, seed=0)
    states = create_states(config, jax.random.key(0), batches.steps_per_epoch)
    fns = make_step_fns(config, states)
    batch = {k: jnp.asarray(v) for k, v in next(batches).items()}
    key = jax.random.key(1)
    live = {"gen": states.generator, "critic": states.critic}
    critic_params = live["critic"].params if live["critic"] is not None else None
    info = dict(
        overrides=sets or {},
        preset=preset,
        field=config.flow.field,
        batch=config.train.batch_size,
        image=f"{config.data.image_size}x{config.data.image_size}x{config.data.channels}",
    )
    rows = []

    def add(what, jitted, args, update):
        """Times ``jitted(*args())``; ``update`` stores its new states and returns metrics."""
        compiled, compile_s = compile_time(jitted, *args())
        times = []
        for i in range(repeats + 1):  # the first call warms up
            t0 = time.perf_counter()
            jax.block_until_ready(update(compiled(*args())))
            if i:
                times.append(time.perf_counter() - t0)
        authors = AUTHORS_S.get((preset, what))
        r = row(f"{preset} {what}", compile_s, times, what=what, authors_s=authors, **info)
        r["peak_rss_gb"] = peak_rss_gb()
        rows.append(r)
        print_row(r)
        return r

    def set_gen(out):
        live["gen"], m = out
        return m

    def set_critic(out):
        live["critic"], m = out
        return m

    def set_both(out):
        live["gen"], live["critic"], m = out
        return m

    gen = add(
        "generator step",
        fns.generator_step,
        lambda: (live["gen"], critic_params, batch),
        set_gen,
    )
    if live["critic"] is None:
        return rows
    n = config.loss.n_critic
    if config.loss.critic_fakes == "shared":
        reals = jnp.stack([jnp.asarray(next(batches)["x1"]) for _ in range(n)])
        add(
            "critic step",
            jax.jit(critic_update(config), donate_argnums=0),
            lambda: (live["critic"], batch["x0"], reals[0], key),
            set_critic,
        )
        add(
            "iteration",
            fns.gan_step,
            lambda: (live["gen"], live["critic"], batch, reals, key),
            set_both,
        )
    else:
        critic = add(
            "critic step",
            fns.critic_step,
            lambda: (live["critic"], live["gen"].params, batch, key),
            set_critic,
        )
        total = lambda k: gen[k] + n * critic[k]
        r = {**gen, "name": f"{preset} iteration", "what": "iteration", "summed": True}
        r.update({k: total(k) for k in ("median_s", "min_s", "max_s")})
        r["compile_s"] = gen["compile_s"] + critic["compile_s"]
        r["authors_s"] = AUTHORS_S.get((preset, "iteration"))
        rows.append(r)
        print_row(r)
    return rows


def critic_update(config):
    """One critic update on given fakes, as ``gan_step`` runs each of its ``n_critic``:
    ``(critic_state, fake, real, key) -> (critic_state, metrics)``."""
    update_fn = plan(config, "train").critic(config.model.critic, update=True).apply

    def update(state, fake, real, key):
        grad_fn = jax.grad(critic_objective, has_aux=True)
        grads, metrics = grad_fn(state.params, fake, real, key, config, update_fn)
        return state.apply_gradients(grads=grads), metrics

    return update


def print_row(r):
    ratio = speed_up = " " * 9
    if r.get("authors_s"):
        ratio = f"{r['median_s'] / r['authors_s']:8.2f}x"
        speed_up = f"{r['authors_s'] / r['median_s']:8.1f}x"
    print(
        f"{r['name']:34s} {r['median_s']:9.3f} {r['min_s']:9.3f} {r['max_s']:9.3f} "
        f"{r['compile_s']:9.1f} {r['peak_rss_gb']:7.2f} {ratio} {speed_up}",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    sets = dict(parse_set(item) for item in args.set)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
    print(
        f"{'preset, what':34s} {'median s':>9s} {'min s':>9s} {'max s':>9s} {'compile s':>9s} "
        f"{'RSS GB':>7s} {'/authors':>9s} {'speed-up':>9s}"
    )
    rows = [r for preset in args.presets for r in bench(preset, args.repeats, sets)]
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
