"""Timing and result helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

from jwarp.files import atomic_write


def timed(fn, *args, repeats: int):
    """Compile time and the times of ``repeats`` calls after a warm-up call.

    The compile time is the first call's time minus the median later call (tracing and
    compilation; the first call also runs once). Callers with a ``jax.jit`` function should
    prefer ``compile_time`` (exact).
    """
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return max(0.0, first - statistics.median(times)), times


def compile_time(jitted, *args):
    """``(compiled, seconds)``: ``jitted`` lowered and compiled for ``args``; the time it took."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def row(name, compile_s, times, **extra) -> dict:
    """One result: median, min and max of ``times`` plus ``extra`` fields."""
    return {
        "name": name,
        "compile_s": compile_s,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": len(times),
        **extra,
    }


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, compilation included (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def write_json(path: str, rows: list[dict]) -> None:
    """Writes ``rows`` with the JAX version and device they were measured on."""
    meta = {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "peak_rss_gb": peak_rss_gb(),
    }
    atomic_write(path, json.dumps({**meta, "rows": rows}, indent=1))


def cpu_name() -> str:
    """This machine's CPU with its widest vector instructions and core count, e.g.
    ``AMD EPYC (AVX-512, 2 cores)``: the same code runs 2x apart on AVX2 and AVX-512."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.processor() or 'unknown CPU'} ({os.cpu_count()} cores)"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), platform.machine())
    simd = "AVX-512" if "avx512f" in text else "AVX2" if "avx2" in text else "no AVX2"
    return f"{model} ({simd}, {os.cpu_count()} cores)"


def run_command(cmd: list[str], cache: str | None, cwd: Path) -> float:
    """Seconds ``cmd`` takes in a fresh process, end to end, with its compilation cache in
    ``cache`` (None: ``--no-cache``-like, a throwaway folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    with tempfile.TemporaryDirectory(prefix="jwarp-bench-cache-") as throwaway:
        env.update(JAX_PLATFORMS="cpu", JWARP_CACHE_DIR=cache or throwaway)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    return seconds


def cold_and_warm(cmd: list[str], repeats: int, cwd: Path) -> dict:
    """``cmd`` run ``repeats`` times cold (each with an empty cache folder) and ``repeats``
    times warm (the folder the first cold run filled): medians, minima and maxima."""
    with tempfile.TemporaryDirectory(prefix="jwarp-bench-warm-") as kept:
        cold = [run_command(cmd, kept if i == 0 else None, cwd) for i in range(repeats)]
        warm = [run_command(cmd, kept, cwd) for _ in range(repeats)]
    return {
        "cold_median_s": statistics.median(cold), "cold_min_s": min(cold),
        "cold_max_s": max(cold), "warm_median_s": statistics.median(warm),
        "warm_min_s": min(warm), "warm_max_s": max(warm), "repeats": repeats,
        "python": sys.version.split()[0],
    }
