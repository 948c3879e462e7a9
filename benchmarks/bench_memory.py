"""Adjoint memory benchmark: the compiled gradient's temporary memory against the step count.

The gradient of an L2 endpoint loss (with both penalties) through a ``neural`` flow, Euler with
20 and 200 steps, for both adjoints. ``backsolve`` (continuous adjoint) should stay flat;
``checkpoint`` (diffrax's ``RecursiveCheckpointAdjoint``, one checkpoint per step) grows with the
steps. Memory is XLA's own accounting of the compiled program (``memory_analysis()``: temporary
buffers, arguments and outputs), which is exact and does not depend on machine load.

    python benchmarks/bench_memory.py [--size 32] [--batch 8] [--json out.json]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from common import write_json

from jwarp import SolverConfig, UNet, UNetConfig, warp
from jwarp.field import flow


def gradient_memory(adjoint: str, steps: int, size: int, batch: int) -> dict:
    """Bytes XLA allocates for one gradient call (``temp`` and ``total``)."""
    unet = UNet(UNetConfig(final_init_std=1e-2))
    x0 = jax.random.uniform(jax.random.key(0), (batch, size, size, 3))
    x1 = jnp.roll(x0, 1, axis=2)
    params = jax.jit(unet.init)(jax.random.key(1), jnp.zeros((1, size, size, 5)))
    config = SolverConfig(
        field="neural", solver="euler", step_size=1.0 / steps, adjoint=adjoint
    )

    def loss(p):
        res = flow(unet.apply, p, x0, (1.0,), config=config)
        return jnp.sum((warp(x0, res.disp[-1]) - x1) ** 2) + jnp.sum(res.jd + res.og)

    mem = jax.jit(jax.grad(loss)).lower(params).compile().memory_analysis()
    total = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
    return {"temp_bytes": mem.temp_size_in_bytes, "total_bytes": total}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print(f"gradient memory, neural field, batch {args.batch} of {args.size}x{args.size}x3")
    print(f"{'adjoint':12s} {'20 steps MB':>12s} {'200 steps MB':>13s} {'ratio':>7s}")
    rows = []
    for adjoint in ("backsolve", "checkpoint"):
        m20, m200 = (gradient_memory(adjoint, n, args.size, args.batch) for n in (20, 200))
        ratio = m200["total_bytes"] / m20["total_bytes"]
        rows.append(
            {
                "name": f"gradient memory {adjoint}",
                "adjoint": adjoint,
                "total_mb_20": m20["total_bytes"] / 1e6,
                "total_mb_200": m200["total_bytes"] / 1e6,
                "ratio_200_over_20": ratio,
            }
        )
        print(
            f"{adjoint:12s} {m20['total_bytes'] / 1e6:12.1f} {m200['total_bytes'] / 1e6:13.1f} "
            f"{ratio:7.2f}",
            flush=True,
        )
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
