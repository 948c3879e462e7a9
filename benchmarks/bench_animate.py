"""Animation benchmark: time to produce the 120 frames of one image, and to write the GIF.

Both fields (``stationary``, ``neural``) x two U-Nets (the small CPU one, ``UNetConfig()``, and
the authors' ``UNetConfig.paper()``) x 32x32x1 (MNIST-like) and 64x64x4 (RGBA faces), Euler
h = 0.05, through ``Animator.frames`` (one solve, frames read at 120 times). Times are after
compilation (shown separately), median / min / max over ``--repeats`` calls. The authors'
PyTorch code takes 221 ms (32x32) and 481 ms (64x64) for this solve on the reference 2-core CPU.

    python benchmarks/bench_animate.py [--repeats 5] [--json out.json] [--unrolled]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from common import row, timed, write_json

from jwarp.animation import Animator
from jwarp.config import load_config
from jwarp.execution import plan
from jwarp.media import write_gif
from jwarp.models import UNet, param_count
from jwarp.objective import generator_in_channels

AUTHORS_MS = {32: 221.0, 64: 481.0}
SHAPES = ((32, 1), (64, 4))  # (size, channels)


def print_row(r):
    authors = r.get("authors_ms")
    ref = f"{r['median_s'] * 1000 / authors:9.2f}x" if authors else " " * 10
    print(
        f"{r['name']:40s} {r['median_s'] * 1000:9.1f} {r['min_s'] * 1000:9.1f} "
        f"{r['max_s'] * 1000:9.1f} {r['compile_s']:9.1f} {ref}",
        flush=True,
    )


def image(size, channels, seed=0):
    x = jax.random.uniform(jax.random.key(seed), (1, size, size, channels))
    if channels == 4:
        x = x.at[..., 3].set(1.0)
    return x


def bench_frames(args):
    ts = np.linspace(0.0, 1.0, args.frames, dtype=np.float32)
    rows = []
    loops = ("diffrax", "unrolled") if args.unrolled else ("diffrax",)
    for unet_name in ("small", "paper"):
        for field in ("stationary", "neural"):
            for size, channels in SHAPES:
                for loop in loops:
                    if loop == "unrolled" and (field, unet_name) != ("neural", "small"):
                        continue
                    overrides = {
                        "data.image_size": size,
                        "data.channels": channels,
                        "flow.field": field,
                        "flow.solver": "euler",
                        "flow.step_size": 0.05,
                        "model.unet.final_init_std": 1e-2,
                    }
                    if unet_name == "paper":
                        overrides.update(
                            {
                                "model.unet.encoder": [64, 128, 256, 512],
                                "model.unet.decoder": [1024, 512, 256, 128],
                                "model.unet.extra": [64, 32],
                            }
                        )
                    config = load_config(None, overrides)
                    unet = UNet(config.model.unet)
                    cin = generator_in_channels(config)
                    params = jax.jit(unet.init)(jax.random.key(0), jnp.zeros((1, size, size, cin)))
                    animator = Animator(config, params)
                    x0 = image(size, channels)
                    if loop == "diffrax":
                        fn = lambda a=animator, x=x0: a.frames(x, ts)
                    else:  # what the training plan picks for a narrow neural field on CPU
                        fn = _unrolled_fn(config, params, x0, ts)
                    compile_s, times = timed(fn, repeats=args.repeats)
                    r = row(
                        f"{field:10s} {unet_name:5s} {size}x{size}x{channels} {loop}",
                        compile_s,
                        times,
                        field=field,
                        unet=unet_name,
                        size=size,
                        channels=channels,
                        loop=loop,
                        frames=len(ts),
                        conv=plan(config, "animate").unet_conv,
                        params=param_count(params),
                        authors_ms=AUTHORS_MS[size],
                    )
                    rows.append(r)
                    print_row(r)
    return rows


def _unrolled_fn(config, params, x0, ts):
    """The frames through the unrolled loop (steps land on all 120 save times)."""
    from jwarp.field import flow
    from jwarp.flow import Loop
    from jwarp.sampler import warp

    run = plan(config, "train")
    apply_fn = run.unet(config.model.unet).apply

    @jax.jit
    def frames(params, x0):
        disp = flow(
            apply_fn, params, x0, ts, config=config.flow, loop=Loop("unrolled"), penalties=False
        ).disp
        return jax.vmap(lambda u: warp(x0, u))(disp)

    return lambda: frames(params, x0)


def bench_gif(args):
    rows = []
    t = args.frames
    with tempfile.TemporaryDirectory() as tmp:
        for size, channels in SHAPES:
            # Smoothly moving content, so the palette sees realistic colour counts.
            base = np.array(image(size, channels, seed=1))[0]
            base[..., :3] = np.cumsum(base[..., :3], axis=1) / size
            if channels == 4:
                yy, xx = np.mgrid[:size, :size]
                base[..., 3] = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 3) ** 2
            frames = np.stack([np.roll(base, k * size // t, axis=1) for k in range(t)])
            path = Path(tmp) / "bench.gif"
            compile_s, times = timed(
                lambda f=frames, p=path: write_gif(p, f, fps=30), repeats=args.repeats
            )
            r = row(
                f"write GIF {t} frames {size}x{size}x{channels}",
                compile_s,
                times,
                size=size,
                channels=channels,
                frames=t,
                bytes=path.stat().st_size,
            )
            rows.append(r)
            print_row(r)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument(
        "--unrolled",
        action="store_true",
        help="also time the unrolled loop for the small neural field (slow to compile)",
    )
    args = parser.parse_args()
    print(
        f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{jax.devices()[0].device_kind}, {platform.processor() or platform.machine()}"
    )
    print(
        f"{'one image, Euler h=0.05':40s} {'median ms':>9s} {'min ms':>9s} {'max ms':>9s} "
        f"{'compile s':>9s} {'/authors':>10s}"
    )
    rows = bench_frames(args) + bench_gif(args)
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
