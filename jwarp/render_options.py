"""What ``animate.py`` was asked for: ``RenderOptions``, checked, with every default.

Light on purpose (no JAX): ``jwarp-animate --help`` shows these defaults without loading the
numerical modules; ``jwarp.render`` does the work.
"""

from __future__ import annotations

import dataclasses
import math

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
      t_steps: frames from ``t = 0`` to ``t = 1``.
      fps: frames per second.
      pause: extra seconds on the last frame.
      direction: ``"forward"``, ``"backward"`` or ``"boomerang"``.
      frames_dir: also write PNG frames here.
      sheet: also write a contact sheet with this many frames (0: none).
      grid: draw the deformation grid with this spacing in pixels (0: none; -1: size / 8,
        at least 4).
      scale: integer upscaling of the animation.
      fit: fit the input/target pair without a model even if a run exists.
      size: pair fitting: the longer side (default: the input's own, at most 256).
      fit_size: pair fitting: fit at most at this size and resample the field.
      fit_steps: pair fitting: steps at the finest pyramid level (``FitConfig.steps``).
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
            (self.t_steps >= 2, f"--t-steps: expected at least 2 frames, got {self.t_steps}"),
            (self.fps > 0 and math.isfinite(self.fps), f"--fps: expected > 0, got {self.fps}"),
            (self.pause >= 0, f"--pause: expected >= 0 seconds, got {self.pause}"),
            (self.direction in DIRECTIONS, f"--direction: expected one of {DIRECTIONS}"),
            (self.format is None or self.format in OUTPUT_FORMATS,
             f"--format: expected one of {OUTPUT_FORMATS}, got {self.format!r}"),
            (self.resize in RESIZE_MODES,
             f"--resize: expected one of {RESIZE_MODES}, got {self.resize!r}"),
            (self.sheet >= 0, f"--sheet: expected a number of frames >= 1, got {self.sheet}"),
            (
                self.grid in (0, -1) or self.grid >= 2,
                f"--grid: expected spacing >= 2, got {self.grid}",
            ),
            (self.scale >= 1, f"--scale: expected an integer >= 1, got {self.scale}"),
            (self.size is None or self.size >= 8, f"--size: expected >= 8, got {self.size}"),
            (self.fit_size >= 8, f"--fit-size: expected >= 8, got {self.fit_size}"),
            (self.fit_steps >= 1, f"--fit-steps: expected >= 1, got {self.fit_steps}"),
            (self.fit_similarity in SIMILARITIES,
             f"--fit-similarity: expected one of {SIMILARITIES}, got {self.fit_similarity!r}"),
            (self.fit_smoothness is None or self.fit_smoothness >= 0,
             f"--fit-smoothness: expected >= 0, got {self.fit_smoothness}"),
            (self.n_test >= 1, f"n_test: expected >= 1, got {self.n_test}"),
            (self.max_size is None or self.max_size >= 16,
             f"--max-size: expected a number of pixels >= 16, got {self.max_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise AnimationError(message)
