"""Host-side image output: animations (GIF, animated WebP, MP4), PNG frames, contact sheets
(input images: ``jwarp.images``; the deformation grid drawn over frames: ``jwarp.grid``).

Frames are ``float [T, H, W, C]`` in ``[0, 1]`` with ``C in {1, 3, 4}`` (docs/method.md §2;
RGBA holds straight colours, alpha is coverage). Every file is written atomically
(``jwarp.files.atomic_write``): a killed writer never leaves a partial file under the final
name. A folder of PNG frames is written as a whole (``jwarp.files.atomic_folder``): a failed
or interrupted ``write_frames`` leaves no partial folder, and an earlier folder of frames as it
was.

GIFs are encoded here (Pillow does the LZW compression) rather than by ``Image.save``, which
merges identical consecutive frames: a GIF asked to have 120 frames has 120 frames. Colours:

* one global palette for all frames, so a pixel that does not change never flickers, and no
  dithering (dither noise would crawl from frame to frame). When the animation has at most 256
  distinct colours (always for grey images) the palette is exact; otherwise it is a median-cut
  palette of all frames' pixels.
* RGBA: pixels with alpha < 0.5 use a reserved transparent palette index, the other 255 entries
  hold the opaque colours, and every frame is disposed to the background (disposal 2) so a
  moving shape leaves no trail over the transparent background.

Animated WebP (``encode_webp``) is Pillow's (libwebp): full colour and 8-bit alpha. MP4
(``write_mp4``) is H.264 through the ffmpeg binary ``imageio-ffmpeg`` ships (the optional
extra ``jwarp[video]``), started without forking and checked before its file replaces any
(``jwarp.video``); RGBA is composited over a background as for a GIF without transparency.
``write_animation`` picks the writer by format (``OUTPUT_FORMATS``).
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import GifImagePlugin, Image

from jwarp.choices import OUTPUT_FORMATS
from jwarp.files import atomic_folder, atomic_write, sigterm_unwinds
from jwarp.video import VIDEO_EXTRA, ffmpeg_exe, write_h264

_MODE_BY_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
_MIN_DELAY_CS = 2  # browsers slow shorter GIF delays down to 0.1 s
_PALETTE_PIXELS = 2**22  # more pixels than this: the GIF palette from a sample of them


def _check_frames(frames) -> np.ndarray | Sequence[np.ndarray]:
    """Frames as an array (float32, or uint8 as given), or a sequence of ``[H, W, C]``
    frames read one at a time (e.g. ``jwarp.faces.PhotoAnimation``: a photo's frames need not
    all be in memory at once)."""
    if isinstance(frames, Sequence) and not isinstance(frames, list | tuple):
        shape = (len(frames), *np.shape(frames[0])) if len(frames) else (0,)
    else:
        frames = np.asarray(frames)
        frames = frames if frames.dtype == np.uint8 else frames.astype(np.float32)
        shape = frames.shape
    if len(shape) != 4 or shape[-1] not in (1, 3, 4) or shape[0] == 0:
        raise ValueError(f"frames: expected [T, H, W, C] with C in (1, 3, 4), got {shape}")
    return frames


def _in_memory(frames) -> np.ndarray:
    """``_check_frames``' frames as one array (a lazy sequence read in full)."""
    return frames if isinstance(frames, np.ndarray) else np.stack([np.asarray(f) for f in frames])


def frames_array(frames) -> np.ndarray:
    """Frames ``[T, H, W, C]`` (``C in {1, 3, 4}``) as one array: float32, or uint8 as given; a
    lazy sequence is read in full. ``ValueError`` for any other shape."""
    return _in_memory(_check_frames(frames))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint8_rgb(frames: np.ndarray, background: float = 1.0) -> np.ndarray:
    """``[T, H, W, C]`` floats in ``[0, 1]`` -> ``[T, H, W, 3]`` uint8.

    Grey (``C = 1``) is repeated to RGB; RGBA (``C = 4``, straight alpha) is composited over a
    constant ``background`` grey level. uint8 frames are taken as ``value / 255``.
    """
    frames = _in_memory(_check_frames(frames))
    if frames.dtype == np.uint8 and frames.shape[-1] != 4:
        return frames if frames.shape[-1] == 3 else np.repeat(frames, 3, axis=-1)
    frames = np.clip(frames.astype(np.float32) / (255.0 if frames.dtype == np.uint8 else 1.0),
                     0.0, 1.0)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    elif frames.shape[-1] == 4:
        alpha = frames[..., 3:]
        frames = frames[..., :3] * alpha + background * (1.0 - alpha)
    return _to_uint8(frames)


def _check_options(fps: float, pause: float, scale: int) -> None:
    """Every animation writer's ``fps``, ``pause`` and ``scale``, checked before any work."""
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps: expected a positive number, got {fps}")
    if pause < 0:
        raise ValueError(f"pause: expected a number >= 0, got {pause}")
    if scale < 1:
        raise ValueError(f"scale: expected an integer >= 1, got {scale}")


def _scaled(frames: np.ndarray, scale: int) -> np.ndarray:
    """``[T, H, W, ...]`` -> ``[T, scale * H, scale * W, ...]``, nearest neighbour (``scale``:
    checked by ``_check_options``)."""
    return frames if scale == 1 else frames.repeat(scale, axis=1).repeat(scale, axis=2)


# --- GIF ------------------------------------------------------------------------------------


def _global_palette(rgb_Nx3: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """One palette of at most ``capacity`` colours for ``[N, 3]`` uint8 pixels.

    Returns:
      ``(palette [K, 3] uint8, index [N] uint8)``; exact when there are at most ``capacity``
      distinct colours, otherwise median cut without dithering.
    """
    if len(rgb_Nx3) > _PALETTE_PIXELS:
        # A photo's animation: the palette from an even sample of its pixels (every frame is
        # a resampling of the same photo, so they share its colours), then every pixel mapped.
        step = len(rgb_Nx3) // _PALETTE_PIXELS + 1
        palette, _ = _global_palette(rgb_Nx3[::step], capacity)
        # Pillow's reference palettes have 256 entries: the spare ones repeat the first colour
        # (black would take dark pixels from the real palette) and map back to it.
        spare = np.repeat(palette[:1], 256 - len(palette), axis=0)
        reference = Image.new("P", (1, 1))
        reference.putpalette(np.concatenate([palette, spare]).reshape(-1).tolist())
        index = np.empty(len(rgb_Nx3), np.uint8)
        for start in range(0, len(rgb_Nx3), _PALETTE_PIXELS):
            part = rgb_Nx3[start : start + _PALETTE_PIXELS].reshape(-1, 1, 3)
            strip = Image.fromarray(np.ascontiguousarray(part), "RGB")
            mapped = strip.quantize(palette=reference, dither=Image.Dither.NONE)
            mapped = np.asarray(mapped, np.uint8).reshape(-1)
            index[start : start + len(part)] = np.where(mapped < len(palette), mapped, 0)
        return palette, index
    keys = (rgb_Nx3[:, 0].astype(np.int32) << 16) | (rgb_Nx3[:, 1].astype(np.int32) << 8)
    keys |= rgb_Nx3[:, 2].astype(np.int32)
    unique, index = np.unique(keys, return_inverse=True)
    if len(unique) <= capacity:
        palette = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=-1)
        return palette.astype(np.uint8), index.astype(np.uint8)
    # Median cut over all pixels at once; Pillow maps each pixel to its palette colour.
    strip = Image.fromarray(np.ascontiguousarray(rgb_Nx3.reshape(-1, 1, 3)), "RGB")
    quantized = strip.quantize(capacity, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = np.asarray(quantized.getpalette()[: 3 * capacity], np.uint8).reshape(-1, 3)
    return palette, np.asarray(quantized, np.uint8).reshape(-1)


def _delays_cs(n: int, fps: float, pause: float, ticks: int = 100) -> list[int]:
    """Per-frame delays in centiseconds (``1 / ticks`` s) whose running sum follows ``k / fps``
    (so 30 fps is 3, 4, 3, 3, 4, ... rather than 3 throughout), at least 0.02 s each, with
    ``pause`` seconds added to the last."""
    edges = [round(ticks * k / fps) for k in range(n + 1)]
    shortest = _MIN_DELAY_CS * ticks // 100
    delays = [max(shortest, b - a) for a, b in zip(edges[:-1], edges[1:])]
    delays[-1] += round(ticks * pause)
    return delays


def encode_gif(
    frames: np.ndarray,
    fps: float = 24.0,
    scale: int = 1,
    *,
    pause: float = 0.0,
    transparent: bool = True,
    background: float = 1.0,
) -> bytes:
    """Encodes frames as a looping animated GIF (see the module docstring for colours).

    Args:
      frames: ``[T, H, W, C]`` floats in ``[0, 1]``, ``C in {1, 3, 4}``.
      fps: frames per second (GIF delays are whole centiseconds, at least 2).
      scale: integer nearest-neighbour upscaling, for small images.
      pause: extra seconds the last frame is held before the loop restarts.
      transparent: RGBA only: alpha < 0.5 becomes transparent; otherwise frames are composited
        over ``background``.
      background: grey level RGBA is composited over when not ``transparent``.

    Returns:
      The GIF file's bytes.
    """
    frames = _in_memory(_check_frames(frames))
    _check_options(fps, pause, scale)
    t, h, w, c = frames.shape
    clear = None
    if c == 4 and transparent:
        half = 128 if frames.dtype == np.uint8 else 0.5
        clear = frames[..., 3] < half  # [T, H, W]
        rgb = _to_uint8(frames[..., :3])
    else:
        rgb = to_uint8_rgb(frames, background)
    if clear is not None and clear.any():
        palette, index = _global_palette(rgb[~clear], 255)
        indices = np.full((t, h, w), 255, np.uint8)
        indices[~clear] = index
        palette = np.concatenate([palette, np.zeros((256 - len(palette), 3), np.uint8)])
        transparency = 255
    else:
        palette, index = _global_palette(rgb.reshape(-1, 3), 256)
        indices = index.reshape(t, h, w)
        palette = np.concatenate([palette, np.zeros((256 - len(palette), 3), np.uint8)])
        transparency = None
    indices = _scaled(indices, scale)
    h, w = h * scale, w * scale

    out = [
        b"GIF89a",
        struct.pack("<HHBBB", w, h, 0xF7, 0, 0),  # global table of 256 colours, 8-bit
        palette.tobytes(),
        b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", 0) + b"\x00",  # loop forever
    ]
    params = {"disposal": 2} if transparency is not None else {"disposal": 1}
    if transparency is not None:
        params["transparency"] = transparency
    flat_palette = palette.reshape(-1).tolist()
    for frame, delay in zip(indices, _delays_cs(t, fps, pause)):
        image = Image.fromarray(np.ascontiguousarray(frame), "P")
        image.putpalette(flat_palette)
        # The graphic control block, the image descriptor and the LZW data, without a local
        # colour table: every frame uses the global palette.
        out += GifImagePlugin.getdata(image, (0, 0), duration=10 * delay, **params)
    out.append(b";")
    return b"".join(out)


def write_gif(path: str | os.PathLike, frames: np.ndarray, *args, **options) -> Path:
    """Writes ``encode_gif(frames, *args, **options)`` to ``path``; a killed writer never
    leaves a partial file there. Returns ``path``."""
    atomic_write(path, encode_gif(frames, *args, **options))
    return Path(path)


# --- animated WebP and MP4 ------------------------------------------------------------------

_WEBP_QUALITY = 90


def encode_webp(
    frames: np.ndarray, fps: float = 24.0, scale: int = 1, *, pause: float = 0.0
) -> bytes:
    """Encodes frames as a looping animated WebP (Pillow's libwebp).

    Lossy at quality 90 with lossless alpha: on 120 smooth-noise 256x256 RGB frames lossless
    WebP took 14 MB, quality 90 1.6 MB (about 0.4 s each). Grey becomes RGB (WebP has no grey
    mode); RGBA keeps its alpha. Delays are whole milliseconds whose running sum follows
    ``k / fps`` (at least 20 ms, as for a GIF); libwebp merges identical consecutive frames
    into one frame of their summed duration, so the timing is kept.

    Args:
      frames: ``[T, H, W, C]`` floats in ``[0, 1]``, ``C in {1, 3, 4}``.
      fps: frames per second.
      scale: integer nearest-neighbour upscaling.
      pause: extra seconds the last frame is held before the loop restarts.

    Returns:
      The WebP file's bytes.
    """
    from PIL import features

    frames = _check_frames(frames)
    _check_options(fps, pause, scale)
    if not features.check("webp"):
        raise ValueError("animated WebP: this Pillow was built without WebP support")

    def image(frame: np.ndarray) -> Image.Image:
        pixels = _to_uint8(_scaled(np.asarray(frame)[None], scale)[0])
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        mode = "RGBA" if pixels.shape[-1] == 4 else "RGB"
        return Image.fromarray(np.ascontiguousarray(pixels), mode)

    images = [image(f) for f in frames]
    delays = _delays_cs(len(images), fps, pause, ticks=1000)  # milliseconds
    buffer = io.BytesIO()
    images[0].save(buffer, format="WEBP", save_all=True, append_images=images[1:],
                   duration=delays, loop=0, quality=_WEBP_QUALITY, alpha_quality=100)
    return buffer.getvalue()


def write_webp(path: str | os.PathLike, frames: np.ndarray, *args, **options) -> Path:
    """Writes ``encode_webp(frames, *args, **options)`` to ``path`` atomically; returns it."""
    atomic_write(path, encode_webp(frames, *args, **options))
    return Path(path)


def mp4_writer() -> str:
    """The ffmpeg that writes MP4s (``jwarp.video.ffmpeg_exe``), or ``ValueError`` (one line
    naming the extra to install) when imageio-ffmpeg or its ffmpeg binary is missing."""
    return ffmpeg_exe()


def write_mp4(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float = 24.0,
    scale: int = 1,
    *,
    pause: float = 0.0,
    background: float = 1.0,
    crf: int = 18,
) -> Path:
    """Writes frames as an H.264 MP4 (``yuv420p``, what every player plays) with the ffmpeg
    of imageio-ffmpeg (``jwarp.video.write_h264``).

    Written to a temporary name beside ``path`` and renamed only when ffmpeg succeeded and
    the file is a whole MP4: a failed or killed writer never harms an existing ``path``.

    Args:
      path: the ``.mp4`` file.
      frames: ``[T, H, W, C]`` floats in ``[0, 1]``; grey becomes RGB, RGBA is composited
        over ``background`` (``to_uint8_rgb``: MP4 has no transparency).
      fps: frames per second (a constant frame rate).
      scale: integer nearest-neighbour upscaling.
      pause: extra seconds on the last frame: it is repeated ``round(pause * fps)`` times.
      crf: x264's constant rate factor (18: visually lossless; lower is larger).

    Returns:
      ``path``.

    Raises:
      ValueError: imageio-ffmpeg is missing (``mp4_writer``).
      OSError: naming ``path``: ffmpeg failed (a full disk), or the folder cannot be written.
    """
    frames = _check_frames(frames)
    _check_options(fps, pause, scale)

    def rgb(frame: np.ndarray) -> np.ndarray:
        # yuv420p stores colour at half resolution, so H.264 needs an even width and height:
        # an odd side gets one more row or column repeating its last one (padding, not
        # scaling, keeps every pixel as it was). One frame at a time: a photo's animation need
        # not fit in memory.
        out = to_uint8_rgb(_scaled(np.asarray(frame)[None], scale), background)[0]
        h, w, _ = out.shape
        return np.ascontiguousarray(np.pad(out, [(0, h % 2), (0, w % 2), (0, 0)], mode="edge"))

    def all_frames():
        last = None
        for frame in frames:
            last = rgb(frame)
            yield last
        for _ in range(round(pause * fps)):
            yield last

    h, w, _ = np.shape(frames[0])
    size = (w * scale + (w * scale) % 2, h * scale + (h * scale) % 2)
    return write_h264(path, all_frames(), size, fps, crf)


def write_animation(
    path: str | os.PathLike,
    frames: np.ndarray,
    fmt: str,
    fps: float = 24.0,
    scale: int = 1,
    *,
    pause: float = 0.0,
) -> Path:
    """Writes frames as ``fmt`` (one of ``OUTPUT_FORMATS``) to ``path``, atomically."""
    writers = {"gif": write_gif, "webp": write_webp, "mp4": write_mp4}
    if fmt not in writers:
        raise ValueError(f"format: expected one of {OUTPUT_FORMATS}, got {fmt!r}")
    return writers[fmt](path, frames, fps, scale, pause=pause)


# --- PNG frames and contact sheets -----------------------------------------------------------


# Still images by extension: sheets with sharp grid lines, so JPEG keeps full-resolution
# colour and WebP is lossless.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def image_format(path: str | os.PathLike) -> str:
    """The format ``write_image`` writes ``path`` in, by its extension (``IMAGE_FORMATS``).

    Raises:
      ValueError: one line naming ``path`` and the extensions accepted.
    """
    ext = Path(path).suffix.lower()
    if ext not in IMAGE_FORMATS:
        what = f"unknown image extension {ext!r}" if ext else "no image extension"
        raise ValueError(f"{path}: {what}; expected {', '.join(IMAGE_FORMATS)}")
    return IMAGE_FORMATS[ext]


def encode_image(image: np.ndarray, fmt: str = "PNG") -> bytes:
    """``[H, W, C]`` floats in ``[0, 1]`` (or uint8) -> the bytes of a ``fmt`` image.

    PNG: grey, RGB or RGBA with straight alpha. JPEG (quality 95, no chroma subsampling): grey
    or RGB, RGBA composited on white (JPEG has no alpha). WEBP: lossless RGB or RGBA.
    """
    image = np.asarray(image)
    image = image if image.dtype == np.uint8 else image.astype(np.float32)
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image: expected [H, W, C] with C in (1, 3, 4), got {image.shape}")
    if fmt == "JPEG" and image.shape[-1] == 4:
        image = to_uint8_rgb(image[None], background=1.0)[0]
    pixels = _to_uint8(image)
    mode = _MODE_BY_CHANNELS[image.shape[-1]]
    picture = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
    options = {}
    if fmt == "JPEG":
        options = {"quality": 95, "subsampling": 0}
    elif fmt == "WEBP":
        from PIL import features

        if not features.check("webp"):
            raise ValueError("WebP: this Pillow was built without WebP support")
        picture = picture.convert("RGB") if mode == "L" else picture
        options = {"lossless": True}
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    """``[H, W, C]`` floats in ``[0, 1]`` (or uint8) -> PNG bytes (grey, RGB or RGBA with
    straight alpha)."""
    return encode_image(image, "PNG")


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Writes one ``[H, W, C]`` image as PNG, atomically; returns ``path``."""
    atomic_write(path, encode_png(image))
    return Path(path)


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Writes one ``[H, W, C]`` image in the format its extension names (``image_format``:
    PNG, JPEG or WebP), atomically; returns ``path``."""
    atomic_write(path, encode_image(image, image_format(path)))
    return Path(path)


def write_frames(
    directory: str | os.PathLike, frames: np.ndarray, prefix: str = "frame_"
) -> list[Path]:
    """Writes ``frames[k]`` as ``directory/{prefix}{k:04d}.png``, the folder as a whole.

    The frames are written into a temporary folder beside ``directory`` that then takes its
    place (``atomic_folder``), so the folder holds exactly this animation's frames: an
    existing folder of earlier frames (``check_frames_folder``) is replaced as a whole, or,
    when writing fails or is interrupted, left as it was.

    Args:
      directory: output folder (created with the folders above it if needed).
      frames: ``[T, H, W, C]`` floats in ``[0, 1]``.
      prefix: file name prefix.

    Returns:
      The ``T`` paths, in frame order.

    Raises:
      ValueError: ``directory`` holds other files, or is the current folder
        (``check_frames_folder``); nothing is written.
      OSError: naming ``directory``, e.g. a full disk.
    """
    frames = _check_frames(frames)
    directory = Path(directory)
    check_frames_folder(directory, prefix)
    names = [f"{prefix}{k:04d}.png" for k in range(len(frames))]
    with sigterm_unwinds(), atomic_folder(directory) as tmp:
        for name, frame in zip(names, frames):
            write_png(tmp / name, frame)
    return [directory / name for name in names]


def check_frames_folder(directory: str | os.PathLike, prefix: str = "frame_") -> None:
    """Whether ``write_frames`` may replace ``directory``: it is new, empty or holds only
    frames (regular files named exactly as it names them, ``{prefix}NNNN.png``, and the hidden
    temporaries of an interrupted write).

    Raises:
      ValueError: one line naming ``directory`` and what is in the way: other files, or a
        folder, link or device under a frame's name (never deleted), or the current folder
        (or one above it).
    """
    directory = Path(directory)
    if not os.path.isdir(directory):
        return
    if Path.cwd().is_relative_to(directory.resolve()):
        raise ValueError(
            f"{directory}: is the current folder (or holds it); the frames replace their "
            "folder as a whole: give them a folder of their own, e.g. frames/"
        )
    frame = _frame_name(prefix)
    with os.scandir(directory) as entries:
        # A frame's name on a folder, a link or a device is not a frame this wrote: a
        # user's, never deleted with the folder.
        others = sorted(
            e.name + _not_a_file(e) if frame.fullmatch(e.name) else e.name
            for e in entries
            if not (frame.fullmatch(e.name) and e.is_file(follow_symlinks=False))
        )
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise ValueError(
            f"{directory}: holds files other than {prefix}NNNN.png frames ({shown}); the "
            "frames replace their folder as a whole: give a new or empty folder, or one of "
            "earlier frames"
        )


def _frame_name(prefix: str) -> re.Pattern:
    """The names ``write_frames`` gives (``{prefix}{k:04d}.png``: four digits, or more without
    a leading zero) and their temporaries (``atomic_write``'s ``.NAME.XXXXXXXX.tmp``)."""
    name = rf"{re.escape(prefix)}(?:[0-9]{{4}}|[1-9][0-9]{{4,}})\.png"
    return re.compile(rf"{name}|\.{name}\.[a-z0-9_]{{8}}\.tmp")


def _not_a_file(entry: os.DirEntry) -> str:
    if entry.is_symlink():
        return ": a link"
    return ": a folder" if entry.is_dir() else ": not a regular file"


def contact_sheet(frames: np.ndarray, n: int = 8) -> np.ndarray:
    """``n`` evenly spaced frames (first and last included) side by side.

    Args:
      frames: ``[T, H, W, C]``.
      n: frames on the sheet (at most ``T``).

    Returns:
      ``[H, min(n, T) * W, C]``: float32, or uint8 for uint8 frames.
    """
    frames = _check_frames(frames)
    if n < 1:
        raise ValueError(f"n: expected at least 1 frame on the sheet, got {n}")
    picks = np.round(np.linspace(0, len(frames) - 1, min(n, len(frames)))).astype(int)
    return np.concatenate(list(frames[picks]), axis=1)


__all__ = [
    "OUTPUT_FORMATS",
    "VIDEO_EXTRA",
    "check_frames_folder",
    "contact_sheet",
    "IMAGE_FORMATS",
    "encode_gif",
    "encode_image",
    "encode_png",
    "encode_webp",
    "frames_array",
    "image_format",
    "mp4_writer",
    "to_uint8_rgb",
    "write_animation",
    "write_frames",
    "write_gif",
    "write_image",
    "write_mp4",
    "write_png",
    "write_webp",
]
