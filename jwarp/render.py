"""render: the whole of ``animate.py``: find a run or fit a pair, read the images, write the
animations (GIF, WebP, MP4), PNG frames, contact sheets, grid overlays and fields.

``RenderOptions`` is what ``animate.py`` was asked for (its argparse defaults are this
dataclass's); ``render(opts)`` animates with a shipped model or a run folder
(``jwarp.animation.Animator``) or fits each input/target pair (``jwarp.animation.fit_field``,
``svf_animation``), then writes each animation's GIF and the extras asked for.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from jwarp import outputs
from jwarp.animation import (
    TRAIN_HINT,
    Animation,
    Animator,
    find_latest_run,
    fit_field,
    svf_animation,
)
from jwarp.errors import AnimationError, check_finite
from jwarp.fit import FitConfig
from jwarp.metrics import EXTREME_HIGH, EXTREME_LOW, bending_energy, jacobian_measures, psnr
from jwarp.render_options import (
    MAX_FIT_SIZE,
    RenderOptions,
    check_fit_shape,
    check_frames,
    fit_shape,
    fitted_at,
)
from jwarp.sampler import warp

_GLOB_CHARS = frozenset("*?[")


def expand_inputs(patterns: Sequence[str], flag: str = "--input") -> list[Path]:
    """Paths and glob patterns -> paths (a pattern must match at least one file, and a path
    must be an existing file)."""
    paths: list[Path] = []
    for pattern in patterns:
        if _GLOB_CHARS & set(pattern):
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matches:
                raise AnimationError(f"{flag} {pattern}: no files match")
            paths += [Path(p) for p in matches]
        elif not Path(pattern).is_file():
            what = "a folder, not an image file" if Path(pattern).is_dir() else "file not found"
            raise AnimationError(f"{flag} {pattern}: {what}")
        else:
            paths.append(Path(pattern))
    return paths


def _read(path: Path, size, channels, log, max_size=None, resize="crop", keep_aspect=False):
    """``images.read_input`` (an ``InputImage``), its note logged."""
    from jwarp.images import read_input

    try:
        got = read_input(path, size, channels, max_size, resize, keep_aspect)
    except ValueError as e:
        raise AnimationError(str(e)) from None
    if got.note:
        log(f"note: {got.note}")
    return got


def _pair_targets(inputs: list[Path], targets: list[Path]) -> list[Path]:
    if len(targets) not in (1, len(inputs)):
        raise AnimationError(
            f"--target: give one end image, or one per input ({len(inputs)}), got {len(targets)}"
        )
    return targets * len(inputs) if len(targets) == 1 else targets


class Rendered(NamedTuple):
    """One animation of ``render``: its output name, frames and the forward end map.

    In place in a photo (``jwarp.faces``), ``animation.frames`` is a ``PhotoAnimation``
    (uint8 frames read lazily, any deformation grid already drawn) and ``animation.disp`` is
    None.
    """

    name: str
    animation: Animation  # frames [T, H, W, C], disp [T, H, W, 2]
    end_disp: np.ndarray  # [H, W, 2]: u_1 of the input, frame(s) = input(s + u(s))


class Skipped(NamedTuple):
    """Inputs left out (no face), named in ``render``'s final error."""

    paths: list[Path]


def _grid_spacing(opts: RenderOptions, height: int, width: int) -> int:
    if not opts.grid:
        return 0
    return opts.grid if opts.grid > 0 else max(4, min(height, width) // 8)


def _face_crop(opts: RenderOptions, config):
    """The canonical crop faces are aligned to, or None to animate whole images
    (``RenderOptions.find_faces``)."""
    if opts.find_faces is False:
        return None
    crop = config.data.canonical_crop
    if crop is None and opts.find_faces:
        from jwarp.faces.align import DEFAULT_CROP, CanonicalCrop

        crop = CanonicalCrop(DEFAULT_CROP)
    return crop


def _read_photo(path: Path, opts: RenderOptions, log):
    """A photo at its own size (at most ``--max-size``) and in its own channels."""
    return _read(path, None, None, log, opts.max_size, keep_aspect=True).image


_NO_FACE = "no human face found"


def _photo_animations(opts, animator, source, inputs, crop, ts, fmt, log, skipped: Skipped):
    """``_model_animations`` in place: every face of every photo, aligned, moved by the
    model and carried back into the photo (``jwarp.faces.photo.animate_photos``)."""
    from jwarp.faces.photo import animate_photos, find

    size = animator.config.data.image_size
    photos, found, names, kept = [], [], [], []
    for path in inputs:
        photo = _read_photo(path, opts, log)
        faces = find(photo, crop, size)
        if not faces:
            log(f"{path}: {_NO_FACE}; skipped")
            skipped.paths.append(path)
            continue
        h, w, c = photo.shape
        widths = ", ".join(f"{f.face.width:.0f}" for f in faces)
        log(f"{path}: {w}x{h}, {c} channel{'s' if c > 1 else ''}, {len(faces)} "
            f"face{'s' if len(faces) > 1 else ''} ({widths} px wide)")
        # A photo's frames are made one at a time, as they are written.
        check_frames(opts, str(path), photo.shape, fmt=fmt, computed=False)
        photos.append(photo)
        found.append(faces)
        names.append(path.stem)
        kept.append(path)
    if not photos:
        return []
    n_faces = sum(len(f) for f in found)
    # The faces' displacements (no frames: channels 0) all at once.
    check_frames(opts, f"{n_faces} faces", (size, size, 0), n_faces, fmt="")
    t0 = time.perf_counter()
    grids = [_grid_spacing(opts, *p.shape[:2]) for p in photos]
    results = animate_photos(animator, photos, found, ts, opts.direction, grids)
    log(f"{n_faces} face(s) x {len(results[0][0])} frames in {time.perf_counter() - t0:.1f} s")
    for path, (_, end) in zip(kept, results):
        check_finite(AnimationError, f"{source} on {path}", end)
    return [Rendered(name, Animation(frames, None), end)
            for name, (frames, end) in zip(names, results)]


def _load_animator(opts: RenderOptions, workdir: Path | None, log) -> tuple[Animator, str]:
    """The model to animate with and how to name it: a shipped model or a run folder."""
    if opts.model is not None:
        from jwarp import pretrained

        try:
            animator = pretrained.load(opts.model)
        except ValueError as e:
            raise AnimationError(str(e)) from None
        return animator, f"shipped model {opts.model!r}"
    try:
        animator = Animator.load(workdir, opts.checkpoint)
    except ValueError as e:
        raise AnimationError(str(e)) from None
    return animator, f"{workdir} at step {animator.step}"


def _model_animations(
    opts: RenderOptions, workdir: Path | None, ts, fmt: str, log, skipped: Skipped
) -> list[Rendered]:
    animator, label = _load_animator(opts, workdir, log)
    cfg = animator.config
    inputs = expand_inputs(opts.inputs)
    targets = expand_inputs(opts.targets, "--target")
    crop = _face_crop(opts, cfg)
    in_place = crop is not None and bool(inputs)
    log(
        f"model: {label} ({cfg.flow.field} field, condition = {cfg.model.condition}, "
        f"{cfg.data.image_size}px, {cfg.data.channels} ch"
        + ("; faces found and animated in place)" if in_place else ")")
    )
    source = f"the model {opts.model!r}" if opts.model else f"the model in {workdir}"
    if in_place and animator.needs_target:
        raise AnimationError(
            f"--faces: {source} is conditioned on both frames (model.condition = pair) and "
            "animates whole images; add --whole-image"
        )
    if in_place:
        if targets:
            raise AnimationError(
                f"--target: {source} animates from the start image alone "
                "(model.condition = source); drop --target, or add --fit to fit the pair"
            )
        return _photo_animations(opts, animator, source, inputs, crop, ts, fmt, log, skipped)
    if targets and not animator.needs_target:
        raise AnimationError(
            f"--target: {source} animates from the start image alone "
            "(model.condition = source); drop --target, or add --fit to fit the pair instead"
        )
    size, channels = cfg.data.image_size, cfg.data.channels
    if inputs:
        if animator.needs_target and not targets:
            raise AnimationError(
                f"--target: {source} needs an end image for each input (model.condition = pair)"
            )
        read = [_read(p, size, channels, log, resize=opts.resize) for p in inputs]
        x0 = np.stack([r.image for r in read])
        x1 = None
        if animator.needs_target:
            x1 = np.stack([_read(p, size, channels, log, resize=opts.resize).image
                           for p in _pair_targets(inputs, targets)])
        names = [p.stem for p in inputs]
    elif opts.model is not None:
        raise AnimationError(f"--model {opts.model}: give the images to animate with --input")
    else:
        if targets:
            raise AnimationError("--target needs --input")
        from jwarp.data import load_dataset

        try:
            x0, x1, _ = load_dataset(cfg.data, "test", cfg.train.seed)
        except (OSError, ValueError) as e:
            raise AnimationError(f"test images of {workdir}: {e}") from None
        n = min(opts.n_test, len(x0), len(x1))
        x0, x1 = x0[:n], (x1[:n] if animator.needs_target else None)
        names = [f"{workdir.name}_test{i}" for i in range(n)]
        read = None
    n = len(names)
    check_frames(opts, f"{n} image{'s' if n > 1 else ''}", (size, size, channels), n, fmt=fmt)
    t0 = time.perf_counter()
    x0, x1 = jnp.asarray(x0), None if x1 is None else jnp.asarray(x1)
    anim = jax.device_get(animator.animate(x0, ts, x1, opts.direction))
    if opts.direction == "backward":  # the saved field is always the forward end map
        end = animator.displacements(x0, np.ones(1, np.float32), x1)[-1]
    else:
        end = anim.disp[len(ts) - 1]
    end = np.asarray(end)
    check_finite(AnimationError, source, anim.frames, anim.disp, end)
    log(f"{len(names)} x {len(anim.frames)} frames in {time.perf_counter() - t0:.1f} s")
    out = []
    for i, name in enumerate(names):
        frames, disp, end_i = np.asarray(anim.frames[:, i]), np.asarray(anim.disp[:, i]), end[i]
        if read is not None:  # --resize pad or stretch: back to the photo's aspect
            from jwarp.images import restore_aspect

            both = np.concatenate([disp, end_i[None]])
            frames, both = restore_aspect(frames, both, read[i].content, read[i].aspect)
            disp, end_i = both[:-1], both[-1]
        out.append(Rendered(name, Animation(frames, disp), end_i))
    return out


def _fit_config(opts: RenderOptions) -> FitConfig:
    smoothness = {} if opts.fit_smoothness is None else {"smoothness": opts.fit_smoothness}
    return FitConfig(steps=opts.fit_steps, similarity=opts.fit_similarity, **smoothness)


@jax.jit
def _end_report(x0: Array, x1: Array, end: Array, disp: Array) -> dict[str, Array]:
    """``metrics.psnr`` to the target ``x1`` of ``x0`` (``"psnr_still"``) and of
    ``warp(x0, end)`` (``"psnr_warped"``), ``metrics.jacobian_measures`` of the frames
    ``disp [T, H, W, 2]`` and the bending energy of the forward end map ``end`` (whatever the
    direction), in one compile (op by op they cost seconds of small compiles)."""
    measures = {k: v[0] for k, v in jacobian_measures(disp[:, None]).items()}
    measures["bending"] = bending_energy(end[None])[0]
    measures["psnr_still"] = psnr(x0[None], x1[None])[0]
    measures["psnr_warped"] = psnr(warp(x0[None], end[None]), x1[None])[0]
    return measures


def _describe_warp(m: dict[str, float]) -> str:
    """One line of ``metrics.naturalness`` (of one image)."""
    return (
        f"smallest det J {m['min_det']:.2f}, folded {100 * m['fold_frac']:.2f} %, "
        f"extreme (J < {EXTREME_LOW} or > {EXTREME_HIGH:g}) {100 * m['extreme_frac']:.2f} %, "
        f"bending {m['bending']:.2g} px^-2"
    )


_KINDS = {1: "grey", 3: "colour (RGB)", 4: "transparent (RGBA)"}


def _check_kinds(source: Path, target: Path, c0: int, c1: int) -> None:
    if (c0 == 4) != (c1 == 4):
        # A warp moves transparency around but cannot create or remove it.
        raise AnimationError(
            f"mismatched channels: {source} is {_KINDS[c0]} but {target} is {_KINDS[c1]}; "
            "give both with transparency or both without"
        )


def _fit_faces(opts, source: Path, target: Path, ts, fit_config, compiled, fmt, log):
    """``_fit_animations`` in place when both photos show a face: the two faces aligned by
    their landmarks, fitted, and the source photo animated at its size
    (``jwarp.faces.photo.fit_photos``); None to fit the whole images instead."""
    from jwarp.faces.align import DEFAULT_CROP, CanonicalCrop
    from jwarp.faces.detect import detect_faces
    from jwarp.faces.photo import FIT_SIZE, FIT_ZOOM, convert, fit_photos, zoomed

    notes: list[str] = []  # logged only when the faces are fitted (else the whole images)
    x0, x1 = _read_photo(source, opts, notes.append), _read_photo(target, opts, notes.append)
    _check_kinds(source, target, x0.shape[-1], x1.shape[-1])
    channels = max(x0.shape[-1], x1.shape[-1])
    x0, x1 = convert(x0, channels), convert(x1, channels)
    faces = []
    for path, photo in ((source, x0), (target, x1)):
        found = detect_faces(photo)
        if not found:
            if opts.find_faces:
                raise AnimationError(f"{path}: {_NO_FACE}; --faces needs a face in both photos")
            log(f"note: {path}: {_NO_FACE}: fitting the whole images instead")
            return None
        faces.append(max(found, key=lambda f: f.eye_distance))  # the photo's subject
    for note in notes:
        log(note)
    check_frames(opts, str(source), x0.shape, fmt=fmt, computed=False)  # frames made lazily
    crop = zoomed(CanonicalCrop(DEFAULT_CROP), FIT_ZOOM)
    key = (FIT_SIZE, channels)
    if key not in compiled:
        shape = jnp.zeros((1, FIT_SIZE, FIT_SIZE, channels), jnp.float32)
        compiled[key] = fit_field.lower(shape, shape, fit_config, opts.fit_size).compile()
    h, w = x0.shape[:2]
    log(f"fitting {source} -> {target}: the faces aligned by their landmarks "
        f"({FIT_SIZE}x{FIT_SIZE}), animating {w}x{h} in place"
        f"{' as a morph' if opts.morph else ''} ...")
    t0 = time.perf_counter()
    got = fit_photos(x0, x1, faces[0], faces[1], crop, compiled[key], ts, opts.direction,
                     opts.morph, _grid_spacing(opts, h, w))
    fitting = f"fitting {source} -> {target}"
    check_finite(AnimationError, fitting, got.disp, got.end_map, model=False)
    c0, c1 = (jnp.asarray(c) for c in got.crops)
    measures = jax.device_get(_end_report(c0, c1, jnp.asarray(got.disp[-1]),
                                          jnp.asarray(got.disp)))
    log(
        f"fitted in {time.perf_counter() - t0:.1f} s: on the aligned faces, PSNR to the target "
        f"{measures['psnr_still']:.1f} dB without motion, {measures['psnr_warped']:.1f} dB "
        f"warped; {_describe_warp(measures)}"
    )
    return Rendered(source.stem, Animation(got.frames, None), got.end_map)


def _fit_animations(opts: RenderOptions, ts, log) -> list[Rendered]:
    fmt = outputs.where(opts.out, opts.format).fmt
    inputs = expand_inputs(opts.inputs)
    targets = expand_inputs(opts.targets, "--target")
    if not inputs or not targets:
        raise AnimationError("pair fitting needs --input a.png and --target b.png")
    fit_config = _fit_config(opts)
    compiled: dict[Any, Any] = {}  # one compile per image shape
    out = []
    for source, target in zip(inputs, _pair_targets(inputs, targets)):
        if opts.find_faces is not False:
            rendered = _fit_faces(opts, source, target, ts, fit_config, compiled, fmt, log)
            if rendered is not None:
                out.append(rendered)
                continue
        # No model's square here: the whole input at its own aspect, its longer side at most
        # MAX_FIT_SIZE unless --size says otherwise; --resize fits the target to it.
        shape = fit_shape(source, opts.size)
        if shape is not None:
            check_fit_shape(opts, source, *shape, fmt)
        notes: list[str] = []  # logged once, from the reads that are kept
        x0 = _read(source, opts.size, None, notes.append, MAX_FIT_SIZE, keep_aspect=True).image
        shape = x0.shape[:2]
        check_fit_shape(opts, source, *shape, fmt, x0.shape[-1])
        x1 = _read(target, shape, None, notes.append, resize=opts.resize).image
        _check_kinds(source, target, x0.shape[-1], x1.shape[-1])
        if x0.shape[-1] != x1.shape[-1]:  # grey and colour: both in colour
            check_fit_shape(opts, source, *shape, fmt, 3)
            notes.clear()
            x0 = _read(source, shape, 3, notes.append, resize=opts.resize).image
            x1 = _read(target, shape, 3, notes.append, resize=opts.resize).image
        for note in notes:
            log(note)
        h, w = shape
        fh, fw = fitted_at(opts, h, w)
        at = f"{fw}x{fh}"
        log(
            f"fitting {source} -> {target} at {at} ({fit_config.similarity}, "
            f"{fit_config.levels} levels, {fit_config.steps} steps at the finest), "
            f"animating at {w}x{h}{' as a morph' if opts.morph else ''} ..."
        )
        xs0, xs1 = jnp.asarray(x0[None]), jnp.asarray(x1[None])
        t0 = time.perf_counter()
        if x0.shape not in compiled:  # compiled ahead, so that the fit's own time is known
            compiled[x0.shape] = fit_field.lower(xs0, xs1, fit_config, opts.fit_size).compile()
        t1 = time.perf_counter()
        v = jax.block_until_ready(compiled[x0.shape](xs0, xs1))
        t2 = time.perf_counter()
        anim = svf_animation(v, xs0, xs1, ts, opts.direction, fit_config.solver, opts.morph)
        anim = Animation(*(a[:, 0] for a in jax.device_get(anim)))
        # The forward end map u_1 (what --save-field writes and the measures describe).
        if opts.direction == "backward" and not opts.morph:
            end = svf_animation(v, xs0, xs1, np.ones(1, np.float32), "forward",
                                fit_config.solver).disp[-1, 0]
        else:
            end = anim.disp[0 if opts.direction == "backward" else len(ts) - 1]
        end = np.asarray(end)
        fitting = f"fitting {source} -> {target}"
        check_finite(AnimationError, fitting, anim.frames, anim.disp, end, model=False)
        measures = jax.device_get(_end_report(xs0[0], xs1[0], end, anim.disp))
        fit_took = f"{t2 - t1:.1f} s" + (f" (+{t1 - t0:.1f} s compiling)" if t1 - t0 > 0.05 else "")
        log(
            f"fitted in {fit_took}: PSNR to the target {measures['psnr_still']:.1f} dB without "
            f"motion, {measures['psnr_warped']:.1f} dB warped; {_describe_warp(measures)}"
        )
        out.append(Rendered(source.stem, anim, end))
    return out


def render(opts: RenderOptions, log: Callable[[str], None] = print) -> list[Path]:
    """Everything ``animate.py`` does: animate, then write the animations and the extras asked
    for.

    A shipped model (``opts.model``) or a run (``opts.workdir``, or the latest under
    ``opts.runs_dir``) animates ``opts.inputs`` (or a run's test images); with ``opts.fit``,
    or with an input and a target and no run, a stationary field is fitted to each pair
    instead.

    Returns:
      The animations written (GIF, WebP or MP4 files).

    Raises:
      AnimationError: one line saying what is wrong (no run, unreadable image, ...).
    """
    # Missing inputs and impossible output paths fail now, before a model is loaded or a
    # pair fitted.
    inputs = expand_inputs(opts.inputs)
    targets = expand_inputs(opts.targets, "--target")
    where = outputs.where(opts.out, opts.format)
    if opts.out is not None:
        if where.file is not None:
            outputs.check_output("--out", where.file)
        else:
            outputs.check_output("--out", where.folder, folder=True)
    if where.fmt == "mp4":
        from jwarp.media import mp4_writer

        try:
            mp4_writer()
        except ValueError as e:
            flag = f"--out {opts.out}" if where.file is not None else "--format mp4"
            raise AnimationError(f"{flag}: {e}") from None
    if opts.frames_dir is not None:
        outputs.check_output("--frames-dir", Path(opts.frames_dir), folder=True)
    if opts.save_field is not None:
        is_file = opts.save_field.lower().endswith(".npy")
        outputs.check_output("--save-field", Path(opts.save_field), folder=not is_file)
    read = [("--input", p) for p in inputs] + [("--target", p) for p in targets]

    def plan(names: list[str]) -> outputs.Plan:
        return outputs.plan(names, where, opts.direction, sheet=bool(opts.sheet),
                            save_field=opts.save_field, frames_dir=opts.frames_dir, inputs=read)

    if inputs:  # the animations are named after the inputs: their paths are known now
        plan([p.stem for p in inputs])
    if opts.model is not None and (opts.workdir is not None or opts.fit):
        raise AnimationError(f"--model {opts.model}: give either --model, --workdir or --fit")
    try:
        animations, skipped = _animations(opts, where.fmt, log)
    except jax.errors.JaxRuntimeError as e:
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        # What check_frames' lower bound let through, the device could not hold.
        raise AnimationError(
            f"--t-steps {opts.t_steps}: the frames do not fit in memory "
            f"({str(e).strip().splitlines()[0]}); lower --t-steps, --size or --scale, or "
            "animate fewer images at once"
        ) from None
    if not animations and skipped.paths:
        raise _no_face(skipped, 0)
    laid = plan([a.name for a in animations])  # (test images and skipped photos: now)
    try:
        for rendered, *where_to in zip(animations, *laid):
            _write_outputs(opts, rendered, where.fmt, *where_to, log)
    except OSError as e:
        from jwarp.cli import cannot_write

        # Every writer names the file or folder asked for (not its temporary).
        raise AnimationError(
            cannot_write(e.filename, e) if e.filename else f"cannot write: {e.strerror or e}"
        ) from None
    if skipped.paths:
        raise _no_face(skipped, len(laid.animations))
    return laid.animations


def _animations(opts: RenderOptions, fmt: str, log) -> tuple[list[Rendered], Skipped]:
    """``render``'s animations, by a shipped model, a run or pair fitting, each checked
    finite; and the photos skipped for want of a face."""
    ts = np.linspace(0.0, 1.0, opts.t_steps, dtype=np.float32)
    workdir = None if opts.workdir is None else Path(opts.workdir)
    skipped = Skipped([])
    if opts.fit:
        return _fit_animations(opts, ts, log), skipped
    if opts.model is not None:
        return _model_animations(opts, None, ts, fmt, log, skipped), skipped
    if workdir is None:
        workdir = find_latest_run(opts.runs_dir)
    if workdir is None and opts.inputs and opts.targets:
        log(f"no trained run under {opts.runs_dir}/: fitting the pair instead")
        return _fit_animations(opts, ts, log), skipped
    if workdir is None:
        raise AnimationError(
            f"no trained run found under {opts.runs_dir}/ (a folder with config.toml and "
            f"checkpoints/); {TRAIN_HINT}, or pass --workdir RUN, or fit one pair with "
            "--input a.png --target b.png"
        )
    return _model_animations(opts, workdir, ts, fmt, log, skipped), skipped


def _no_face(skipped: Skipped, done: int) -> AnimationError:
    """One line naming the inputs without a face (the exit code says some were skipped)."""
    names = ", ".join(str(p) for p in skipped.paths)
    others = f"; the other {done} animated" if done else ""
    return AnimationError(
        f"{names}: {_NO_FACE} (skipped{others}); --whole-image animates the whole image "
        "instead"
    )


def _write_outputs(
    opts: RenderOptions, rendered: Rendered, fmt: str, gif: Path, sheet: Path | None,
    field: Path | None, frames_folder: Path | None, log,
) -> None:
    """The animation (``gif``: its path, as ``fmt``) and the extras asked for, for one
    (``outputs.Plan``)."""
    import io

    from jwarp import media
    from jwarp.files import atomic_write
    from jwarp.grid import draw_grid

    anim = rendered.animation
    frames = anim.frames
    if anim.disp is not None:  # in place, the frames come with any grid drawn
        frames = np.asarray(frames)
        if opts.grid:
            spacing = _grid_spacing(opts, *frames.shape[1:3])
            frames = draw_grid(frames, np.asarray(anim.disp), spacing)
    media.write_animation(gif, frames, fmt, opts.fps, opts.scale, pause=opts.pause)
    written = [str(gif)]
    if frames_folder is not None:
        try:
            media.write_frames(frames_folder, frames)
        except ValueError as e:  # a folder that changed since it was checked
            raise AnimationError(f"--frames-dir {e}") from None
        written.append(f"{len(frames)} PNG frames in {frames_folder}")
    if sheet is not None:
        media.write_png(sheet, media.contact_sheet(frames, opts.sheet))
        written.append(str(sheet))
    if field is not None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(rendered.end_disp, np.float32))
        atomic_write(field, buffer.getvalue())
        written.append(f"{field} (end map u, [H, W, 2] pixels (dy, dx))")
    log(f"wrote {', '.join(written)}")


__all__ = [
    "MAX_FIT_SIZE",
    "RenderOptions",
    "Rendered",
    "expand_inputs",
    "render",
]
