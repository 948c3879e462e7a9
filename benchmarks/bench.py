"""Runs every benchmark, prints one table and writes ``benchmarks/results.json``.

    python benchmarks/bench.py [--quick] [--repeats 5] [--paper-repeats N] [--out FILE]

Each benchmark runs in its own process (``bench_train.py`` once per preset), so the peak RSS
shown is that benchmark's own; times are medians / min / max over ``--repeats`` calls after a
compiling call, whose time is shown separately. ``--quick`` leaves out the ``paper_*`` presets
(about 25 minutes of the ~40 on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from jwarp.files import atomic_write  # noqa: E402

SMALL_PRESETS = ("faces_l2", "faces_gan", "digits_gan")
PAPER_PRESETS = ("paper_mnist", "paper_faces")


def run(script: str, args: list[str], out: Path) -> dict:
    """One benchmark script in a fresh process; its JSON result."""
    cmd = [sys.executable, str(HERE / script), *args, "--json", str(out)]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def table_row(r: dict, peak_rss_gb: float) -> dict:
    """A result row in the common schema (time rows only; memory rows pass through)."""
    authors = r.get("authors_s")
    if authors is None and r.get("authors_ms") is not None:
        authors = r["authors_ms"] / 1000
    out = dict(r)
    out.setdefault("peak_rss_gb", peak_rss_gb)
    out["authors_s"] = authors
    if authors and "median_s" in r:
        out["speedup_vs_authors"] = authors / r["median_s"]
    return out


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'benchmark':46s} {'median':>9s} {'min':>9s} {'max':>9s} {'n':>3s} "
        f"{'compile s':>9s} {'RSS GB':>7s} {'authors':>9s} {'speedup':>8s}"
    )
    for r in rows:
        if "median_s" not in r:
            continue
        authors = f"{r['authors_s']:9.3f}" if r.get("authors_s") else " " * 9
        speed = f"{r['speedup_vs_authors']:7.2f}x" if r.get("speedup_vs_authors") else ""
        print(
            f"{r['name'][:46]:46s} {_t(r['median_s'])} {_t(r['min_s'])} {_t(r['max_s'])} "
            f"{r['repeats']:3d} {r['compile_s']:9.1f} {r['peak_rss_gb']:7.2f} {authors} {speed}"
        )
    for r in rows:
        if "ratio_200_over_20" in r:
            print(
                f"{r['name']}: {r['total_mb_20']:.1f} MB at 20 steps, {r['total_mb_200']:.1f} MB "
                f"at 200 ({r['ratio_200_over_20']:.2f}x)"
            )


def _t(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}ms" if seconds < 1 else f"{seconds:8.2f}s"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave out the paper_* presets")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--paper-repeats", type=int, default=None, help="repeats of the paper_* presets"
    )
    parser.add_argument("--out", default=str(HERE / "results.json"))
    args = parser.parse_args()
    reps = ["--repeats", str(args.repeats)]
    presets = SMALL_PRESETS + (() if args.quick else PAPER_PRESETS)
    jobs = [("bench_flow.py", reps + ["--quick"]), ("bench_animate.py", reps)]
    jobs += [("bench_memory.py", [])]
    paper_reps = ["--repeats", str(args.paper_repeats or args.repeats)]
    for p in presets:
        jobs.append(("bench_train.py", [p, *(paper_reps if p in PAPER_PRESETS else reps)]))
    rows, meta = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (script, script_args) in enumerate(jobs):
            result = run(script, script_args, Path(tmp) / f"{i}.json")
            meta = {k: v for k, v in result.items() if k not in ("rows", "peak_rss_gb")}
            for r in result["rows"]:
                rows.append({"benchmark": script, **table_row(r, result["peak_rss_gb"])})
    print_table(rows)
    meta["machine"] = f"{platform.processor() or platform.machine()}, {_cpus()} CPUs"
    atomic_write(args.out, json.dumps({**meta, "rows": rows}, indent=1))
    print(f"\nwrote {args.out}")


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
