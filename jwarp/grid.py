"""The deformation grid drawn over animation frames (``animate.py --grid``, evaluation sheets):
straight lines on the undeformed frame, carried by the same pull-back as the frames."""

from __future__ import annotations

import numpy as np

from jwarp.media import frames_array


def grid_lines(height: int, width: int, spacing: int) -> np.ndarray:
    """``[H, W]`` float32 image: 1 on every ``spacing``-th row and column, else 0.

    The lines sit half a spacing in from the top-left edge, away from the clamped border.
    """
    if spacing < 2:
        raise ValueError(f"grid spacing: expected at least 2 pixels, got {spacing}")
    rows = (np.arange(height) % spacing) == spacing // 2
    cols = (np.arange(width) % spacing) == spacing // 2
    return (rows[:, None] | cols[None, :]).astype(np.float32)


def draw_grid(
    frames: np.ndarray,
    disp: np.ndarray,
    spacing: int = 8,
    color: tuple[float, ...] | None = None,
    opacity: float = 0.9,
) -> np.ndarray:
    """Draws the deformation grid over the frames.

    The grid is an image of straight lines on the undeformed frame, warped by the same
    pull-back as the frames (``lines_t(s) = lines(g(s) + u_t(s))``, bilinear): a line pixel
    appears wherever the flow carries a point of an undeformed grid line, so the lines move
    with the content.

    Args:
      frames: ``[T, H, W, C]`` floats in ``[0, 1]``.
      disp: ``[T, H, W, 2]`` displacements ``(dy, dx)`` in pixels, ``frames[k] = warp(x, disp[k])``.
      spacing: pixels between grid lines on the undeformed frame.
      color: line colour with ``C`` (or 3 for RGBA) entries; default cyan, mid-grey for grey.
      opacity: line opacity.

    Returns:
      ``[T, H, W, C]`` float32 frames with the lines blended in (and made opaque for RGBA).
    """
    import jax.numpy as jnp

    from jwarp.sampler import warp

    frames = frames_array(frames)
    if frames.dtype == np.uint8:
        frames = frames.astype(np.float32) / 255.0
    disp = np.asarray(disp, np.float32)
    t, h, w, c = frames.shape
    if disp.shape != (t, h, w, 2):
        raise ValueError(f"disp: expected shape {(t, h, w, 2)} to match frames, got {disp.shape}")
    lines = np.broadcast_to(grid_lines(h, w, spacing)[None, :, :, None], (t, h, w, 1))
    weight = opacity * np.asarray(warp(jnp.asarray(lines), jnp.asarray(disp)))
    if color is None:
        color = (0.5,) if c == 1 else (0.0, 0.8, 1.0)
    colour = np.asarray(color, np.float32)
    out = frames.copy()
    n = min(c, 3)
    if colour.shape != (n,):
        raise ValueError(f"color: expected {n} values for {c}-channel frames, got {color}")
    out[..., :n] = frames[..., :n] * (1.0 - weight) + colour * weight
    if c == 4:
        out[..., 3:] = np.maximum(frames[..., 3:], weight)
    return out


__all__ = ["draw_grid", "grid_lines"]
