"""Host-side image output: animated GIFs (Pillow), written atomically."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from jwarp.files import atomic_write


def to_uint8_rgb(frames: np.ndarray, background: float = 1.0) -> np.ndarray:
    """``[T, H, W, C]`` floats in ``[0, 1]`` -> ``[T, H, W, 3]`` uint8.

    Grey (``C = 1``) is repeated to RGB; RGBA (``C = 4``, straight alpha) is composited over a
    constant ``background`` grey level.
    """
    frames = np.clip(np.asarray(frames, np.float32), 0.0, 1.0)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise ValueError(f"frames: expected [T, H, W, C] with C in (1, 3, 4), got {frames.shape}")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    elif frames.shape[-1] == 4:
        alpha = frames[..., 3:]
        frames = frames[..., :3] * alpha + background * (1.0 - alpha)
    return np.round(frames * 255.0).astype(np.uint8)


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float = 24.0, scale: int = 1):
    """Writes a looping animated GIF; a killed writer never leaves a partial file at ``path``.

    Args:
      path: output file.
      frames: ``[T, H, W, C]`` floats in ``[0, 1]``.
      fps: frames per second.
      scale: integer nearest-neighbour upscaling, for small images.
    """
    rgb = to_uint8_rgb(frames)
    if scale > 1:
        rgb = rgb.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(f) for f in rgb]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000.0 / fps),
        loop=0,
    )
    atomic_write(path, buffer.getvalue())
