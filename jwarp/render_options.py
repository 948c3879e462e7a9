"""What ``animate.py`` was asked for: ``RenderOptions``, checked, with every default; and the
bounds checked once the images' sizes are known, before any frame is made (``check_frames``:
frame size and memory; ``check_fit_shape``: pairs too small to fit).

Light on purpose (no JAX): ``jwarp-animate --help`` shows these defaults without loading the
numerical modules; ``jwarp.render`` does the work.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from jwarp.choices import (
    DIRECTIONS,
    FIT_SIMILARITY,
    FIT_STEPS,
    OUTPUT_FORMATS,
    RESIZE_MODES,
    SIMILARITIES,
)
from jwarp.errors import AnimationError

MAX_FIT_SIZE = 256  # pair fitting: the input's longer side, at most this size (--size: any)
MIN_FIT_SIDE = 8  # pair fitting: pixels on each side of the image, and of its fitted copy
MAX_T_STEPS = 10_000  # --t-steps: over 5 minutes at 30 fps
MAX_SCALE = 64  # --scale
MAX_SIDE = 16_383  # pixels on an output frame's longer side, --scale included (WebP's limit)
# --fps and --pause: every frame's delay stays a valid GIF delay (centiseconds in 16 bits, at
# most 655.35 s) and WebP duration, and --pause adds at most MAX_PAUSE * MAX_FPS MP4 frames.
MIN_FPS, MAX_FPS = 0.1, 120.0
MAX_PAUSE = 60.0  # seconds
MAX_FIT_STEPS = 10_000  # --fit-steps: about 330 times the default (each coarser level: twice)
MAX_SHEET = 100  # --sheet: frames on a contact sheet


@dataclasses.dataclass(frozen=True)
class RenderOptions:
    """What ``animate.py`` was asked for.

    Attributes:
      inputs: start images (paths or glob patterns); empty: test images of the run's data.
      targets: end images: one, or one per input (``pair`` models and pair fitting).
      workdir: run folder; default the latest under ``runs_dir``.
      model: the name of a shipped model (``jwarp.pretrained``) instead of a run.
      checkpoint: checkpoint step; default the latest.
      runs_dir: where to look for runs.
      out: one animation's file, its format by the extension (``.gif``, ``.webp``: animated
        WebP, ``.mp4``: H.264, which needs the extra ``jwarp[video]``), or a folder (no
        extension, a trailing ``/``, or an existing folder) for ``<name>.<format>`` of each;
        default ``animations/``. Any other extension is an error.
      format: the format of each animation in a folder ``out`` (``OUTPUT_FORMATS``; default
        ``gif``); with a file ``out`` it must agree with the extension.
      resize: how a photo whose aspect is not the model's square becomes its input:
        ``"crop"`` its centre square (the output is square); ``"pad"`` the whole photo,
        resized to fit, its edge pixels repeated outwards (as the warp's border clamping
        does), and cropped off the output again, so the output has the photo's aspect;
        ``"stretch"`` the whole photo squeezed into the square, aspect ignored, and the
        output frames (and ``save_field``) resampled back to the photo's aspect. Pair fitting
        has no square to fit: it animates at the input's own aspect (at most ``size`` or
        ``MAX_FIT_SIZE`` on the longer side), and ``resize`` brings a target of another
        aspect to the input's.
      t_steps: frames from ``t = 0`` to ``t = 1`` (2 to ``MAX_T_STEPS``).
      fps: frames per second (``MIN_FPS`` to ``MAX_FPS``).
      pause: extra seconds on the last frame (0 to ``MAX_PAUSE``).
      direction: ``"forward"``, ``"backward"`` or ``"boomerang"``.
      frames_dir: also write PNG frames here.
      sheet: also write a contact sheet with this many frames (0: none; at most
        ``MAX_SHEET``).
      grid: draw the deformation grid with this spacing in pixels (0: none; -1: size / 8,
        at least 4).
      scale: integer upscaling of the animation (1 to ``MAX_SCALE``; the frames at most
        ``MAX_SIDE`` pixels on a side).
      fit: fit the input/target pair without a model even if a run exists.
      size: pair fitting: the longer side (default: the input's own, at most 256).
      fit_size: pair fitting: fit at most at this size and resample the field.
      fit_steps: pair fitting: steps at the finest pyramid level (``FitConfig.steps``; 1 to
        ``MAX_FIT_STEPS``).
      fit_similarity: pair fitting: ``"l2"`` or ``"lncc"`` (``FitConfig.similarity``).
      fit_smoothness: pair fitting: ``FitConfig.smoothness`` (default: its own).
      morph: pair fitting: blend the source warped forward with the target warped backward,
        so the animation ends exactly on the target (``svf_animation``); else warp the source.
      n_test: test images animated when no inputs are given.
      save_field: also write the end frame's displacement ``u`` (``[H, W, 2]`` float32 pixels
        ``(dy, dx)``, pull-back: ``frame(s) = input(s + u(s))``): to this ``.npy`` path for
        one animation, otherwise as ``<name>.npy`` for each into this folder. In place in a
        photo it is the photo's size.
      find_faces: find the faces of each photo, align them to the model's canonical crop and
        animate them in place, the photo at its own size and in its own channels (True);
        animate the whole image as the model's input (False); None: as the model was trained
        (models trained on aligned faces find faces; others, and a run's own test images,
        animate whole images), and for pair fitting whenever both photos show a face.
      max_size: in place: shrink photos whose longer side is larger to this (default: keep
        their size).
    """

    inputs: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    workdir: str | None = None
    model: str | None = None
    checkpoint: int | None = None
    runs_dir: str = "runs"
    out: str | None = None
    format: str | None = None
    resize: str = "crop"
    t_steps: int = 120
    fps: float = 30.0
    pause: float = 0.0
    direction: str = "forward"
    frames_dir: str | None = None
    sheet: int = 0
    grid: int = 0
    scale: int = 1
    fit: bool = False
    size: int | None = None
    fit_size: int = 64
    fit_steps: int = FIT_STEPS
    fit_similarity: str = FIT_SIMILARITY
    fit_smoothness: float | None = None
    morph: bool = True
    n_test: int = 4
    save_field: str | None = None
    find_faces: bool | None = None
    max_size: int | None = None

    def __post_init__(self):
        checks = [
            (2 <= self.t_steps <= MAX_T_STEPS,
             f"--t-steps: expected 2 to {MAX_T_STEPS} frames, got {self.t_steps}"),
            (MIN_FPS <= self.fps <= MAX_FPS,  # NaN fails every comparison
             f"--fps: expected {MIN_FPS:g} to {MAX_FPS:g} frames per second, got {self.fps}"),
            (0 <= self.pause <= MAX_PAUSE,
             f"--pause: expected 0 to {MAX_PAUSE:g} seconds, got {self.pause}"),
            (self.direction in DIRECTIONS, f"--direction: expected one of {DIRECTIONS}"),
            (self.format is None or self.format in OUTPUT_FORMATS,
             f"--format: expected one of {OUTPUT_FORMATS}, got {self.format!r}"),
            (self.resize in RESIZE_MODES,
             f"--resize: expected one of {RESIZE_MODES}, got {self.resize!r}"),
            (0 <= self.sheet <= MAX_SHEET, f"--sheet: {sheet_expected(self.sheet)}"),
            (
                self.grid in (0, -1) or self.grid >= 2,
                f"--grid: expected spacing >= 2, got {self.grid}",
            ),
            (1 <= self.scale <= MAX_SCALE,
             f"--scale: expected an integer from 1 to {MAX_SCALE}, got {self.scale}"),
            (self.size is None or MIN_FIT_SIDE <= self.size <= MAX_SIDE,
             f"--size: expected {MIN_FIT_SIDE} to {MAX_SIDE} pixels, got {self.size}"),
            (MIN_FIT_SIDE <= self.fit_size <= MAX_SIDE,
             f"--fit-size: expected {MIN_FIT_SIDE} to {MAX_SIDE} pixels, got {self.fit_size}"),
            (1 <= self.fit_steps <= MAX_FIT_STEPS,
             f"--fit-steps: expected 1 to {MAX_FIT_STEPS} steps, got {self.fit_steps}"),
            (self.fit_similarity in SIMILARITIES,
             f"--fit-similarity: expected one of {SIMILARITIES}, got {self.fit_similarity!r}"),
            (self.fit_smoothness is None
             or (self.fit_smoothness >= 0 and math.isfinite(self.fit_smoothness)),
             f"--fit-smoothness: expected a finite number >= 0, got {self.fit_smoothness}"),
            (self.n_test >= 1, f"n_test: expected >= 1, got {self.n_test}"),
            (self.max_size is None or self.max_size >= 16,
             f"--max-size: expected a number of pixels >= 16, got {self.max_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise AnimationError(message)


def sheet_expected(n: int) -> str:
    """What ``--sheet N`` must be, for its one-line message."""
    return f"expected a number of frames from 1 to {MAX_SHEET}, got {n}"


F32 = 4  # bytes


def shown_frames(opts: RenderOptions) -> int:
    """Frames in each animation: ``t_steps``, or ``2 t_steps - 1`` for a boomerang."""
    return 2 * opts.t_steps - 1 if opts.direction == "boomerang" else opts.t_steps


def check_frames(
    opts: RenderOptions,
    what: str,
    shape: tuple[int, int, int],
    n: int = 1,
    *,
    fmt: str = "gif",
    computed: bool = True,
    memory: tuple[int | None, int | None] | None = None,
) -> None:
    """Refuses animations that cannot be made or written, before they are made.

    An output frame (the ``[H, W, C]`` ``shape`` times ``--scale``) over ``MAX_SIDE`` pixels
    on a side, or frames that need more memory than there is. As ``jwarp.memory``'s for
    training, the estimate is a lower bound, so a refusal is never wrong: the float32 frames
    and displacements of ``n`` animations at once on the device and again on the host
    (unless not ``computed``: read lazily, in place in a photo) and, for a GIF, the upscaled
    palette indices of one (or its contact sheet, if larger).

    Args:
      opts: what was asked for (``t_steps``, ``direction``, ``scale``).
      what: what sets the size, named first in the message (``"--size 50000"``, a path).
      shape: ``(H, W, C)`` of the frames, before ``--scale``.
      n: animations made at once.
      fmt: the animations' format (``OUTPUT_FORMATS``).
      computed: the frames are computed and held (not read lazily).
      memory: ``(host, device)`` bytes available (None: unknown; a device's None on CPU,
        whose devices share the host's memory); default: measured.

    Raises:
      AnimationError: one line naming ``what``, the sizes and the flags that lower them.
    """
    from jwarp.memory import available_host_bytes, format_bytes

    h, w, c = shape
    scale, frames = opts.scale, shown_frames(opts)
    if max(h, w) * scale > MAX_SIDE:
        fits = f"--scale <= {MAX_SIDE // max(h, w)} for" if MAX_SIDE >= max(h, w) else "even"
        raise AnimationError(
            f"{what}: {w}x{h} frames{f' at --scale {scale}' if scale > 1 else ''} would be "
            f"{w * scale}x{h * scale} pixels; expected at most {MAX_SIDE} on a side ({fits} "
            f"{w}x{h})"
        )
    held = n * frames * h * w * (c + 2) * F32 if computed else 0  # frames [T, H, W, C], u
    encoder = frames * h * w * scale**2 if fmt == "gif" else 0  # one byte a pixel
    sheet = min(opts.sheet, frames) * h * w * c * F32 if computed else 0  # side by side
    host, device = held + max(encoder, sheet), held
    if memory is None:
        from jwarp.parallel import device_memory

        memory = available_host_bytes(), device_memory()
    host_bytes, device_bytes = memory
    if device_bytes is None:  # CPU devices live in host memory
        host, device = host + device, 0
    hint = "lower --t-steps, --size or --scale, or animate fewer images at once"
    count = f"{n} x {frames}" if n > 1 else f"{frames}"
    if host_bytes is not None and host > host_bytes:
        raise AnimationError(
            f"{what}: {count} frames of {w}x{h} need at least {format_bytes(host)} of memory, and "
            f"{format_bytes(host_bytes)} is available; {hint}"
        )
    if device_bytes is not None and device > device_bytes:
        raise AnimationError(
            f"{what}: {count} frames of {w}x{h} need at least {format_bytes(device)} on the "
            f"device, and it has {format_bytes(device_bytes)}; {hint}"
        )


def fit_shape(path: Path, size: int | None) -> tuple[int, int] | None:
    """``(H, W)`` at which pair fitting reads ``path`` (``images.read_input`` keeping its
    aspect), from the file's header alone; None when it cannot be read (reading says why)."""
    import warnings

    from PIL import Image

    from jwarp.data.common import letterbox

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a decompression bomb: reading refuses it
            with Image.open(path) as img:
                w, h = img.size
                if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF: turned a quarter
                    w, h = h, w
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    side = size if size is not None else min(max(w, h), MAX_FIT_SIZE)
    _, _, out_w, out_h = letterbox(w, h, side, side)
    return out_h, out_w


def fitted_at(opts: RenderOptions, h: int, w: int) -> tuple[int, int]:
    """``(h, w)`` of the copies ``fit_field`` fits (its own rule: at most ``--fit-size``)."""
    f = min(1.0, opts.fit_size / max(h, w))
    return (max(2, round(h * f)), max(2, round(w * f))) if f < 1 else (h, w)


# Pair fitting's arrays per pixel of the copies it fits (velocity, L-BFGS's curvature pairs,
# gradients, the flow's steps and derivatives kept for them, the pyramid): XLA's own count of
# a compiled fit_field (memory_analysis, CPU, 32 to 128 px) is 204 to 219 + 2 to 7 (C - 1)
# float32s with "l2" and 206 to 221 + 18 to 31 (C - 1) with "lncc"; this is below both (a
# refusal is never wrong).
def fit_floats_per_pixel(channels: int) -> int:
    """A lower bound on pair fitting's float32 values per pixel fitted (``channels``: C)."""
    return 104 + 4 * channels


def check_fit_shape(
    opts: RenderOptions,
    source: Path,
    h: int,
    w: int,
    fmt: str = "gif",
    channels: int = 1,
    memory: tuple[int | None, int | None] | None = None,
) -> None:
    """Refuses a pair too small to fit, or whose fit or frames cannot fit in memory
    (``check_frames``; ``channels``: 1 before the image is read, a lower bound), before it is
    read at that size. ``memory``: as ``check_frames``'s."""
    from jwarp.memory import available_host_bytes, format_bytes

    fh, fw = fitted_at(opts, h, w)
    at = f", fitted at {fw}x{fh} (--fit-size {opts.fit_size})" if (fh, fw) != (h, w) else ""
    if min(fh, fw) < MIN_FIT_SIDE:
        raise AnimationError(
            f"{source}: {w}x{h} pixels{at}; pair fitting needs at least {MIN_FIT_SIDE} pixels "
            "on each side: give a larger image (or --size, --fit-size)"
        )
    what = f"--size {opts.size}" if opts.size is not None else str(source)
    if memory is None:
        from jwarp.parallel import device_memory

        memory = available_host_bytes(), device_memory()
    check_frames(opts, what, (h, w, channels), fmt=fmt, memory=memory)
    # The fit runs before the frames are made, on the device (CPU: in the host's memory).
    need = fh * fw * fit_floats_per_pixel(channels) * F32 + 2 * h * w * channels * F32
    host_bytes, device_bytes = memory
    has = host_bytes if device_bytes is None else device_bytes
    if has is not None and need > has:
        where = "is available" if device_bytes is None else "on the device"
        raise AnimationError(
            f"{what}: fitting {w}x{h}{at} needs at least {format_bytes(need)} of memory, and "
            f"{format_bytes(has)} {where}; lower --fit-size (or --size)"
        )
