"""Image files read as model inputs (``read_input``): any format Pillow reads, converted as
``jwarp.data.read_image`` converts training data, with a note saying what changed; and the
frames of a padded or stretched input back to the photo's aspect (``restore_aspect``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

_GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_MODE_BY_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
_CHANNEL_NAMES = {1: "grey", 3: "RGB", 4: "RGBA"}


def _natural_channels(img: Image.Image) -> int:
    """1 for grey images, 4 for images with any transparency, else 3."""
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if has_alpha:
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            return 4
    if img.mode in _GREY_MODES or img.mode == "LA":
        return 1
    if img.mode == "P" and img.palette is not None:
        colours = np.asarray(img.convert("RGB")).reshape(-1, 3)
        if np.all(colours == colours[:, :1]):
            return 1
    return 3


class InputImage(NamedTuple):
    """An image file read as a model input (``read_input``).

    ``content``: ``(top, left, height, width)``, the part of ``image`` that shows the photo
    (all of it unless padded). ``aspect``: ``(height, width)`` at which the photo keeps its
    own aspect (``content``'s size, except for ``"stretch"``, where ``image`` must be
    resampled to it).
    """

    image: np.ndarray
    note: str | None
    content: tuple[int, int, int, int]
    aspect: tuple[int, int]


def read_input(
    path: str | os.PathLike,
    size: int | tuple[int, int] | None,
    channels: int | None,
    max_size: int | None = None,
    resize: str = "crop",
    keep_aspect: bool = False,
) -> InputImage:
    """Reads any image file as a model input, converted as ``jwarp.data.read_image`` converts
    training data: EXIF orientation applied, 16-bit grey kept at full precision, Lanczos
    resampling with premultiplied alpha, alpha dropped by compositing on black, grey as Rec.
    601 luminance, opaque alpha for images without one; with a note saying what changed.

    Args:
      path: image file (PNG, JPEG, GIF (first frame), WebP, TIFF, BMP, ...).
      size: ``height = width = size``, or ``(height, width)``; None: the photo's own size (its
        centre square's, or with ``keep_aspect`` all of it), at most ``max_size``. With
        ``keep_aspect`` an int is the longer side.
      channels: 1, 3 or 4; None keeps the image's own (1 grey, 3 colour, 4 with transparency).
      max_size: with ``size=None``, larger images are resized down to this (the square's
        side, or with ``keep_aspect`` the longer side).
      resize: a photo of another aspect than the output: ``"crop"`` its centre, ``"pad"``
        the whole photo resized to fit and its edge pixels repeated outwards, or
        ``"stretch"`` the whole photo to the output, aspect ignored.
      keep_aspect: the output has the photo's own aspect (``resize`` is then moot).

    Raises:
      ValueError: the file cannot be read as an image (``jwarp.data.DataError``: missing,
        empty, truncated, not an image, over Pillow's decompression-bomb limit; one line
        naming it), or a bad argument.
    """
    from jwarp.data import open_image, read_image  # read_image: the training data's conversion
    from jwarp.data.common import RESIZE_MODES, letterbox, placement

    if channels is not None and channels not in (1, 3, 4):
        raise ValueError(f"channels must be 1, 3 or 4, got {channels!r}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize: expected one of {RESIZE_MODES}, got {resize!r}")
    path = Path(path)
    img = open_image(path)  # DataError (a ValueError) naming the file if it cannot be read
    try:
        mode, (w, h), own = img.mode, img.size, _natural_channels(img)
        orientation = img.getexif().get(0x0112, 1)
    except (OSError, ValueError) as e:  # e.g. a mode Pillow cannot convert
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"{path}: cannot read {img.mode} image ({reason})") from None
    frames = img.info.get("n_frames", 1)
    rotated = orientation in (2, 3, 4, 5, 6, 7, 8)
    if orientation in (5, 6, 7, 8):  # these orientations swap the axes
        w, h = h, w
    if keep_aspect:
        if isinstance(size, tuple):
            out_h, out_w = size
        else:
            side = size
            if side is None:
                side = max(w, h) if max_size is None else min(max(w, h), max_size)
            _, _, out_w, out_h = letterbox(w, h, side, side)
        resize = "stretch"  # the same aspect, up to rounding
    elif isinstance(size, tuple):
        out_h, out_w = size
    else:
        side = min(w, h) if resize == "crop" else max(w, h)
        if size is None:
            size = side if max_size is None else min(side, max_size)
        out_h = out_w = size
    channels = own if channels is None else channels
    image = read_image(path, (out_h, out_w), channels, resize)
    box, (left, top, cw, ch) = placement(w, h, out_w, out_h, resize)
    aspect = (ch, cw)
    if resize == "stretch":
        _, _, aw, ah = letterbox(w, h, out_w, out_h)
        aspect = (ah, aw)
    same_aspect = w * out_h == h * out_w
    changes = []
    if frames > 1:
        changes.append(f"first of its {frames} frames")
    if rotated:
        changes.append(f"turned upright (EXIF orientation {orientation})")
    used = (box[2] - box[0], box[3] - box[1])
    if used != (w, h):
        changes.append(f"centre-cropped to {used[0]}x{used[1]}")
    if resize == "pad" and not same_aspect:
        changes.append(f"resized to {cw}x{ch} and padded to {out_w}x{out_h} (edge pixels "
                       "repeated)")
    elif resize == "stretch" and not same_aspect and not keep_aspect:
        changes.append(f"stretched to {out_w}x{out_h}")
    elif used != (out_w, out_h):
        changes.append(f"resized to {out_w}x{out_h}")
    if own != channels:
        how = {
            (4, 3): "alpha composited on black",
            (4, 1): "alpha composited on black, luminance",
            (3, 1): "luminance",
            (1, 3): "grey repeated",
            (1, 4): "opaque alpha",
            (3, 4): "opaque alpha",
        }[own, channels]
        changes.append(f"{_CHANNEL_NAMES[own]} -> {_CHANNEL_NAMES[channels]} ({how})")
    elif mode != _MODE_BY_CHANNELS[channels]:
        changes.append(f"{mode} -> {_MODE_BY_CHANNELS[channels]}")
    note = None
    if changes:
        note = f"{path}: {w}x{h} {mode} image " + ", ".join(changes)
    return InputImage(image, note, (top, left, ch, cw), aspect)


def load_image(
    path: str | os.PathLike,
    size: int | None,
    channels: int | None,
    max_size: int | None = None,
    resize: str = "crop",
) -> tuple[np.ndarray, str | None]:
    """``read_input``'s square ``(image [size, size, channels] float32 in [0, 1], note)``;
    ``note`` says what was converted (crop, resize, channels), or is None when nothing was.
    ``size=None`` keeps the centre square's own size (at most ``max_size``)."""
    got = read_input(path, size, channels, max_size, resize)
    return got.image, got.note


def restore_aspect(
    frames: np.ndarray, disp: np.ndarray | None, content, aspect
) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames ``[T, H, W, C]`` (and displacements ``[..., H, W, 2]``) of a ``read_input``
    image back to the photo's aspect: the padding cropped off (``content``), then resampled
    to ``aspect`` if it was stretched (displacements scaled with it).

    Cropping keeps ``frame = warp(input, u)`` exact: the padding repeats the edge pixels, as
    the sampler's border clamping does. Resampling a stretched one is approximate.
    """
    from jwarp.data.common import resize_float

    top, left, ch, cw = content
    frames = frames[:, top : top + ch, left : left + cw]
    if disp is not None:
        disp = disp[..., top : top + ch, left : left + cw, :]
    if (ch, cw) == tuple(aspect):
        return frames, disp
    lanczos, linear = Image.Resampling.LANCZOS, Image.Resampling.BILINEAR
    frames = resize_float(np.asarray(frames, np.float32), tuple(aspect), lanczos)
    if disp is not None:
        lead = disp.shape[:-3]
        flat = np.asarray(disp, np.float32).reshape(-1, ch, cw, 2)
        flat = resize_float(flat, tuple(aspect), linear, clip=False)
        flat *= np.array([aspect[0] / ch, aspect[1] / cw], np.float32)
        disp = flat.reshape(*lead, *aspect, 2)
    return frames, disp


__all__ = ["InputImage", "load_image", "read_input", "restore_aspect"]
