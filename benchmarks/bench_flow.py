"""Flow benchmark: forward and gradient time of the warping ODE on this machine.

Both fields x {rolled diffrax loop, unrolled loop} x {lax, im2col, winograd conv}, Euler with 20
steps, batch 16 of 64x64x3 images, a small U-Net; plus one pass of the authors' U-Net
(batch 64, 32x32x3) with each convolution implementation (``auto``: chosen per layer). Prints
a table (median / min / max over repeats after one warm-up call; compile time separately) and
writes JSON.

    python benchmarks/bench_flow.py [--repeats 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp
from common import row, timed, write_json

from jwarp import Loop, SolverConfig, UNet, UNetConfig, warp
from jwarp.field import flow
from jwarp.models import param_count


def bench_fields(args):
    key = jax.random.key(0)
    b, h, w, c = 16, 64, 64, 3
    x0 = jax.random.uniform(key, (b, h, w, c))
    x1 = jnp.roll(x0, 2, axis=2)
    rows = []
    for field in ("stationary", "neural"):
        for conv in ("lax", "im2col", "winograd"):
            unet = UNet(UNetConfig(final_init_std=1e-2), conv=conv)
            cin = c if field == "stationary" else c + 2
            params = jax.jit(unet.init)(key, jnp.zeros((1, h, w, cin)))
            for loop in ("diffrax", "unrolled"):
                if args.quick and field == "neural" and conv == "lax" and loop == "diffrax":
                    continue  # ~1 min per gradient call on a 2-core CPU
                config = SolverConfig(field=field, solver="euler", step_size=0.05)
                run = Loop(loop)

                def forward(p, x0, config=config, run=run, apply=unet.apply):
                    return flow(apply, p, x0, (1.0,), config=config, loop=run).disp

                def loss(p, x0, x1, config=config, run=run, apply=unet.apply):
                    res = flow(apply, p, x0, (1.0,), config=config, loop=run)
                    fit = jnp.sum((warp(x0, res.disp[-1]) - x1) ** 2) / b
                    return fit + jnp.mean(res.jd + res.og)

                reps = (
                    max(2, args.repeats // 2)
                    if (field, conv) == ("neural", "lax")
                    else (args.repeats)
                )
                for what, fn, fargs in (
                    ("forward", jax.jit(forward), (params, x0)),
                    ("gradient", jax.jit(jax.grad(loss)), (params, x0, x1)),
                ):
                    compile_s, times = timed(fn, *fargs, repeats=reps)
                    r = row(
                        f"{field:10s} {loop:8s} {conv:8s} {what}",
                        compile_s,
                        times,
                        field=field,
                        loop=loop,
                        conv=conv,
                        what=what,
                        params=param_count(params),
                    )
                    rows.append(r)
                    print_row(r)
    return rows


def bench_paper_unet(args):
    rows = []
    x = jax.random.uniform(jax.random.key(1), (64, 32, 32, 3))
    for conv in ("lax", "im2col", "winograd", "by-size"):
        unet = UNet(UNetConfig.paper(add_coords=False), conv=conv)
        params = jax.jit(unet.init)(jax.random.key(0), x)
        fwd = jax.jit(unet.apply)
        grad = jax.jit(jax.grad(lambda p, x, apply=unet.apply: jnp.sum(apply(p, x) ** 2)))
        for what, fn in (("forward", fwd), ("fwd+bwd", grad)):
            compile_s, times = timed(fn, params, x, repeats=args.repeats)
            r = row(
                f"paper U-Net 64x32x32x3 {conv:8s} {what}",
                compile_s,
                times,
                conv=conv,
                what=what,
                params=param_count(params),
            )
            rows.append(r)
            print_row(r)
    return rows


def print_row(r):
    print(
        f"{r['name']:44s} {r['median_s']:9.3f} {r['min_s']:9.3f} {r['max_s']:9.3f} "
        f"{r['compile_s']:9.1f}",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the slowest configuration")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--skip-fields", action="store_true")
    args = parser.parse_args()
    print(
        f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{jax.devices()[0].device_kind}, {platform.processor() or platform.machine()}"
    )
    print(
        f"{'configuration (Euler, 20 steps, 16x64x64x3)':44s} {'median s':>9s} {'min s':>9s} "
        f"{'max s':>9s} {'compile s':>9s}"
    )
    rows = [] if args.skip_fields else bench_fields(args)
    rows += bench_paper_unet(args)
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
