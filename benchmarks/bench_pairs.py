"""Pair fitting on real faces, side by side with dipy's SyN (the classical symmetric
diffeomorphic registration).

    pip install -e ".[bench]"        # dipy, a benchmark-only dependency
    python benchmarks/bench_pairs.py [--data-dir ../shared/data] [--pairs 8] [--json out.json]

Two sets of real 64x64 grey pairs from the SMILEsmileD test split:

* ``neutral -> smiling``: each of the first ``--pairs`` neutral test faces with the smiling test
  face nearest to it in pixels (a different person: the data has no same-person pairs).
* ``known warp``: ``--pairs`` neutral test faces under a smooth random stationary warp of up to
  3 px per unit time, made with RK4 (not the fit's Euler steps), so the true map is known and
  the fitted one can be scored against it (``map_error_px``: mean ``|u - u_true|`` away from
  the 8 px border, where the edge-extended image says nothing about motion).

Methods: no motion; SyN with cross-correlation and with sum of squared differences (levels
[100, 50, 25], dipy's defaults otherwise); ``jwarp.fit.fit_pair`` with its defaults (L2) and
with local cross-correlation. Every column is measured on the end frame's map ``phi = g + u``
with ``jwarp.metrics``: PSNR of the warped source to the target, smallest det J (over the
pairs), the share of pixels with ``J < 0.25`` or ``J > 4``, the share with ``J <= 0``, bending
energy (px^-2), seconds per pair (median; jwarp's compile, once per shape, shown apart) and
that time over SyN with cross-correlation's. A jwarp pair's time is the fit and its end map,
one compiled program, as SyN's is its registration and its field. The methods take turns pair
by pair, so that a load on the machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from common import write_json
from scipy import ndimage

from jwarp.data import load_smiles, nearest_pairs
from jwarp.fit import FitConfig, fit_pair
from jwarp.flow import SolverConfig, integrate_svf
from jwarp.metrics import naturalness, psnr
from jwarp.sampler import warp

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BORDER = 8


def real_pairs(data_dir: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` neutral test faces and, for each, the nearest smiling test face: ``[n, 64, 64, 1]``."""
    return nearest_pairs(*load_smiles(data_dir / "SMILEsmileD", "test"), n)


def known_warps(faces: np.ndarray, seed: int = 0, amplitude: float = 3.0):
    """``faces`` under smooth random stationary warps: ``(x0, x1, u_true)``."""
    rng = np.random.default_rng(seed)
    n, h, w, _ = faces.shape
    v = ndimage.gaussian_filter(rng.normal(size=(n, h, w, 2)), (0, 6, 6, 0))
    v *= amplitude / np.abs(v).max(axis=(1, 2, 3), keepdims=True)
    rk4 = SolverConfig(solver="rk4", step_size=0.05)
    u_true = integrate_svf(jnp.asarray(v, jnp.float32), (1.0,), config=rk4).disp[0]
    return faces, np.asarray(warp(jnp.asarray(faces), u_true)), np.asarray(u_true)


def measure(x0, x1, u, u_true=None) -> dict:
    """Issue 21's columns for one end map ``u [H, W, 2]``."""
    u = jnp.asarray(u, jnp.float32)[None]
    nat = naturalness(u[None])  # of the end map alone
    out = {
        "psnr": float(psnr(warp(jnp.asarray(x0)[None], u), jnp.asarray(x1)[None])[0]),
        "min_det": float(nat["min_det"][0]),
        "extreme_pct": 100 * float(nat["extreme_frac"][0]),
        "fold_pct": 100 * float(nat["fold_frac"][0]),
        "bending": float(nat["bending"][0]),
    }
    if u_true is not None:
        inner = (slice(BORDER, -BORDER), slice(BORDER, -BORDER))
        out["map_error_px"] = float(np.mean(np.linalg.norm((u[0] - u_true)[inner], axis=-1)))
    return out


def syn(metric: str):
    from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
    from dipy.align.metrics import CCMetric, SSDMetric

    def register(x0, x1):
        sim = CCMetric(2) if metric == "cc" else SSDMetric(2)
        sdr = SymmetricDiffeomorphicRegistration(sim, level_iters=[100, 50, 25])
        mapping = sdr.optimize(x1[..., 0].astype(np.float64), x0[..., 0].astype(np.float64))
        # dipy's forward field is jwarp's pull-back u, (row, column) = (dy, dx): its
        # ``transform(x0)`` equals ``warp(x0, u)`` (checked to 1e-6 on these faces).
        return np.asarray(mapping.get_forward_field(), np.float32)

    return register, 0.0


def jwarp_fit(config: FitConfig, shape):
    def end_map(x0, x1):
        v = fit_pair(x0, x1, config)
        return integrate_svf(v, (1.0,), config=config.solver, penalties=False).disp[0, 0]

    x = jnp.zeros((1, *shape), jnp.float32)
    t0 = time.perf_counter()
    compiled = jax.jit(end_map).lower(x, x).compile()
    compile_s = time.perf_counter() - t0

    def register(x0, x1):
        return compiled(jnp.asarray(x0)[None], jnp.asarray(x1)[None])

    return register, compile_s


def run_methods(methods: dict, x0s, x1s, u_trues=None) -> dict[str, dict]:
    """Every method on every pair, taking turns pair by pair: ``{name: summary}``."""
    rows = {name: [] for name in methods}
    times = {name: [] for name in methods}
    for register, _ in methods.values():
        jax.block_until_ready(register(x0s[0], x1s[0]))  # a warm-up call: first-call costs apart
    for i, (x0, x1) in enumerate(zip(x0s, x1s)):
        for name, (register, _) in methods.items():
            t0 = time.perf_counter()
            u = jax.block_until_ready(register(x0, x1))
            times[name].append(time.perf_counter() - t0)
            rows[name].append(measure(x0, x1, u, None if u_trues is None else u_trues[i]))
    return {name: _summary(rows[name], times[name], u_trues is not None) for name in methods}


def _summary(rows: list[dict], times: list[float], known: bool) -> dict:
    out = {
        "psnr": statistics.mean(r["psnr"] for r in rows),
        "psnr_per_pair": [round(r["psnr"], 2) for r in rows],
        "min_det": min(r["min_det"] for r in rows),
        "pairs_folded": sum(r["fold_pct"] > 0 for r in rows),
        "extreme_pct": statistics.mean(r["extreme_pct"] for r in rows),
        "worst_extreme_pct": max(r["extreme_pct"] for r in rows),
        "fold_pct": statistics.mean(r["fold_pct"] for r in rows),
        "bending": statistics.mean(r["bending"] for r in rows),
        "median_s": statistics.median(times),
    }
    if known:
        out["map_error_px"] = statistics.mean(r["map_error_px"] for r in rows)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--pairs", type=int, default=8, help="pairs per set")
    parser.add_argument("--json", default="benchmarks/results/cpu_pairs.json")
    args = parser.parse_args(argv)

    x0, x1 = real_pairs(args.data_dir, args.pairs)
    sets = {
        "neutral -> smiling": (x0, x1, None),
        "known warp": known_warps(x0),
    }
    # Each method is set up (jwarp: compiled) once and used for both sets.
    methods = {
        "SyN, cross-correlation": syn("cc"),
        "SyN, sum of squared differences": syn("ssd"),
        "jwarp fit_pair (L2, default)": jwarp_fit(FitConfig(), x0.shape[1:]),
        "jwarp fit_pair (local correlation)": jwarp_fit(
            FitConfig(similarity="lncc"), x0.shape[1:]
        ),
    }
    results = []
    head = (f"{'set':20s} {'method':36s} {'PSNR dB':>8s} {'min J':>7s} {'extreme%':>9s} "
            f"{'fold%':>6s} {'bending':>8s} {'s/pair':>7s} {'x SyN':>6s} {'compile':>8s} "
            f"{'map err':>8s}")
    print(head)
    for set_name, (a, b, u_true) in sets.items():
        still = [measure(p, q, np.zeros((*p.shape[:2], 2), np.float32)) for p, q in zip(a, b)]
        print(f"{set_name:20s} {'no motion':36s} {statistics.mean(r['psnr'] for r in still):8.2f}")
        results.append({"name": f"{set_name} / no motion", "set": set_name, "method": "no motion",
                        "psnr": statistics.mean(r["psnr"] for r in still)})
        summaries = run_methods(methods, a, b, u_true)
        syn_s = summaries["SyN, cross-correlation"]["median_s"]
        for name, r in summaries.items():
            compile_s = methods[name][1]
            r["time_over_syn"] = r["median_s"] / syn_s  # measured in this run, taking turns
            err = f"{r['map_error_px']:8.3f}" if "map_error_px" in r else ""
            print(f"{set_name:20s} {name:36s} {r['psnr']:8.2f} {r['min_det']:7.2f} "
                  f"{r['extreme_pct']:9.2f} {r['fold_pct']:6.2f} {r['bending']:8.4f} "
                  f"{r['median_s']:7.3f} {r['time_over_syn']:6.2f} {compile_s:8.1f} {err}")
            results.append({"name": f"{set_name} / {name}", "set": set_name, "method": name,
                            "compile_s": compile_s, **r})
    if args.json:
        write_json(args.json, results)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
