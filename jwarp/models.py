"""Networks: the VoxelMorph-style U-Net that predicts velocities, and the WGAN critic.

Both use only per-sample normalisation (or none), so one image's output never depends on the
other images of its batch. How their convolutions run (``conv``: see ``jwarp.conv``) is an
execution choice, not part of the network: the parameters are the same for every choice.
"""

from __future__ import annotations

import dataclasses

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from jwarp.conv import WINOGRAD, Conv, upsample2x

NORMS = ("none", "group", "layer")


def _norm(kind: str, features: int) -> nn.Module | None:
    if kind == "none":
        return None
    if kind == "group":
        return nn.GroupNorm(num_groups=min(8, features))
    if kind == "layer":
        return nn.LayerNorm()
    raise ValueError(f"norm: expected one of {NORMS}, got {kind!r}")


class ConvBlock(nn.Module):
    """Conv -> optional per-sample norm -> LeakyReLU(0.2)."""

    features: int
    kernel_size: int = 3
    stride: int = 1
    norm: str = "none"
    impl: str = "lax"

    @nn.compact
    def __call__(self, x, up=None):
        """The block on ``x``, or on ``concat[upsample2x(up), x]`` (see ``Conv``)."""
        x = Conv(self.features, self.kernel_size, self.stride, impl=self.impl)(x, up)
        norm = _norm(self.norm, self.features)
        if norm is not None:
            x = norm(x)
        return nn.leaky_relu(x, 0.2)


def coordinate_channels(batch: int, height: int, width: int) -> Float[Array, "B H W 2"]:
    """Pixel-centre coordinates ``(row, col)`` scaled to ``[-1, 1]``."""
    rows = jnp.linspace(-1.0, 1.0, height, dtype=jnp.float32)
    cols = jnp.linspace(-1.0, 1.0, width, dtype=jnp.float32)
    grid = jnp.stack(jnp.meshgrid(rows, cols, indexing="ij"), axis=-1)
    return jnp.broadcast_to(grid, (batch, height, width, 2))


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Sizes and options of the velocity U-Net.

    Attributes:
      encoder: channels of the stride-2 3x3 conv levels.
      decoder: channels of the decoder convs, one per encoder level; the first runs at the
        bottleneck, each later one after a nearest 2x upsampling and a skip concatenation.
      extra: channels of the full-resolution convs after the input is concatenated back.
      out_channels: 2 for a velocity ``(dy, dx)``.
      out_scale: the final 1x1 conv output is multiplied by this (pixels per unit time).
      final_init_std: std of the final 1x1 conv's normal initialisation (near zero, so training
        starts from the identity warp).
      add_coords: concatenate normalised ``(row, col)`` channels to the input.
      norm: ``"none"``, ``"group"`` or ``"layer"``; per-sample only, never batch statistics.
      out_sigma: standard deviation in pixels of a fixed Gaussian filter applied to the output
        (0: none). A smoothness prior on the velocity, as registration methods smooth theirs:
        a smooth field cannot tear, swirl or crumple at scales below ``out_sigma``.
      out_mask: ``(top, left, bottom, right, fade)`` in fractions of the image's side, or
        ``()`` for none: the output is multiplied by a fixed window that is 1 inside the box
        shrunk by ``fade`` and falls smoothly to 0 at the box's edges (``box_window``). On
        aligned faces it keeps the motion where an expression moves the face (the mouth,
        the cheeks, the lower eyelids) and away from its outline, the hair and the
        background, whatever the network does there.
    """

    encoder: tuple[int, ...] = (16, 32, 32, 32)
    decoder: tuple[int, ...] = (32, 32, 32, 32)
    extra: tuple[int, ...] = (16, 16)
    out_channels: int = 2
    out_scale: float = 1.0
    final_init_std: float = 1e-5
    add_coords: bool = True
    norm: str = "none"
    out_sigma: float = 0.0
    out_mask: tuple[float, ...] = ()

    def __post_init__(self):
        if self.out_sigma < 0:
            raise ValueError(f"unet.out_sigma: expected >= 0 pixels, got {self.out_sigma}")
        if len(self.encoder) != len(self.decoder) or not self.encoder:
            raise ValueError(
                f"unet.decoder: expected one entry per encoder level ({len(self.encoder)}), "
                f"got {len(self.decoder)}"
            )
        if self.norm not in NORMS:
            raise ValueError(f"unet.norm: expected one of {NORMS}, got {self.norm!r}")

    @property
    def widest(self) -> int:
        """The largest channel count of any level."""
        return max(self.encoder + self.decoder + self.extra)

    @classmethod
    def paper(cls, **overrides) -> UNetConfig:
        """The authors' sizes (docs/method.md §5): about 14.1 M parameters at 32x32x1 with
        coordinates."""
        sizes = dict(encoder=(64, 128, 256, 512), decoder=(1024, 512, 256, 128), extra=(64, 32))
        return cls(**{**sizes, **overrides})

    @classmethod
    def tiny(cls, **overrides) -> UNetConfig:
        """A few thousand parameters, for tests."""
        sizes = dict(encoder=(8, 8), decoder=(8, 8), extra=(8,))
        return cls(**{**sizes, **overrides})


class UNet(nn.Module):
    """VoxelMorph-style U-Net: ``[B, H, W, C_in] -> [B, H, W, out_channels]``.

    Any ``H, W``: odd sizes are handled by cropping each upsampled map to its skip's size.
    ``conv`` is how every convolution runs (one of ``jwarp.conv.CONV_IMPLS``).
    """

    config: UNetConfig
    conv: str = "lax"

    @nn.compact
    def __call__(self, x: Float[Array, "B H W Ci"]) -> Float[Array, "B H W 2"]:
        cfg = self.config
        chex.assert_rank(x, 4)
        b, h, w, _ = x.shape
        if cfg.add_coords:
            x = jnp.concatenate([x, coordinate_channels(b, h, w).astype(x.dtype)], axis=-1)
        impl = self.conv
        block = lambda c, stride=1: ConvBlock(c, 3, stride, cfg.norm, impl)

        skips, y = [], x
        for c in cfg.encoder:
            y = block(c, stride=2)(y)
            skips.append(y)
        y = block(cfg.decoder[0])(skips.pop())
        # Each later level convolves concat[upsample2x(y), skip] (cropped to the skip's size).
        for c in cfg.decoder[1:]:
            y = block(c)(skips.pop(), up=y)
        for i, c in enumerate(cfg.extra):
            y = block(c)(x, up=y) if i == 0 else block(c)(y)
        if not cfg.extra:
            y = jnp.concatenate([upsample2x(y)[:, :h, :w], x], axis=-1)
        out = Conv(
            cfg.out_channels,
            kernel_size=1,
            impl=impl,
            kernel_init=nn.initializers.normal(cfg.final_init_std),
        )(y)
        if cfg.out_sigma > 0:
            out = gaussian_smooth(out, cfg.out_sigma)
        if cfg.out_mask:
            out = out * jnp.asarray(box_window(h, w, cfg.out_mask))[None, :, :, None]
        return out * cfg.out_scale


def box_window(height: int, width: int, box: tuple[float, ...]) -> np.ndarray:
    """``[H, W]`` float32: 1 inside ``box = (top, left, bottom, right, fade)`` (fractions of
    the side) shrunk by ``fade``, exactly 0 outside the box, a smooth (C1) ramp between, per
    axis. Positions are pixel centres, ``(i + 0.5) / H``."""
    top, left, bottom, right, fade = box

    def ramp(n, lo, hi):
        x = (np.arange(n) + 0.5) / n
        if fade == 0:
            return ((x >= lo) & (x <= hi)).astype(np.float64)
        r = np.clip(np.minimum(x - lo, hi - x) / fade, 0.0, 1.0)
        return r * r * (3 - 2 * r)

    return (ramp(height, top, bottom)[:, None] * ramp(width, left, right)[None, :]).astype(
        np.float32)


def gaussian_smooth(x: Float[Array, "B H W C"], sigma: float) -> Float[Array, "B H W C"]:
    """Separable Gaussian filter of std ``sigma`` pixels (radius ``round(3 sigma)``, as scipy's
    ``gaussian_filter(truncate=3)``), each channel on its own, the border extended by its edge
    pixels: constants are kept exactly."""
    chex.assert_rank(x, 4)
    radius = max(1, int(3 * sigma + 0.5))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    for axis in (1, 2):
        n = x.shape[axis]
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        xp = jnp.pad(x, pad, mode="edge")
        x = sum(float(w) * lax.slice_in_dim(xp, k, k + n, axis=axis) for k, w in enumerate(taps))
    return x


@dataclasses.dataclass(frozen=True)
class CriticConfig:
    """WGAN critic: 4x4 stride-2 convs with LeakyReLU(0.2), then a 4x4 conv to one score map.

    Attributes:
      channels: channels of the stride-2 levels (the authors': 64, 128, 256).
      norm: ``"none"`` or ``"layer"``/``"group"`` (per-sample); never BatchNorm in WGAN-GP.
    """

    channels: tuple[int, ...] = (32, 64, 128)
    norm: str = "none"

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"critic.norm: expected one of {NORMS}, got {self.norm!r}")

    @classmethod
    def paper(cls, **overrides) -> CriticConfig:
        return cls(**{"channels": (64, 128, 256), **overrides})


class Critic(nn.Module):
    """``[B, H, W, C] -> [B]`` scores; the final map is averaged over positions.

    ``conv`` is how every convolution runs (one of ``jwarp.conv.CONV_IMPLS``).
    """

    config: CriticConfig
    conv: str = "lax"

    @nn.compact
    def __call__(self, x: Float[Array, "B H W C"]) -> Float[Array, " B"]:
        cfg = self.config
        chex.assert_rank(x, 4)
        impl = self.conv
        for c in cfg.channels:
            x = ConvBlock(c, 4, 2, cfg.norm, impl)(x)
        # The authors' 4x4 "valid" head (32 px -> one score); smaller maps keep their size, so
        # the parameters are the same at every image size.
        padding = "VALID" if min(x.shape[1:3]) >= 4 else "SAME"
        x = Conv(1, 4, padding=padding, impl=impl)(x)
        return jnp.mean(x, axis=(1, 2, 3))


def winograd_kernels(model: nn.Module, variables, x: Float[Array, "B H W C"]) -> dict:
    """``{"winograd": ...}``: the transformed kernels of ``model``'s Winograd convolutions.

    Applying ``model`` to ``{**variables, **winograd_kernels(model, variables, x)}`` skips the
    per-call kernel transform (``winograd_kernel``), which for a forward pass at batch 1 costs
    as much as the convolution itself. Valid for these ``variables`` only: recompute it when
    the parameters change. Under ``jit`` only the transforms run; XLA removes the rest.

    Args:
      model: a module whose convolutions run as ``"winograd"`` (others are ignored).
      variables: its variables, ``{"params": ...}``.
      x: an input it accepts (only its shape matters).

    Returns:
      ``{"winograd": {...}}``, or ``{}`` when ``model`` has no Winograd convolution.
    """
    fresh = {name: col for name, col in variables.items() if name != WINOGRAD}
    _, state = model.apply(fresh, x, mutable=[WINOGRAD])
    return dict(state)


def param_count(params) -> int:
    """Number of scalars in a parameter pytree."""
    return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))
