"""Timing and result helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
import statistics
import time

import jax

from jwarp.files import atomic_write


def timed(fn, *args, repeats: int):
    """Compile time (the first call) and the times of ``repeats`` further calls."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return compile_s, times


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


def write_json(path: str, rows: list[dict]) -> None:
    """Writes ``rows`` with the JAX version and device they were measured on."""
    meta = {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
    }
    atomic_write(path, json.dumps({**meta, "rows": rows}, indent=1))
