"""Evaluate a trained run (or pair fitting) against simple baselines on the same images.

    python -m jwarp.evaluate --workdir runs/smiles_gan               # test split, one table
    python -m jwarp.evaluate --workdir runs/mnist_gan --json eval.json
    python -m jwarp.evaluate --fit --n 10                            # pair fitting on 10 faces

The measures are those of docs/method.md §8 (``jwarp.metrics``, ``jwarp.judges``), averaged
over the test images (PSNR as the mean of per-image dB). Naturalness first, over all 21 saved
frames:

* ``neg_jacobian_pct``: percentage of (frame, pixel) where the map folds, ``J <= 0``.
* ``extreme_jacobian_pct``: where it squeezes or stretches area beyond 4x: ``J < 0.25`` or
  ``J > 4``.
* ``min_det``: the smallest ``J`` of any frame of any image; ``median_min_det``: the median
  over images of each image's smallest ``J``; ``images_folded_pct``: images with a fold in some
  frame; ``images_min_det_ge_0.1_pct``: images whose smallest ``J`` is at least 0.1.
* ``bending_energy``: of the end frame's ``u`` (mean squared second differences, px^-2).

Whether the target was reached, by a judge fitted on real images only (``smiles``, ``mnist``,
``digits``):

* ``judged_target_pct``: warped test inputs the judge assigns to the target class (smiling;
  the target digit), next to the real test inputs (``identity``) and real test targets;
* digits: ``single_stroke_pct``: images whose ink (> 0.5) is one connected piece (no tear).

Against the true frames (paired data: faces, paired folders and arrays):

* ``endpoint_psnr``/``endpoint_ssim``: ``x1_hat = warp(x0, u_1)`` against ``x1`` (for faces
  GAN runs ``x1`` is the same face smiling).
* ``endpoint_psnr_moving``: the endpoint PSNR over the pixels where ``x0`` and ``x1`` differ
  (grown by 2 pixels; ``jwarp.metrics.motion_mask``): on faces the smile moves ~2 % of the
  pixels, so whole-image PSNR starts high (~36 dB for no motion at all at 64 px).
* ``psnr@s``: faces only: the frame at ``t = s`` against the true face at smile level ``s``
  (``s = 0.25, 0.5, 0.75``); ``best_psnr@s``: the best frame of the trajectory (``t`` on a grid
  of 21 times) against it, so a model that moves at another pace is not hidden by timing.
* ``inverse_psnr``: ``warp(x1_hat, u_{-1})`` against ``x0``.

Baselines on the same images: ``identity`` (no motion: every frame is ``x0``),
``cross_dissolve`` (``(1 - t) x0 + t x1``; paired data; it is given the end frame, so its
endpoint is exact) and, where a judge exists, ``real_targets`` (the real test targets, the
judge's ceiling). Everything is deterministic. ``exact`` in the table (``null`` in the JSON)
marks a value that is infinite by construction (identical images).
"""

from __future__ import annotations

import functools
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
from jwarp.errors import EvaluationError, check_finite

TIMES = np.arange(21, dtype=np.float32) / 20  # 0, 0.05, ..., 1 (0.25, 0.5, 0.75 exact)
SMILES = (0.25, 0.5, 0.75)
METHODS = ("model", "identity", "cross_dissolve", "real_targets")  # then baselines


def _mean(values) -> float:
    return float(np.mean(np.asarray(values, np.float64)))


@functools.partial(jax.jit, static_argnames="lower")
def _frame_scores(frames, x0, x1, lower: bool = False):
    """Per-image endpoint PSNR, SSIM and PSNR where the pair differs, against ``x1``; with
    ``lower``, also PSNR and SSIM over the lower half (an aligned face's mouth and cheeks)."""
    mask = metrics.motion_mask(x0, x1)
    end = frames[-1]
    scores = (metrics.psnr(end, x1), metrics.ssim(end, x1), metrics.masked_psnr(end, x1, mask))
    if lower:
        half = x1.shape[1] // 2
        scores += (metrics.psnr(end[:, half:], x1[:, half:]),
                   metrics.ssim(end[:, half:], x1[:, half:]))
    return scores


@jax.jit
def _trajectory_psnr(frames, truth):
    """``[T, B]`` PSNR of every frame against one true frame ``[B, H, W, C]``."""
    return jax.vmap(lambda f: metrics.psnr(f, truth))(frames)


def _dissolve(x0, x1) -> np.ndarray:
    t = TIMES.reshape(-1, 1, 1, 1, 1)
    return (1 - t) * x0[None] + t * x1[None]


def score_paths(
    paths: dict[str, np.ndarray], x0: np.ndarray, x1: np.ndarray | None, truths,
    lower: bool = False,
) -> dict[str, dict[str, float]]:
    """Frame measures of several ``[T, B, H, W, C]`` trajectories saved at ``TIMES``, on the same
    images: end-frame PSNR, SSIM and PSNR where the pair differs (against ``x1``, if given;
    ``lower``: also PSNR and SSIM over the lower half), and for each ``level: truth
    [B, H, W, C]`` of ``truths`` the PSNR at ``t = level`` and the best over the trajectory.
    Values are means over the images, ``{path: {measure: value}}``."""
    out: dict[str, dict[str, float]] = {}
    for name, frames in paths.items():
        row: dict[str, float] = {}
        if x1 is not None:
            scores = _frame_scores(jnp.asarray(frames), jnp.asarray(x0), jnp.asarray(x1),
                                   lower)
            names = ("endpoint_psnr", "endpoint_ssim", "endpoint_psnr_moving",
                     "endpoint_psnr_lower", "endpoint_ssim_lower")
            row.update({k: _mean(v) for k, v in zip(names, scores)})
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


def _jacobian_rows(measures: dict[str, np.ndarray], bending: np.ndarray) -> dict[str, dict]:
    """The naturalness rows of a table from per-image ``metrics.jacobian_measures`` (over the
    frames) and the end frame's ``metrics.bending_energy``; no motion is the identity map."""
    min_det = measures["min_det"]
    return {
        "neg_jacobian_pct": {"model": 100 * _mean(measures["fold_frac"]), "identity": 0.0},
        "extreme_jacobian_pct": {"model": 100 * _mean(measures["extreme_frac"]),
                                 "identity": 0.0},
        "min_det": {"model": float(np.min(min_det)), "identity": 1.0},
        "median_min_det": {"model": float(np.median(min_det)), "identity": 1.0},
        "images_folded_pct": {"model": 100 * _mean(min_det <= 0), "identity": 0.0},
        "images_min_det_ge_0.1_pct": {"model": 100 * _mean(min_det >= 0.1), "identity": 100.0},
        "bending_energy": {"model": _mean(bending), "identity": 0.0},
    }


def _judge(
    cfg, smiles_dir: str | None = None
) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]] | None:
    """``(reached(images) -> [N] bool, description)`` for data sets with an independent judge
    (``jwarp.judges``): the smile judge for ``smiles`` (and for ``fei`` given ``smiles_dir``,
    a SMILEsmileD checkout), the digit judge for ``digits`` and ``mnist``; None for the
    others."""
    from jwarp import judges

    checkout = smiles_dir or (str(cfg.data_dir) if cfg.name == "smiles" else None)
    if cfg.name in ("smiles", "fei") and checkout:
        aligned = cfg.canonical_crop is not None  # judged as it was trained: aligned or not
        judge = judges.smile_judge(checkout, aligned)
        info = {"name": "smile: logistic regression on HOG, real SMILEsmileD train split"
                        + (", faces aligned" if aligned else ""),
                "accuracy": judge.accuracy,
                "target_rate_real_targets": judge.smiling_rate_smiling,
                "target_rate_real_sources": judge.smiling_rate_neutral}
        return (lambda x: judge.predict(x) == 1), info
    if cfg.name in ("digits", "mnist"):
        data_dir = str(cfg.data_dir) if cfg.name == "mnist" else None
        judge = judges.digit_judge(cfg.image_size, data_dir)
        info = {"name": f"digit: RBF SVM on pixels, real {cfg.name} train split, 10 classes",
                "accuracy": judge.accuracy}
        return (lambda x: judge.predict(x) == cfg.target_class), info
    return None


def evaluate_run(
    workdir: str | Path,
    split: str = "test",
    checkpoint: int | None = None,
    n: int | None = None,
    batch_size: int = 32,
    fit: bool = False,
    other: tuple[str, Any] | None = None,
    smiles_dir: str | None = None,
) -> dict[str, Any]:
    """Measures a run's model and the baselines on ``split`` (see the module docstring).

    Args:
      workdir: a run folder written by ``train.py``.
      split: ``"test"`` or ``"train"``.
      checkpoint: step to load; default the latest.
      n: evaluate the first ``n`` images (default all).
      batch_size: images per solve.
      fit: paired data: also pair fitting on each test pair (``animate.py --fit --no-morph``;
        it sees the target, so it bounds what a pure warp can reach).
      other: ``(name, Animator)``: also another model on the same inputs (it must take the
        same image size, channels and canonical crop), e.g. ``("smiles", pretrained)``.
      smiles_dir: a SMILEsmileD checkout for the smile judge, for face data other than
        ``smiles`` (``fei``).

    Returns:
      ``{"workdir", "step", "split", "data", "field", "n_images", "seconds", "metrics":
      {measure: {method: value or None}}}`` (plus ``"judge"`` for data sets with one).
    """
    from jwarp.animation import Animator
    from jwarp.data import faces_at, load_dataset

    t_start = time.perf_counter()
    animator = Animator.load(workdir, checkpoint)
    cfg = animator.config
    x0, x1, paired = load_dataset(cfg.data, split, cfg.train.seed)
    count = len(x0) if n is None else min(len(x0), n)
    x0 = x0[:count]
    x1 = x1[:count] if paired else x1
    if animator.needs_target and not paired:
        raise EvaluationError(f"{workdir}: a pair-conditioned model needs paired test data")
    if fit and not paired:
        raise EvaluationError(f"{workdir}: pair fitting needs paired test data")
    if other is not None:  # before any solve: a model that takes other images is refused
        _check_same_input(other[1], cfg.data, other[0])
    ts = jnp.asarray(TIMES)

    def solve(a, b):
        a = jnp.asarray(a)
        b = None if not animator.needs_target else jnp.asarray(b)
        anim = animator.animate(a, ts, b)
        back = animator.displacements(a, jnp.ones((1,), jnp.float32), b, "backward")
        jac = _naturalness(anim.disp)
        return anim.frames, back, jac

    frames, back, jac = _batched(
        solve, count, batch_size, x0, x1 if animator.needs_target else None
    )
    check_finite(EvaluationError, f"{workdir} at step {animator.step}", frames, back)
    x1_hat = frames[-1]
    table: dict[str, dict[str, Any]] = {}

    truths = {}
    if cfg.data.name == "faces":
        truths = dict(zip(SMILES, faces_at(count, SMILES, cfg.data.image_size,
                                           cfg.data.channels, split, cfg.train.seed)))
    paths = {"model": frames, "identity": np.broadcast_to(x0, frames.shape)}
    if paired:
        paths["cross_dissolve"] = _dissolve(x0, x1)
    disps = {}  # the baselines' displacements, for their det-J measures
    if fit:
        paths["fit"], disps["fit"], _ = _fit_pairs(x0, x1, ts)
    if other is not None:
        name, model = other
        paths[name], disps[name] = _batched(
            lambda a: (lambda an: (an.frames, an.disp))(model.animate(jnp.asarray(a), ts)),
            count, batch_size, x0)
        check_finite(EvaluationError, f"--compare-model {name}", paths[name], disps[name])
    lower = paired and cfg.data.canonical_crop is not None  # aligned faces: the mouth's half
    for method, row in score_paths(paths, x0, x1 if paired else None, truths, lower).items():
        for key, value in row.items():
            table.setdefault(key, {})[method] = value

    bending = jac.pop("bending")[0]
    table.update(_jacobian_rows({k: v[0] for k, v in jac.items()}, bending))
    for name, disp in disps.items():
        other_jac = _naturalness(jnp.asarray(disp))
        other_bending = np.asarray(other_jac.pop("bending")[0])
        rows = _jacobian_rows({k: np.asarray(v[0]) for k, v in other_jac.items()},
                              other_bending)
        for key, row in rows.items():
            table[key][name] = row["model"]
    table["inverse_psnr"] = {
        "model": _mean(metrics.inverse_psnr(jnp.asarray(x0), jnp.asarray(x1_hat),
                                            jnp.asarray(back[0]))),
        "identity": math.inf,
    }
    extra: dict[str, Any] = {}
    judged = _judge(cfg.data, smiles_dir)
    if judged is not None:
        reached, extra["judge"] = judged
        rate = lambda x: 100 * _mean(reached(x))
        table["judged_target_pct"] = {
            "model": rate(x1_hat), "identity": rate(x0), "real_targets": rate(x1),
            **{name: rate(p[-1]) for name, p in paths.items()
               if name not in ("model", "identity", "cross_dissolve")},
        }
    if cfg.data.name in ("digits", "mnist"):
        single = lambda x: 100 * _mean(metrics.stroke_count(x[..., :1]) == 1)
        table["single_stroke_pct"] = {
            "model": single(x1_hat), "identity": single(x0), "real_targets": single(x1),
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
        "metrics": _finite(table),
    }


def _fit_pairs(
    x0: np.ndarray, x1: np.ndarray, ts, cfg=None, fit_size: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Pair fitting on each pair on its own, as ``animate.py --fit --no-morph`` does (the
    warp alone, so its frames can be scored against true in-between frames).

    Returns:
      ``[T, B, H, W, C]`` frames, ``[T, B, H, W, 2]`` displacements at ``ts`` and each pair's
      seconds end to end (the first includes the compile).
    """
    from jwarp.animation import animate_pair
    from jwarp.fit import FitConfig

    cfg = FitConfig() if cfg is None else cfg
    frames, disp, times = [], [], []
    for i in range(len(x0)):
        t0 = time.perf_counter()
        anim = animate_pair(jnp.asarray(x0[i : i + 1]), jnp.asarray(x1[i : i + 1]), ts, cfg,
                            fit_size=fit_size or x0.shape[1], morph=False)
        anim = jax.block_until_ready(anim)
        times.append(time.perf_counter() - t0)
        frames.append(np.asarray(anim.frames))
        disp.append(np.asarray(anim.disp))
    return np.concatenate(frames, axis=1), np.concatenate(disp, axis=1), times


def _check_same_input(model, data, name: str) -> None:
    """``model`` takes the images of ``data`` as they are: same size, channels and crop."""
    theirs = model.config.data
    mine = (data.image_size, data.channels, data.canonical_crop)
    if (theirs.image_size, theirs.channels, theirs.canonical_crop) != mine:
        raise EvaluationError(
            f"{name}: takes {theirs.image_size} px, {theirs.channels} channel(s), crop "
            f"{theirs.canonical_crop}; the run's test images are {mine[0]} px, {mine[1]} "
            f"channel(s), crop {mine[2]}")


@jax.jit
def _naturalness(disp):
    """``metrics.naturalness``, each with a leading axis of 1 (``_batched`` concatenates along
    the second)."""
    return {k: v[None] for k, v in metrics.naturalness(disp).items()}


def _finite(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``table`` with infinite values (exact by construction) as None (JSON ``null``)."""
    return {key: {m: (v if math.isfinite(v) else None) for m, v in row.items()}
            for key, row in table.items()}


def evaluate_fit(n: int = 10, size: int = 64, split: str = "test", seed: int = 0,
                 fit_steps: int | None = None) -> dict[str, Any]:
    """Pair fitting (``animate.py --input a --target b``) on ``n`` faces pairs.

    Each pair is fitted on its own (as ``animate.py`` does, one pair per call) and timed end to
    end, compile included for the first.

    Returns:
      as ``evaluate_run``, with ``"seconds_per_pair"`` (median) and ``"seconds_first"``.
    """
    from jwarp.data import faces, faces_at
    from jwarp.fit import FitConfig

    x0, x1 = faces(n, size=size, channels=4, split=split, seed=seed)
    cfg = FitConfig() if fit_steps is None else FitConfig(steps=fit_steps)
    frames, disp, times = _fit_pairs(x0, x1, jnp.asarray(TIMES), cfg, fit_size=64)
    truths = dict(zip(SMILES, faces_at(n, SMILES, size, 4, split, seed)))
    paths = {"model": frames, "identity": np.broadcast_to(x0, frames.shape),
             "cross_dissolve": _dissolve(x0, x1)}
    table: dict[str, dict[str, Any]] = {}
    for method, row in score_paths(paths, x0, x1, truths).items():
        for key, value in row.items():
            table.setdefault(key, {})[method] = value
    jac = jax.device_get(_naturalness(jnp.asarray(disp)))
    bending = jac.pop("bending")[0]
    table.update(_jacobian_rows({k: v[0] for k, v in jac.items()}, bending))
    return {
        "workdir": None,
        "step": None,
        "split": split,
        "data": "faces (pair fitting)",
        "field": "stationary (fitted)",
        "n_images": n,
        "seconds_first": round(times[0], 2),
        "seconds_per_pair": round(float(np.median(times)), 2),
        "metrics": _finite(table),
    }


SHEET_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)


def contact_sheet(
    animator, x0: np.ndarray, x1: np.ndarray | None = None
) -> np.ndarray:
    """Images ``x0 [N, H, W, C]`` and their frames at ``SHEET_TIMES``, one image per row: the
    frames as they are, then the same frames with the deformation grid drawn in cyan.

    Args:
      animator: a ``jwarp.animation.Animator``.
      x0: start images; ``x1`` the end images of a ``pair`` model.

    Returns:
      ``[N * H, 2 * len(SHEET_TIMES) * W + gap, 3]`` float32 RGB in ``[0, 1]``.
    """
    from jwarp import media
    from jwarp.grid import draw_grid

    x1 = None if x1 is None else jnp.asarray(x1)
    anim = jax.device_get(animator.animate(jnp.asarray(x0), np.asarray(SHEET_TIMES), x1))
    t, b, h, w, c = anim.frames.shape
    frames = media.to_uint8_rgb(np.reshape(anim.frames, (t * b, h, w, c)))
    frames = frames.reshape(t, b, h, w, 3).astype(np.float32) / 255
    spacing = max(4, min(h, w) // 8)
    rows = []
    for i in range(b):
        plain = np.concatenate(list(frames[:, i]), axis=1)
        grid = draw_grid(frames[:, i], np.asarray(anim.disp[:, i]), spacing)
        gap = np.ones((h, max(2, w // 8), 3), np.float32)
        rows.append(np.concatenate([plain, gap, np.concatenate(list(grid), axis=1)], axis=1))
    return np.concatenate(rows, axis=0)


def write_sheet(path: str | Path, sheet: np.ndarray, rows: int, min_px: int = 128) -> None:
    """Writes ``contact_sheet``'s image scaled up so that each image is at least ``min_px``
    pixels tall, as PNG, JPEG or WebP by ``path``'s extension (``media.write_image``; an
    unknown one is a ``ValueError`` naming it: check it first with ``media.image_format``)."""
    from jwarp import media

    scale = max(1, min_px // (sheet.shape[0] // rows))
    media.write_image(path, np.kron(sheet, np.ones((scale, scale, 1), np.float32)))


def format_table(result: dict[str, Any]) -> str:
    """The result of ``evaluate_run``/``evaluate_fit`` as a fixed-width text table."""
    present = {m for row in result["metrics"].values() for m in row}
    methods = [m for m in METHODS if m in present] + sorted(present - set(METHODS))
    head = (
        f"{result['data']} ({result['field']} field), {result['n_images']} {result['split']} "
        f"images" + (f", step {result['step']}" if result["step"] is not None else "")
    )
    lines = [head]
    if "judge" in result:
        judge = result["judge"]
        line = (f"judge: {judge['name']}; {100 * judge['accuracy']:.1f} % accurate on real "
                "test images")
        if "target_rate_real_targets" in judge:
            line += (f", calls {100 * judge['target_rate_real_targets']:.1f} % of the real test "
                     f"targets and {100 * judge['target_rate_real_sources']:.1f} % of the real "
                     "test sources the target class")
        lines.append(line)
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
                precise = key.endswith(("ssim", "ssim_lower", "min_det", "bending_energy"))
                cells.append(f"{row[m]:.4f}" if precise else f"{row[m]:.2f}")
        lines.append(key.ljust(width) + "".join(c.rjust(16) for c in cells))
    return "\n".join(lines)


if __name__ == "__main__":
    # ``python -m jwarp.evaluate`` runs this file as a script: it hands over to the command
    # (``jwarp-evaluate``), which imports this module as ``jwarp.evaluate``. The module itself
    # never imports the command.
    from jwarp.commands.evaluate import main

    sys.exit(main(prog="python -m jwarp.evaluate"))
