"""Evaluate a trained run (or pair fitting) against simple baselines on the same images.

    python -m jwarp.evaluate --workdir runs/faces_l2                 # test split, one table
    python -m jwarp.evaluate --workdir runs/digits_gan --json eval.json
    python -m jwarp.evaluate --fit --n 10                            # pair fitting on 10 faces

The measures are those of SPEC §8 (``jwarp.metrics``), averaged over the test images (PSNR as
the mean of per-image dB):

* ``endpoint_psnr``/``endpoint_ssim``: ``x1_hat = warp(x0, u_1)`` against ``x1`` (paired data:
  faces, paired folders and arrays; for faces GAN runs ``x1`` is the same face smiling).
* ``endpoint_psnr_moving``: the endpoint PSNR over the pixels where ``x0`` and ``x1`` differ
  (grown by 2 pixels; ``jwarp.metrics.motion_mask``): on faces the smile moves ~2 % of the
  pixels, so whole-image PSNR starts high (~36 dB for no motion at all at 64 px).
* ``psnr@s``: faces only: the frame at ``t = s`` against the true face at smile level ``s``
  (``s = 0.25, 0.5, 0.75``); ``best_psnr@s``: the best frame of the trajectory (``t`` on a grid
  of 21 times) against it, so a model that moves at another pace is not hidden by timing.
* ``neg_jacobian_pct``: percentage of pixels with ``J <= 0`` over all 21 saved times.
* ``inverse_psnr``: ``warp(x1_hat, u_{-1})`` against ``x0``.
* digits: ``reached_target_pct``: warped 3s that a classifier fitted on real digits only
  (``jwarp.metrics.DigitClassifier``) labels 4; ``single_stroke_pct``: warped 3s whose ink
  (> 0.5) is one connected piece, i.e. did not tear.

Baselines on the same images: ``identity`` (no motion: every frame is ``x0``),
``cross_dissolve`` (``(1 - t) x0 + t x1``; paired data; it is given the end frame, so its
endpoint is exact) and, for digits, ``real_targets`` (the real test 4s, the classifier's ceiling).
Everything is deterministic. ``exact`` in the table (``null`` in the JSON) marks a value that
is infinite by construction (identical images).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jwarp import metrics

TIMES = np.arange(21, dtype=np.float32) / 20  # 0, 0.05, ..., 1 (0.25, 0.5, 0.75 exact)
SMILES = (0.25, 0.5, 0.75)
METHODS = ("model", "identity", "cross_dissolve", "real_targets")


class EvaluationError(ValueError):
    """A problem with what ``jwarp.evaluate`` was asked to do; the message is one line."""


def _mean(values) -> float:
    return float(np.mean(np.asarray(values, np.float64)))


@jax.jit
def _frame_scores(frames, x0, x1):
    """Per-image endpoint PSNR, SSIM and PSNR where the pair differs, against ``x1``."""
    mask = metrics.motion_mask(x0, x1)
    return (
        metrics.psnr(frames[-1], x1),
        metrics.ssim(frames[-1], x1),
        metrics.masked_psnr(frames[-1], x1, mask),
    )


@jax.jit
def _trajectory_psnr(frames, truth):
    """``[T, B]`` PSNR of every frame against one true frame ``[B, H, W, C]``."""
    return jax.vmap(lambda f: metrics.psnr(f, truth))(frames)


def _dissolve(x0, x1) -> np.ndarray:
    t = TIMES.reshape(-1, 1, 1, 1, 1)
    return (1 - t) * x0[None] + t * x1[None]


def score_paths(
    paths: dict[str, np.ndarray], x0: np.ndarray, x1: np.ndarray | None, truths
) -> dict[str, dict[str, float]]:
    """Frame measures of several ``[T, B, H, W, C]`` trajectories saved at ``TIMES``, on the same
    images: end-frame PSNR, SSIM and PSNR where the pair differs (against ``x1``, if given), and
    for each ``level: truth [B, H, W, C]`` of ``truths`` the PSNR at ``t = level`` and the best
    over the trajectory. Values are means over the images, ``{path: {measure: value}}``."""
    out: dict[str, dict[str, float]] = {}
    for name, frames in paths.items():
        row: dict[str, float] = {}
        if x1 is not None:
            p, s, m = _frame_scores(jnp.asarray(frames), jnp.asarray(x0), jnp.asarray(x1))
            row["endpoint_psnr"], row["endpoint_ssim"] = _mean(p), _mean(s)
            row["endpoint_psnr_moving"] = _mean(m)
        for level, truth in truths.items():
            traj = np.asarray(_trajectory_psnr(jnp.asarray(frames), jnp.asarray(truth)))
            k = int(np.argmin(np.abs(TIMES - level)))
            row[f"psnr@{level:g}"] = _mean(traj[k])
            row[f"best_psnr@{level:g}"] = _mean(traj.max(axis=0))
        out[name] = row
    return out


def _batched(fn: Callable, n: int, batch_size: int, *arrays):
    """``fn`` over ``[N, ...]`` arrays in chunks of ``batch_size`` (the last padded, so one
    compile); ``fn`` returns ``[T, B, ...]`` arrays, concatenated along ``B``."""
    outs = []
    for start in range(0, n, batch_size):
        chunk = [None if a is None else a[start : start + batch_size] for a in arrays]
        m = len(chunk[0])
        if m < batch_size and n > batch_size:
            chunk = [None if c is None else np.concatenate([c, c[-1:].repeat(batch_size - m, 0)])
                     for c in chunk]
        outs.append(jax.tree.map(lambda y, m=m: np.asarray(y)[:, :m], fn(*chunk)))
    return jax.tree.map(lambda *ys: np.concatenate(ys, axis=1), *outs)


def evaluate_run(
    workdir: str | Path,
    split: str = "test",
    checkpoint: int | None = None,
    n: int | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Measures a run's model and the baselines on ``split`` (see the module docstring).

    Args:
      workdir: a run folder written by ``train.py``.
      split: ``"test"`` or ``"train"``.
      checkpoint: step to load; default the latest.
      n: evaluate the first ``n`` images (default all).
      batch_size: images per solve.

    Returns:
      ``{"workdir", "step", "split", "data", "field", "n_images", "seconds", "metrics":
      {measure: {method: value or None}}}`` (plus ``"classifier_accuracy"`` for digits).
    """
    from jwarp.animation import Animator
    from jwarp.data import faces_at, load_dataset

    t_start = time.perf_counter()
    animator = Animator.load(workdir, checkpoint)
    cfg = animator.config
    x0, x1, paired = load_dataset(cfg.data, split, cfg.train.seed)
    digits = cfg.data.name in ("digits", "mnist")
    count = len(x0) if n is None else min(len(x0), n)
    x0 = x0[:count]
    x1 = x1[:count] if paired else x1
    if animator.needs_target and not paired:
        raise EvaluationError(f"{workdir}: a pair-conditioned model needs paired test data")
    ts = jnp.asarray(TIMES)

    def solve(a, b):
        a = jnp.asarray(a)
        b = None if not animator.needs_target else jnp.asarray(b)
        anim = animator.animate(a, ts, b)
        back = animator.displacements(a, jnp.ones((1,), jnp.float32), b, "backward")
        return anim.frames, anim.disp, back

    frames, disp, back = _batched(
        solve, count, batch_size, x0, x1 if animator.needs_target else None
    )
    x1_hat = frames[-1]
    table: dict[str, dict[str, Any]] = {}

    truths = {}
    if cfg.data.name == "faces":
        truths = dict(zip(SMILES, faces_at(count, SMILES, cfg.data.image_size,
                                           cfg.data.channels, split, cfg.train.seed)))
    paths = {"model": frames, "identity": np.broadcast_to(x0, frames.shape)}
    if paired:
        paths["cross_dissolve"] = _dissolve(x0, x1)
    for method, row in score_paths(paths, x0, x1 if paired else None, truths).items():
        for key, value in row.items():
            table.setdefault(key, {})[method] = value

    table["neg_jacobian_pct"] = {
        "model": 100 * _mean(metrics.negative_jacobian_fraction(jnp.asarray(disp))),
        "identity": 0.0,
    }
    table["inverse_psnr"] = {
        "model": _mean(metrics.inverse_psnr(jnp.asarray(x0), jnp.asarray(x1_hat),
                                            jnp.asarray(back[0]))),
        "identity": math.inf,
    }
    extra: dict[str, Any] = {}
    if digits:
        grey = lambda x: x[..., :1]
        classifier = metrics.digit_classifier(cfg.data.image_size, cfg.train.seed)
        extra["classifier_accuracy"] = classifier.accuracy
        reached = lambda x: 100 * float(np.mean(classifier.predict(grey(x)) == 4))
        single = lambda x: 100 * float(np.mean(metrics.stroke_count(grey(x)) == 1))
        table["reached_target_pct"] = {
            "model": reached(x1_hat), "identity": reached(x0), "real_targets": reached(x1),
        }
        table["single_stroke_pct"] = {
            "model": single(x1_hat), "identity": single(x0), "real_targets": single(x1),
        }
    clean = {
        key: {m: (v if math.isfinite(v) else None) for m, v in row.items()}
        for key, row in table.items()
    }
    return {
        "workdir": str(workdir),
        "step": animator.step,
        "split": split,
        "data": cfg.data.name,
        "field": cfg.flow.field,
        "n_images": count,
        **extra,
        "seconds": round(time.perf_counter() - t_start, 2),
        "metrics": clean,
    }


def evaluate_fit(n: int = 10, size: int = 64, split: str = "test", seed: int = 0,
                 fit_steps: int = 300) -> dict[str, Any]:
    """Pair fitting (``animate.py --input a --target b``) on ``n`` faces pairs.

    Each pair is fitted on its own (as ``animate.py`` does, one pair per call) and timed end to
    end, compile included for the first.

    Returns:
      as ``evaluate_run``, with ``"seconds_per_pair"`` (median) and ``"seconds_first"``.
    """
    from jwarp.animation import animate_pair
    from jwarp.data import faces, faces_at
    from jwarp.fit import FitConfig

    x0, x1 = faces(n, size=size, channels=4, split=split, seed=seed)
    cfg = FitConfig(steps=fit_steps)
    ts = jnp.asarray(TIMES)
    frames, disp, times = [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        anim = animate_pair(jnp.asarray(x0[i : i + 1]), jnp.asarray(x1[i : i + 1]), ts, cfg,
                            fit_size=64)
        anim = jax.block_until_ready(anim)
        times.append(time.perf_counter() - t0)
        frames.append(np.asarray(anim.frames))
        disp.append(np.asarray(anim.disp))
    frames, disp = np.concatenate(frames, axis=1), np.concatenate(disp, axis=1)
    truths = dict(zip(SMILES, faces_at(n, SMILES, size, 4, split, seed)))
    paths = {"model": frames, "identity": np.broadcast_to(x0, frames.shape),
             "cross_dissolve": _dissolve(x0, x1)}
    table: dict[str, dict[str, Any]] = {}
    for method, row in score_paths(paths, x0, x1, truths).items():
        for key, value in row.items():
            table.setdefault(key, {})[method] = value
    table["neg_jacobian_pct"] = {
        "model": 100 * _mean(metrics.negative_jacobian_fraction(jnp.asarray(disp))),
        "identity": 0.0,
    }
    clean = {k: {m: (v if math.isfinite(v) else None) for m, v in row.items()}
             for k, row in table.items()}
    return {
        "workdir": None,
        "step": None,
        "split": split,
        "data": "faces (pair fitting)",
        "field": "stationary (fitted)",
        "n_images": n,
        "seconds_first": round(times[0], 2),
        "seconds_per_pair": round(float(np.median(times)), 2),
        "metrics": clean,
    }


def format_table(result: dict[str, Any]) -> str:
    """The result of ``evaluate_run``/``evaluate_fit`` as a fixed-width text table."""
    methods = [m for m in METHODS if any(m in row for row in result["metrics"].values())]
    head = (
        f"{result['data']} ({result['field']} field), {result['n_images']} {result['split']} "
        f"images" + (f", step {result['step']}" if result["step"] is not None else "")
    )
    lines = [head]
    if "classifier_accuracy" in result:
        lines.append(f"digit classifier accuracy on real test digits: "
                     f"{100 * result['classifier_accuracy']:.1f} %")
    if "seconds_per_pair" in result:
        lines.append(f"seconds per pair (median): {result['seconds_per_pair']}, "
                     f"first incl. compile: {result['seconds_first']}")
    width = max(len(k) for k in result["metrics"]) + 2
    lines.append("measure".ljust(width) + "".join(m.rjust(16) for m in methods))
    for key, row in result["metrics"].items():
        cells = []
        for m in methods:
            if m not in row:
                cells.append("-")
            elif row[m] is None:
                cells.append("exact")
            else:
                cells.append(f"{row[m]:.4f}" if "ssim" in key else f"{row[m]:.2f}")
        lines.append(key.ljust(width) + "".join(c.rjust(16) for c in cells))
    return "\n".join(lines)


def _main(argv: list[str] | None) -> int:
    from jwarp.cli import ArgumentParser

    parser = ArgumentParser(
        prog="python -m jwarp.evaluate",
        description="Evaluate a trained run (or pair fitting) against baselines.",
    )
    parser.add_argument("--workdir", help="run folder written by train.py")
    parser.add_argument("--split", default="test", choices=("test", "train"))
    parser.add_argument("--checkpoint", type=int, help="checkpoint step (default: latest)")
    parser.add_argument("--n", type=int, help="evaluate the first N images (default: all)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per solve")
    parser.add_argument("--fit", action="store_true",
                        help="evaluate pair fitting on --n faces pairs (default 10) instead")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.n is not None and args.n < 1:
        raise EvaluationError(f"--n: expected >= 1, got {args.n}")
    if args.batch_size < 1:
        raise EvaluationError(f"--batch-size: expected >= 1, got {args.batch_size}")
    if args.fit:
        result = evaluate_fit(args.n or 10, split=args.split)
    else:
        if not args.workdir:
            raise EvaluationError("--workdir: expected a run folder (or --fit)")
        if not Path(args.workdir).is_dir():
            raise EvaluationError(f"--workdir {args.workdir}: no such run folder")
        try:
            result = evaluate_run(args.workdir, args.split, args.checkpoint, args.n,
                                  args.batch_size)
        except ValueError as e:  # Animator.load: not a run folder, no such checkpoint
            if isinstance(e, EvaluationError) or type(e) is not ValueError:
                raise
            raise EvaluationError(str(e)) from None
    print(format_table(result))
    if args.json:
        from jwarp.files import atomic_write

        atomic_write(args.json, (json.dumps(result, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m jwarp.evaluate``; errors are one line on stderr, exit code 2."""
    from jwarp.cli import run_cli

    return run_cli("python -m jwarp.evaluate", _main, argv, errors=(EvaluationError,))


if __name__ == "__main__":
    sys.exit(main())
