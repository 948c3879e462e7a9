"""How a face model does on whole photos (``jwarp-evaluate --photos DIR``).

For each photo, animated in place as ``animate.py`` animates it (``jwarp.faces.photo``):

* ``faces``: faces found (``jwarp.faces.detect``);
* ``judged_before`` / ``judged_after``: faces judged smiling on the eyes-to-chin crop
  (``DEFAULT_CROP``, SMILEsmileD's framing) of the photo and of the last frame, by a judge
  fitted on real SMILEsmileD faces aligned the same way (``jwarp.judges.SmileJudge``);
* ``changed_far``: pixels farther than one face width from every face's box that differ from
  the photo by more than 2/255 in some frame (the promise is none), and ``max_change_far``,
  the largest such difference in 1/255;
* ``min_det``, ``fold_pct``, ``extreme_pct``: det J of the photo's displacement at every
  frame, over the faces' regions (``jwarp.metrics.jacobian_measures``: the smallest, the share
  of pixels with ``J <= 0``, with ``J < 0.25`` or ``J > 4``; totals: photos with a fold, the
  mean share of extreme pixels, photos whose smallest ``J`` is at least 0.1);
* ``seconds``: reading, finding, the model and every frame rendered (the judge aside).

Photos in subfolders of ``DIR`` are totalled per subfolder too (a kind: camera frames,
paintings, ...). Photos without a face count as found none and are not animated.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from jwarp.faces.align import DEFAULT_CROP, CanonicalCrop, crop_face, to_crop
from jwarp.faces.photo import animate_photos, convert, find

TIMES = np.linspace(0.0, 1.0, 21, dtype=np.float32)
FAR_TOLERANCE = 2  # 8-bit levels
JUDGE_SIZE = 64


def photo_files(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` (its subfolders too), in name order."""
    from jwarp.data.folders import IMAGE_EXTENSIONS

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--photos {folder}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                   and p.is_file())
    if not files:
        raise ValueError(f"--photos {folder}: no image files")
    return files


def far_mask(shape: tuple[int, int], faces) -> np.ndarray:
    """``[H, W]`` bool: pixels farther than one face width from every face's box."""
    far = np.ones(shape, bool)
    for f in faces:
        top, left, height, width = f.box
        grow = width
        r0, r1 = np.floor(top - grow), np.ceil(top + height + grow)
        c0, c1 = np.floor(left - grow), np.ceil(left + width + grow)
        far[int(max(0, r0)) : int(max(0, r1)), int(max(0, c0)) : int(max(0, c1))] = False
    return far


def _judge_crops(image: np.ndarray, faces) -> np.ndarray:
    """The eyes-to-chin crops ``[F, 64, 64, 1]`` of ``faces`` in ``image``."""
    crop = CanonicalCrop(DEFAULT_CROP)
    return np.stack([crop_face(convert(image, 1), to_crop(f.landmarks, crop, JUDGE_SIZE),
                               JUDGE_SIZE) for f in faces])


def evaluate_photo(animator, path: Path, judge=None, max_size: int | None = None) -> dict:
    """One photo's row (see the module docstring)."""
    import jax.numpy as jnp

    from jwarp.images import read_input
    from jwarp.metrics import jacobian_measures

    t0 = time.perf_counter()
    photo = read_input(path, None, None, max_size, keep_aspect=True).image
    size = animator.config.data.image_size
    crop = animator.config.data.canonical_crop or CanonicalCrop(DEFAULT_CROP)
    found = find(photo, crop, size)
    row: dict[str, Any] = {"photo": str(path), "size": [photo.shape[1], photo.shape[0]],
                           "channels": photo.shape[-1], "faces": len(found)}
    if not found:
        row["seconds"] = round(time.perf_counter() - t0, 3)
        return row
    (anim, _), = animate_photos(animator, [photo], [found], TIMES)
    base = anim.base.astype(np.int16)
    far = far_mask(photo.shape[:2], [f.face for f in found])
    changed, worst, last = np.zeros(far.shape, bool), 0, None
    for frame in anim:
        if far.any():
            diff = np.abs(frame.astype(np.int16) - base).max(axis=-1)
            worst = max(worst, int(diff[far].max()))
            changed |= far & (diff > FAR_TOLERANCE)
        last = frame
    row["seconds"] = round(time.perf_counter() - t0, 3)
    row["changed_far"], row["max_change_far"] = int(changed.sum()), worst
    dets = []
    for region in anim.regions:
        top, left, bottom, right = region.box
        u = np.stack([anim.displacement(k)[top:bottom, left:right] for k in range(len(anim))])
        dets.append({k: float(v[0]) for k, v in
                     jacobian_measures(jnp.asarray(u)[:, None]).items()})
    row["min_det"] = min(d["min_det"] for d in dets)
    row["fold_pct"] = 100 * max(d["fold_frac"] for d in dets)
    row["extreme_pct"] = 100 * max(d["extreme_frac"] for d in dets)
    if judge is not None:
        faces = [f.face for f in found]
        before = judge.predict(_judge_crops(photo, faces))
        after = judge.predict(_judge_crops(last.astype(np.float32) / 255.0, faces))
        row["judged_before"], row["judged_after"] = int(before.sum()), int(after.sum())
    return row


def _totals(rows: list[dict]) -> dict[str, Any]:
    with_faces = [r for r in rows if r["faces"]]
    faces = sum(r["faces"] for r in rows)
    out: dict[str, Any] = {
        "photos": len(rows),
        "photos_with_faces": len(with_faces),
        "faces": faces,
        "changed_far": sum(r.get("changed_far", 0) for r in rows),
        "max_change_far": max((r.get("max_change_far", 0) for r in rows), default=0),
        "seconds_per_photo": round(float(np.median([r["seconds"] for r in with_faces])), 3)
        if with_faces else None,
    }
    if with_faces:
        dets = np.array([r["min_det"] for r in with_faces])
        out["min_det"] = float(dets.min())
        out["photos_folded_pct"] = 100 * float(np.mean(dets <= 0))
        out["photos_min_det_ge_0.1_pct"] = 100 * float(np.mean(dets >= 0.1))
        out["extreme_pct"] = float(np.mean([r["extreme_pct"] for r in with_faces]))
    if faces and all("judged_after" in r for r in with_faces):
        out["judged_before_pct"] = 100 * sum(r["judged_before"] for r in with_faces) / faces
        out["judged_after_pct"] = 100 * sum(r["judged_after"] for r in with_faces) / faces
    return out


def evaluate_photos(
    animator, folder: str | Path, judge=None, max_size: int | None = None, log=None
) -> dict[str, Any]:
    """Every photo under ``folder``: one row each, totals, and totals per subfolder.

    Returns:
      ``{"photos": [row, ...], "totals": {...}, "kinds": {subfolder: {...}}}``; each row's
      ``"photo"`` is its path below ``folder``.
    """
    root = Path(folder)
    rows = []
    for path in photo_files(root):
        row = evaluate_photo(animator, path, judge, max_size)
        row["photo"] = path.relative_to(root).as_posix()  # the set's own names, anywhere
        rows.append(row)
        if log is not None:
            log(format_row(row))
    kinds: dict[str, list[dict]] = {}
    for row in rows:
        parts = Path(row["photo"]).parts
        if len(parts) > 1:
            kinds.setdefault(parts[0], []).append(row)
    return {"photos": rows, "totals": _totals(rows),
            "kinds": {k: _totals(v) for k, v in sorted(kinds.items())}}


def format_row(row: dict) -> str:
    """One line per photo."""
    w, h = row["size"]
    text = f"{row['photo']}: {w}x{h}, {row['faces']} face(s)"
    if not row["faces"]:
        return text + f", not animated ({row['seconds']:.2f} s)"
    text += (f", changed far away {row['changed_far']} px (max {row['max_change_far']}/255), "
             f"smallest det J {row['min_det']:.2f}")
    if "judged_after" in row:
        text += f", judged smiling {row['judged_before']} -> {row['judged_after']}"
    return text + f", {row['seconds']:.2f} s"


def format_totals(result: dict[str, Any]) -> str:
    """The totals, overall and per kind, as a table."""
    columns = [("photos", "photos"), ("photos_with_faces", "with faces"), ("faces", "faces"),
               ("judged_before_pct", "smiling before %"), ("judged_after_pct", "after %"),
               ("changed_far", "changed far px"), ("min_det", "min det J"),
               ("extreme_pct", "extreme %"), ("seconds_per_photo", "s/photo")]
    groups = [("all", result["totals"]), *result["kinds"].items()]
    lines = ["| " + " | ".join(["set"] + [c[1] for c in columns]) + " |",
             "|" + "---|" * (len(columns) + 1)]
    for name, t in groups:
        cells = []
        for key, _ in columns:
            v = t.get(key)
            cells.append("-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


__all__ = ["evaluate_photo", "evaluate_photos", "far_mask", "format_row", "format_totals",
           "photo_files"]
