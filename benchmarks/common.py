"""Timing and result helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
import resource
import statistics
import time

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
