"""Paths against real video: how closely an animation passes a real sequence's in-between
frames (``jwarp-evaluate --sequences DIR``).

A sequence is a folder of at least three frames, in name order, the first neutral and the last
the peak (the CK+ layout: ``<subject>/<sequence>/<subject>_<sequence>_<frame>.png``). Each
frame's face is cut with the first frame's alignment (the camera is fixed; what moves in the
crop is the face), at ``size`` pixels, grey. Every path runs from the first crop over
``TIMES``:

* ``model``: a trained model started from frame 1 (``--model`` or ``--workdir``);
* ``fit``: ``animate.py --fit`` from frame 1 to the last (the morph), and ``fit_warp``
  (``--no-morph``, the warp alone);
* ``cross_dissolve``: ``(1 - t) x_1 + t x_N``;
* ``nearer_end``: frame 1 until ``t = 0.5``, then the last frame.

For each real in-between frame ``k`` (2 to N - 1) and each path: the best PSNR of any path
frame against it, and the ``t`` where it is best. ``best_psnr`` is the mean over the sequence's
in-between frames; ``rank_corr`` is Spearman's rank correlation of the best ``t`` with ``k``
(1: the path meets the real frames in order). Both are averaged over the sequences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jwarp.data.folders import IMAGE_EXTENSIONS
from jwarp.faces.align import DEFAULT_CROP, CanonicalCrop, crop_face
from jwarp.faces.photo import convert, find


class NoFaceError(ValueError):
    """A sequence's first frame holds no face."""


TIMES = np.arange(41, dtype=np.float32) / 40  # 0, 0.025, ..., 1
SIZE = 64


def sequence_folders(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (``root`` included) holding at least three images, sorted.

    Raises:
      ValueError: ``root`` is not a folder or holds no sequence (one line naming it).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"--sequences {root}: not a folder")
    found = [d for d in sorted([root, *root.rglob("*")]) if d.is_dir() and len(_frames(d)) >= 3]
    if not found:
        raise ValueError(f"--sequences {root}: no folder with 3 or more images (the CK+ layout: "
                         "<subject>/<sequence>/<frames>)")
    return found


def _frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def best_along(path: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each real frame, the best PSNR of any frame of ``path`` against it and its index.

    Args:
      path: ``[T, H, W, C]`` the path's frames in ``[0, 1]``.
      real: ``[K, H, W, C]`` real frames.

    Returns:
      ``([K] best PSNR in dB, [K] index into path)``.
    """
    diff = path[None].astype(np.float64) - real[:, None].astype(np.float64)
    mse = np.mean(diff**2, axis=(2, 3, 4))  # [K, T]
    psnr = 10 * np.log10(1.0 / np.maximum(mse, 1e-12))
    return psnr.max(axis=1), psnr.argmax(axis=1)


def rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties averaged); 0 when either side is constant."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def load_sequence(folder: Path, size: int = SIZE, crop: CanonicalCrop | None = None
                  ) -> np.ndarray:
    """A sequence's frames cut with its first frame's alignment: ``[N, size, size, 1]``.

    Raises:
      NoFaceError: no face in the first frame (one line naming it).
    """
    from jwarp.images import read_input

    crop = crop or CanonicalCrop(DEFAULT_CROP)
    files = _frames(folder)
    images = [read_input(f, None, None, keep_aspect=True).image for f in files]
    found = find(images[0], crop, size)
    if not found:
        raise NoFaceError(f"{files[0]}: no face found in the sequence's first frame")
    face = max(found, key=lambda f: f.face.box[2] * f.face.box[3])  # the largest
    return np.stack([crop_face(convert(im, 1), face.to_crop, size) for im in images])


def score_paths(paths: dict[str, np.ndarray], frames: np.ndarray) -> dict[str, dict[str, Any]]:
    """``{path: {"best_psnr", "rank_corr", "best_t"}}`` of each ``[T, H, W, C]`` path against
    the sequence's in-between frames ``frames[1:-1]``."""
    real = frames[1:-1]
    index = np.arange(len(real))
    out = {}
    for name, path in paths.items():
        psnr, at = best_along(path, real)
        ts = TIMES[at]
        out[name] = {"best_psnr": float(psnr.mean()), "rank_corr": rank_corr(index, ts),
                     "best_t": [round(float(t), 3) for t in ts]}
    return out


def sequence_paths(frames: np.ndarray, animator=None) -> dict[str, np.ndarray]:
    """Every path from ``frames[0]`` (see the module docstring): ``{name: [T, H, W, C]}``."""
    import jax.numpy as jnp

    from jwarp.animation import fit_field, svf_animation
    from jwarp.fit import FitConfig

    x0, x1 = frames[:1], frames[-1:]
    t = TIMES.reshape(-1, 1, 1, 1)
    ts = jnp.asarray(TIMES)
    paths = {
        "cross_dissolve": (1 - t) * x0 + t * x1,
        "nearer_end": np.where(t < 0.5, x0, x1),
    }
    # animate.py --fit and --fit --no-morph: one fitted field, animated both ways.
    fit = FitConfig()
    a, b = jnp.asarray(x0), jnp.asarray(x1)
    v = fit_field(a, b, fit, frames.shape[1])
    for name, morph in (("fit", True), ("fit_warp", False)):
        anim = svf_animation(v, a, b, ts, "forward", fit.solver, morph)
        paths[name] = np.asarray(anim.frames)[:, 0]
    if animator is not None:
        paths["model"] = np.asarray(animator.animate(jnp.asarray(x0), ts).frames)[:, 0]
    return paths


def evaluate_sequences(root: str | Path, animator=None, log=None) -> dict[str, Any]:
    """Every sequence under ``root``: one row each and the means per path.

    Args:
      root: a folder of sequences (``sequence_folders``).
      animator: a face model (its size, channels and canonical crop are used), or None for
        the model-free paths only.
      log: called with one line per sequence.

    Returns:
      ``{"sequences": [{"sequence", "frames", "paths": {path: {...}}}], "totals": {path:
      {"best_psnr", "rank_corr"}}, "size", "skipped": [one line per sequence without a
      face]}``.

    Raises:
      ValueError: no sequence has a face, or the model is not grey.
    """
    size, crop = SIZE, None
    if animator is not None:
        data = animator.config.data
        if data.channels != 1:
            raise ValueError(f"--sequences: the model takes {data.channels} channels; the "
                             "sequences are grey")
        size, crop = data.image_size, data.canonical_crop
    root = Path(root)
    rows, skipped = [], []
    for folder in sequence_folders(root):
        try:
            frames = load_sequence(folder, size, crop)
        except NoFaceError as e:  # the others are still measured
            skipped.append(str(e))
            continue
        scores = score_paths(sequence_paths(frames, animator), frames)
        rows.append({"sequence": folder.relative_to(root).as_posix() or ".",
                     "frames": len(frames), "paths": scores})
        if log is not None:
            log(f"{rows[-1]['sequence']}: {len(frames)} frames, " + ", ".join(
                f"{k} {v['best_psnr']:.1f} dB / {v['rank_corr']:.2f}" for k, v in scores.items()))
    if not rows:
        raise ValueError(f"--sequences {root}: no face in any sequence's first frame")
    names = list(rows[0]["paths"])
    totals = {n: {k: float(np.mean([r["paths"][n][k] for r in rows]))
                  for k in ("best_psnr", "rank_corr")} for n in names}
    return {"sequences": rows, "totals": totals, "size": size, "skipped": skipped}


def format_totals(result: dict[str, Any]) -> str:
    """The means per path as a markdown table."""
    lines = ["| path | mean best PSNR | rank correlation |", "|---|---|---|"]
    for name, t in result["totals"].items():
        lines.append(f"| {name} | {t['best_psnr']:.1f} dB | {t['rank_corr']:.2f} |")
    return "\n".join(lines)


__all__ = [
    "TIMES",
    "NoFaceError",
    "best_along",
    "evaluate_sequences",
    "format_totals",
    "load_sequence",
    "rank_corr",
    "score_paths",
    "sequence_folders",
    "sequence_paths",
]
