"""Convolution kernels: one ``Conv`` module that runs as XLA's convolution or as matmuls.

Every convolution can run as XLA's native convolution (``"lax"``, the right choice on GPU/TPU),
as shifted views + one matmul (``"im2col"``), or as Winograd's algorithm (``"winograd"``): F(2x2,
3x3) for 3x3 stride-1 convolutions (16 small matmuls, 2.25x fewer multiplications), F(2x2, 2x2)
on the space-to-depth form of 4x4 stride-2 ones, the critic's (9 matmuls, 1.78x fewer); other
convolutions fall back to ``im2col``. ``"by-size"`` decides per convolution: ``im2col`` for
output maps of at most ``IM2COL_MAX_POSITIONS`` positions, where XLA:CPU's convolution is very
slow, ``lax`` for the rest. Which one runs is an execution choice (``jwarp.execution``): all of
them use the same parameters, so a checkpoint moves freely between them.
Winograd's transformed kernels can be computed once for given parameters (``winograd_kernels``
in ``jwarp.models``, a ``"winograd"`` variable collection) where they do not change between
calls, as in animation. With ``"winograd"``, a U-Net decoder's convolution of
``concat[upsample2x(y), skip]`` runs its upsampled part on ``y`` itself, before upsampling
(``_upsample_conv``).
"""

from __future__ import annotations

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.ad_checkpoint import checkpoint_name
from jaxtyping import Array, Float

# What a ``Conv`` runs as (see the module docstring); ``jwarp.execution`` chooses.
CONV_IMPLS = ("lax", "im2col", "winograd", "by-size")

# PyTorch's default conv initialisation, U(±1/sqrt(fan_in)), as in the authors' code.
_torch_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


# XLA:CPU's convolution is pathologically slow on maps this small, where one matmul is not; on
# larger maps building the patch matrix costs more than XLA's convolution (docs/performance.md).
IM2COL_MAX_POSITIONS = 4

# The variable collection of precomputed Winograd kernels (see ``winograd_kernels``).
WINOGRAD = "winograd"
# The name (``jax.ad_checkpoint.checkpoint_name``) of every ``Conv`` output, bias included: a
# ``jax.checkpoint`` policy can keep these and recompute the rest (``execution.remat_policy``).
CONV_OUT = "conv_out"
# A Winograd convolution of an upsampled input runs on the map before upsampling
# (``_upsample_conv``) when that map has at least this many positions: below, its (h+1)(w+1)
# windows per h*w positions waste more than upsampling first costs (docs/performance.md).
UPSAMPLE_CONV_MIN_POSITIONS = 16


def conv_impl_for(impl: str, positions: int) -> str:
    """What one convolution runs as: ``impl``, or for ``"by-size"``, ``"im2col"`` on output maps
    of at most ``IM2COL_MAX_POSITIONS`` positions and ``"lax"`` on larger ones.

    Args:
      impl: one of ``CONV_IMPLS``.
      positions: the output map's ``H * W``.
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv: expected one of {CONV_IMPLS}, got {impl!r}")
    if impl == "by-size":
        return "im2col" if positions <= IM2COL_MAX_POSITIONS else "lax"
    return impl


class Conv(nn.Module):
    """2-D convolution, NHWC, square kernel, ``"SAME"`` or ``"VALID"`` padding.

    Parameters are ``kernel [k, k, C_in, C_out]`` and ``bias [C_out]`` whatever ``impl`` is.
    """

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: str = "SAME"
    impl: str = "lax"
    kernel_init: nn.initializers.Initializer = _torch_init

    @nn.compact
    def __call__(
        self, x: Float[Array, "B H W Ci"], up: Float[Array, "B h w Cu"] | None = None
    ) -> Float[Array, "B Ho Wo Co"]:
        """Convolves ``x``, or with ``up``, ``concat[upsample2x(up)[:, :H, :W], x]`` (a U-Net's
        decoder input; the kernel's first ``Cu`` input channels are ``up``'s)."""
        k, s = self.kernel_size, self.stride
        cu = 0 if up is None else up.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (k, k, cu + x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        pads = lax.padtype_to_pads(x.shape[1:3], (k, k), (s, s), self.padding)
        ho, wo = ((n + lo + hi - k) // s + 1 for n, (lo, hi) in zip(x.shape[1:3], pads))
        impl = conv_impl_for(self.impl, ho * wo)
        pads = tuple(map(tuple, pads))
        winograd = impl == "winograd" and k == 3 and s == 1
        if up is not None and winograd and self.padding == "SAME":
            # The same convolution split by input channels: the upsampled part on the map
            # before upsampling (``_upsample_conv``), the rest by Winograd.
            split = (
                ("up_kernel", upsample_kernel, kernel[:, :, :cu]),
                ("rest_kernel", winograd_kernel, kernel[:, :, cu:]),
            )
            if self.is_mutable_collection(WINOGRAD) and not self.is_initializing():
                # ``winograd_kernels`` traces one input size; other sizes may take the other path.
                for name, transform, part in (("kernel", winograd_kernel, kernel), *split):
                    self._cached(name, transform, part)
            if (
                up.shape[1] * 2 == x.shape[1]
                and up.shape[2] * 2 == x.shape[2]
                and up.shape[1] * up.shape[2] >= UPSAMPLE_CONV_MIN_POSITIONS
            ):
                k4, u = (self._cached(*form) for form in split)
                y = _upsample_conv(up, k4) + _winograd_conv(x, u, pads)
                return checkpoint_name(y + bias.reshape(1, 1, 1, -1), CONV_OUT)
        if up is not None:
            x = jnp.concatenate([upsample2x(up)[:, : x.shape[1], : x.shape[2]], x], axis=-1)
        if impl == "lax":
            y = lax.conv_general_dilated(
                x, kernel, (s, s), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        elif winograd:
            y = _winograd_conv(x, self._cached("kernel", winograd_kernel, kernel), pads)
        elif impl == "winograd" and k == 4 and s == 2:
            y = _winograd_s2_conv(x, self._cached("kernel", winograd_s2_kernel, kernel), pads)
        else:
            y = _im2col_conv(x, kernel, s, pads)
        return checkpoint_name(y + bias.reshape(1, 1, 1, -1), CONV_OUT)

    def _cached(self, name: str, transform, kernel):
        """``transform(kernel)``, precomputed by ``winograd_kernels`` (inference) or computed
        here, and stored when that collection is mutable (how ``winograd_kernels`` gets it).
        Never at init: a cache in the initial variables would go stale in training."""
        if self.has_variable(WINOGRAD, name):
            return self.get_variable(WINOGRAD, name)
        value = transform(kernel)
        if self.is_mutable_collection(WINOGRAD) and not self.is_initializing():
            self.put_variable(WINOGRAD, name, value)
        return value


@functools.partial(jax.checkpoint, static_argnums=(2, 3))
def _im2col_conv(x, kernel, stride: int, pads):
    """Convolution as one matmul over the ``k*k`` shifted views of ``x``.

    Under ``jax.checkpoint``, so a gradient keeps ``x`` (not the ``k*k``-times larger patch
    matrix) and rebuilds the patches in the backward pass: a copy, cheap next to the matmuls.
    """
    k, _, cin, cout = kernel.shape
    s = stride
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    ho = (xp.shape[1] - k) // s + 1
    wo = (xp.shape[2] - k) // s + 1
    # Patch channels are ordered (ky, kx, c_in), matching kernel.reshape below.
    cols = jnp.concatenate(
        [
            xp[:, i : i + (ho - 1) * s + 1 : s, j : j + (wo - 1) * s + 1 : s, :]
            for i in range(k)
            for j in range(k)
        ],
        axis=-1,
    )
    return jnp.dot(cols, kernel.reshape(k * k * cin, cout))


# Winograd F(2x2, 3x3) (Lavin & Gray 2016): a 2x2 output tile is A^T [(G g G^T) * (B^T d B)] A
# for the 4x4 input tile d and the 3x3 kernel g, a correlation as in CNNs.
_WINO_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
_WINO_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
_WINO_AT = ((1, 1, 1, 0), (0, 1, -1, -1))


def _combine(coeffs, xs):
    """``sum(c * x)`` over the non-zero ``c`` (all ``+-1``): adds and subtracts only."""
    out = None
    for c, x in zip(coeffs, xs):
        if c:
            term = x if c > 0 else -x
            out = term if out is None else out + term
    return out


def winograd_kernel(kernel: Float[Array, "3 3 Ci Co"]) -> Float[Array, "16 Ci Co"]:
    """Winograd F(2x2, 3x3) kernel transform ``U = G g G^T`` for every ``(Ci, Co)``.

    One ``[16, 9] @ [9, Ci*Co]`` matmul, several times faster on XLA:CPU than a three-operand
    einsum; the transform runs in every solver step of a training loop.
    """
    chex.assert_shape(kernel, (3, 3, None, None))
    g = jnp.asarray(_WINO_G, kernel.dtype)
    cin, cout = kernel.shape[2:]
    return (jnp.kron(g, g) @ kernel.reshape(9, cin * cout)).reshape(16, cin, cout)


# Nearest 2x upsampling followed by a 3x3 "SAME" convolution is, for each output parity
# (a, b), a 2x2 convolution of the map before upsampling: output row 2i + a reads upsampled rows
# 2i + a - 1 .. 2i + a + 1, which are source rows i + a - 1 and i + a, so the kernel's three
# rows fold onto two: _UP_FOLD[a][p, i] = 1 where kernel row i lands on source row p.
_UP_FOLD = (((1, 0, 0), (0, 1, 1)), ((1, 1, 0), (0, 0, 1)))


def upsample_kernel(kernel: Float[Array, "3 3 Ci Co"]) -> Float[Array, "4Ci 4Co"]:
    """The folded kernels of ``_upsample_conv``: rows ``(p, q, Ci)`` (a 2x2 window), columns
    ``(a, b, Co)`` (the output parity), one ``[16, 9] @ [9, Ci*Co]`` matmul."""
    chex.assert_shape(kernel, (3, 3, None, None))
    cin, cout = kernel.shape[2:]
    fold = np.einsum("api,bqj->pqabij", np.array(_UP_FOLD), np.array(_UP_FOLD))
    k4 = jnp.asarray(fold.reshape(16, 9), kernel.dtype) @ kernel.reshape(9, cin * cout)
    k4 = k4.reshape(2, 2, 2, 2, cin, cout).transpose(0, 1, 4, 2, 3, 5)
    return k4.reshape(4 * cin, 4 * cout)


@jax.checkpoint
def _upsample_conv(x, k4):
    """``conv3x3_same(upsample2x(x))`` on the map before upsampling: ``[B, h, w, Ci] ->
    [B, 2h, 2w, Co]`` given ``k4 = upsample_kernel(kernel)``.

    Every 2x2 window of the zero-padded ``x`` (``(h+1)(w+1)`` of them) times the four parities'
    folded kernels is one ``[B*(h+1)*(w+1), 4 Ci] @ [4 Ci, 4 Co]`` matmul; output
    ``(2i + a, 2j + b)`` is window ``(i + a, j + b)``'s parity ``(a, b)``. 4 products per output
    and input channel instead of 9 (as Winograd F(2x2, 3x3)), on a map 4x smaller than the
    upsampled one and without tile transforms. Under ``jax.checkpoint``: a gradient keeps ``x``,
    not its 4x windows.
    """
    b, h, w, cin = x.shape
    cout = k4.shape[-1] // 4
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = jnp.concatenate(
        [xp[:, p : p + h + 1, q : q + w + 1] for p in (0, 1) for q in (0, 1)], axis=-1
    )
    z = (cols.reshape(-1, 4 * cin) @ k4).reshape(b, h + 1, w + 1, 2, 2, cout)
    rows = [jnp.stack([z[:, a : a + h, c : c + w, a, c] for c in (0, 1)], axis=3) for a in (0, 1)]
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, cout)


@functools.partial(jax.checkpoint, static_argnums=(2,))
def _winograd_conv(x, u, pads):
    """3x3 stride-1 convolution by Winograd's F(2x2, 3x3): ``[B, H, W, Ci] -> [B, Ho, Wo, Co]``,
    given the transformed kernel ``u = winograd_kernel(kernel)`` ``[16, Ci, Co]``.

    The input is cut into overlapping 4x4 tiles (stride 2) and transformed with adds only; the
    channel mixing is 16 matmuls ``[B*tiles, Ci] @ [Ci, Co]`` (one per tile position: 16
    products per 2x2 outputs instead of 36); adds turn them back into 2x2 output tiles. Every
    gradient is again adds and matmuls, so it avoids both XLA:CPU's slow convolution weight
    gradient inside loops and im2col's 9x patch matrix. Exact up to fp32 rounding (~1e-6
    relative). Under ``jax.checkpoint``: a gradient keeps ``x``, not the 4x transformed tiles.

    Tiles are read as contiguous slices of ``lax.split`` parts, never as strided or repeated
    slices of one array: the transpose of each such slice pads its cotangent to the full array,
    and XLA:CPU summed 16-24 of those full-size pads per gradient (17-44 % of it on 32x32 maps).
    """
    b, h, w, cin = x.shape
    cout = u.shape[-1]
    (top, bottom), (left, right) = pads
    ho, wo = h + top + bottom - 2, w + left + right - 2
    th, tw = -(-ho // 2), -(-wo // 2)
    # Pad to whole 2x2 blocks, one block more than there are tiles: tile (r, c) is the blocks
    # (r..r+1, c..c+1). Outputs beyond (ho, wo) are cropped below.
    xp = jnp.pad(x, ((0, 0), (top, 2 * th + 2 - h - top), (left, 2 * tw + 2 - w - left), (0, 0)))
    xb = xp.reshape(b, th + 1, 2, tw + 1, 2, cin)
    # Tile row i of every tile: block row offset i // 2, row i % 2 within the block.
    half = [p[:, :, 0] for p in lax.split(xb, (1, 1), axis=2)]
    d_rows = [half[i % 2][:, i // 2 : i // 2 + th] for i in range(4)]  # [B, th, tw+1, 2, Ci]
    v = []
    for bt in _WINO_BT:
        r = _combine(bt, d_rows)
        half = [p[:, :, :, 0] for p in lax.split(r, (1, 1), axis=3)]
        d_cols = [half[j % 2][:, :, j // 2 : j // 2 + tw] for j in range(4)]  # [B, th, tw, Ci]
        v.extend(_combine(bt2, d_cols) for bt2 in _WINO_BT)
    v = jnp.stack(v)  # [16, B, th, tw, Ci], index 4 * row transform + column transform
    m = jnp.einsum("kpc,kcd->kpd", v.reshape(16, b * th * tw, cin), u)
    m = [p.reshape(b, th, tw, cout) for p in lax.split(m, (1,) * 16, axis=0)]
    rows = [[_combine(at, m[j::4]) for j in range(4)] for at in _WINO_AT]
    y = [[_combine(at, r) for at in _WINO_AT] for r in rows]  # y[i][j]: output (2r+i, 2c+j)
    y = jnp.stack([jnp.stack(y[0], axis=3), jnp.stack(y[1], axis=3)], axis=2)
    return y.reshape(b, 2 * th, 2 * tw, cout)[:, :ho, :wo]


# Winograd F(2x2, 2x2) (points 0, 1 and infinity): a 2x2 output tile of a 2x2 correlation is
# A^T [(G g G^T) * (B^T d B)] A for its 3x3 input tile d; every coefficient is 0 or +-1.
_WINO2_BT = ((1, -1, 0), (0, 1, 0), (0, -1, 1))
_WINO2_G = ((1, 0), (1, 1), (0, 1))
_WINO2_AT = ((1, 1, 0), (0, 1, 1))


def winograd_s2_kernel(kernel: Float[Array, "4 4 Ci Co"]) -> Float[Array, "9 4Ci Co"]:
    """The kernel transform of ``_winograd_s2_conv``: ``U = G g G^T`` of the space-to-depth
    kernel ``g[by, bx] = kernel[2 by + ry, 2 bx + rx]`` (rows ``(ry, rx, Ci)``), adds only."""
    chex.assert_shape(kernel, (4, 4, None, None))
    cin, cout = kernel.shape[2:]
    k = kernel.reshape(2, 2, 2, 2, cin, cout)  # [by, ry, bx, rx, Ci, Co]
    taps = [[k[by, :, bx].reshape(4 * cin, cout) for bx in (0, 1)] for by in (0, 1)]
    rows = [[_combine(g, (taps[0][bx], taps[1][bx])) for bx in (0, 1)] for g in _WINO2_G]
    return jnp.stack([_combine(g, r) for r in rows for g in _WINO2_G])


@functools.partial(jax.checkpoint, static_argnums=(2,))
def _winograd_s2_conv(x, u, pads):
    """4x4 stride-2 convolution: ``[B, H, W, Ci] -> [B, Ho, Wo, Co]`` given
    ``u = winograd_s2_kernel(kernel)`` ``[9, 4 Ci, Co]``.

    In space-to-depth form (2x2 pixel blocks as ``4 Ci`` channels) it is a 2x2 stride-1
    convolution of the padded input's blocks, here by Winograd's F(2x2, 2x2): 3x3-block tiles
    (stride 2 blocks) transformed with adds, 9 matmuls ``[B*tiles, 4 Ci] @ [4 Ci, Co]`` (9
    products per 2x2 outputs instead of 16), adds back. Differentiated twice (WGAN-GP's critic
    updates) it runs in 0.7x the time of ``im2col`` (docs/performance.md). As in
    ``_winograd_conv``, tiles are contiguous slices of ``lax.split`` parts, never strided ones.
    """
    b, h, w, cin = x.shape
    cout = u.shape[-1]
    (top, bottom), (left, right) = pads
    ho, wo = (h + top + bottom - 4) // 2 + 1, (w + left + right - 4) // 2 + 1
    th, tw = -(-ho // 2), -(-wo // 2)
    # Tile (r, c) reads blocks (2r..2r+2, 2c..2c+2), i.e. pixels (4r..4r+5, 4c..4c+5): pad to
    # 2 (th + 1) blocks; outputs beyond (ho, wo) are cropped below.
    xp = jnp.pad(x, ((0, 0), (top, 4 * th + 4 - h - top), (left, 4 * tw + 4 - w - left), (0, 0)))
    # Pixel row 4q + 2p + ry: block row 2q + p, row ry within the block; columns likewise.
    xb = xp.reshape(b, th + 1, 2, 2, tw + 1, 2, 2, cin)
    half = [t[:, :, 0] for t in lax.split(xb, (1, 1), axis=2)]  # [B, th+1, ry, tw+1, 2, rx, Ci]
    d_rows = [half[0][:, :th], half[1][:, :th], half[0][:, 1:]]  # tile block rows 0, 1, 2
    v = []
    for bt in _WINO2_BT:
        r = _combine(bt, d_rows)
        half = [t[:, :, :, :, 0] for t in lax.split(r, (1, 1), axis=4)]
        d_cols = [half[0][:, :, :, :tw], half[1][:, :, :, :tw], half[0][:, :, :, 1:]]
        # [B, th, tw, ry, rx, Ci]: the space-to-depth channels next to each other.
        v.extend(_combine(bt2, d_cols).transpose(0, 1, 3, 2, 4, 5) for bt2 in _WINO2_BT)
    v = jnp.stack(v).reshape(9, b * th * tw, 4 * cin)
    m = jnp.einsum("kpc,kcd->kpd", v, u)
    m = [p[0].reshape(b, th, tw, cout) for p in lax.split(m, (1,) * 9, axis=0)]
    rows = [[_combine(at, m[j::3]) for j in range(3)] for at in _WINO2_AT]
    y = [[_combine(at, r) for at in _WINO2_AT] for r in rows]  # y[i][j]: output (2r+i, 2c+j)
    y = jnp.stack([jnp.stack(y[0], axis=3), jnp.stack(y[1], axis=3)], axis=2)
    return y.reshape(b, 2 * th, 2 * tw, cout)[:, :ho, :wo]


def upsample2x(x: Float[Array, "B H W C"]) -> Float[Array, "B 2H 2W C"]:
    """Nearest-neighbour 2x upsampling."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
