"""Per-pair fits: does the end-frame loss decide the mid frame? (docs/results.md).

    python docs/mid_frame_fits.py        # ~5 min on 2 CPU cores
    # table on stdout, docs/results/mid_frame_fits.json

Fits one field per test pair by optimisation, with no network and no training set, so there is
no generalisation gap. The field lives on a 2 px grid, upsampled bilinearly. Each
fit's frames are scored by ``jwarp.evaluate.score_paths``, as a model is: PSNR against the true
frames at s = 0.25, 0.5 and 0.75, at t = s and for the best of 21 frames. Fields:

* ``stationary`` and ``straight``: as in ``jwarp.velocity``.
* ``time-dependent``: ``v(x, t)`` piecewise linear between 5 knots in t. It stands in for
  the paper's neural field, whose velocity also depends on time, through ``u_t``.

Each field is fitted with the paper's loss (end frame only: ``end``), and stationary and
straight also with the true half smile added to the loss (``end+mid``). The second shows
whether the same family of warps can draw the half smile at t = 0.5 at all.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jwarp import metrics
from jwarp.data import faces_at
from jwarp.evaluate import SMILES, TIMES, score_paths
from jwarp.field import get_field
from jwarp.flow import SolverConfig, integrate
from jwarp.sampler import identity_grid, sample, warp

DOCS = Path(__file__).resolve().parent
KNOTS = 5  # time knots of the time-dependent field
CASES = (
    ("stationary", "end"),
    ("straight", "end"),
    ("time-dependent", "end"),
    ("stationary", "end+mid"),
    ("straight", "end+mid"),
)


def _time_dependent(t, u, v):
    """``du/dt = v(g + u, t)``, ``v: [K, B, H, W, 2]`` linear in t between knots."""
    x = t * (KNOTS - 1)
    i = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, KNOTS - 2)
    a = x - i
    vt = (1 - a) * v[i] + a * v[i + 1]
    return sample(vt, identity_grid(*u.shape[1:3])[None] + u, "border")


def solve(field: str, v, ts, penalties: bool = True):
    """``FlowResult`` of a fitted field ``v: [K, B, H, W, 2]`` (``K = 1`` unless time-dependent)."""
    if field == "time-dependent":
        solver = SolverConfig(solver="euler", step_size=0.05)
        return integrate(_time_dependent, v, v.shape[1:4], ts, config=solver, penalties=penalties)
    solver = SolverConfig(field=field, solver="euler", step_size=0.05)
    return get_field(field).from_velocity(v[0], ts, config=solver, penalties=penalties)


def fit(field: str, loss: str, x0, x1, xm, steps: int, grid: int, lr: float = 0.1):
    """Adam on a coarse field; returns ``v: [K, B, H, W, 2]`` upsampled to the image."""
    b, h, w, _ = x0.shape
    knots = KNOTS if field == "time-dependent" else 1
    w_mid = 1.0 if loss == "end+mid" else 0.0

    def upsample(coarse):
        return jax.image.resize(coarse, (knots, b, h, w, 2), "linear")

    def objective(coarse):
        res = solve(field, upsample(coarse), (0.5, 1.0))
        sse = lambda a, ref: jnp.mean(jnp.sum((a - ref) ** 2, axis=(1, 2, 3)))  # noqa: E731
        end = sse(warp(x0, res.disp[1]), x1)
        mid = sse(warp(x0, res.disp[0]), xm)
        return end + w_mid * mid + jnp.mean(res.jd + res.og)

    opt = optax.adam(lr)

    @jax.jit
    def run(coarse):
        def step(carry, _):
            coarse, state = carry
            updates, state = opt.update(jax.grad(objective)(coarse), state)
            return (optax.apply_updates(coarse, updates), state), None

        (coarse, _), _ = jax.lax.scan(step, (coarse, opt.init(coarse)), None, steps)
        return upsample(coarse)

    return run(jnp.zeros((knots, b, -(-h // grid), -(-w // grid), 2), jnp.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="test faces")
    parser.add_argument("--steps", type=int, default=600, help="Adam steps per fit")
    parser.add_argument("--grid", type=int, default=2, help="field grid spacing in pixels")
    parser.add_argument("--json", default=str(DOCS / "results" / "mid_frame_fits.json"))
    args = parser.parse_args()

    levels = (0.0, *SMILES, 1.0)
    frames_at = jnp.asarray(faces_at(args.n, levels, 64, 4, "test", 0))
    x0, x1 = frames_at[0], frames_at[-1]
    truths = dict(zip(SMILES, frames_at[1:-1]))
    xm = truths[0.5]
    dissolve = jnp.asarray(
        (1 - TIMES)[:, None, None, None, None] * x0 + TIMES[:, None, None, None, None] * x1
    )
    rows = score_paths({"cross_dissolve": dissolve}, x0, x1, truths)
    base = rows["cross_dissolve"]
    keys = ("endpoint_psnr", "psnr@0.25", "psnr@0.5", "best_psnr@0.5", "psnr@0.75")
    print(
        f"{args.n} test faces, one field per pair ({args.steps} Adam steps, {args.grid} px "
        "grid); PSNR in dB, t = s columns relative to the cross-dissolve at t = s"
    )
    print(
        f"{'field, loss':28s} {'end':>6s} {'t=.25':>6s} {'t=.5':>6s} {'best .5':>7s} "
        f"{'t=.75':>6s} {'negJ %':>7s} {'s':>4s}"
    )
    for field, loss in CASES:
        start = time.perf_counter()
        v = fit(field, loss, x0, x1, xm, args.steps, args.grid)
        res = solve(field, v, TIMES, penalties=False)
        frames = jax.vmap(lambda d: warp(x0, d))(res.disp)
        row = score_paths({"fit": frames}, x0, x1, truths)["fit"]
        row["neg_jacobian_pct"] = 100 * float(np.mean(metrics.negative_jacobian_fraction(res.disp)))
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows[f"{field}, {loss}"] = row
        rel = [row["endpoint_psnr"]] + [row[k] - base[k.replace("best_", "")] for k in keys[1:]]
        print(
            f"{field + ', ' + loss:28s} {rel[0]:6.2f} {rel[1]:+6.2f} {rel[2]:+6.2f} "
            f"{rel[3]:+7.2f} {rel[4]:+6.2f} {row['neg_jacobian_pct']:7.3f} "
            f"{row['seconds']:4.0f}"
        )
    print(
        f"{'cross_dissolve (absolute)':28s} {'':6s} {base['psnr@0.25']:6.2f} "
        f"{base['psnr@0.5']:6.2f} {'':7s} {base['psnr@0.75']:6.2f}"
    )
    # Strict JSON: the cross-dissolve's end frame is exact (inf dB), written as null.
    rows = {
        name: {k: (v if math.isfinite(v) else None) for k, v in row.items()}
        for name, row in rows.items()
    }
    out = {"n_faces": args.n, "steps": args.steps, "grid": args.grid, "split": "test", "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
