"""Quality measures of SPEC §8: PSNR, SSIM, folds, inverse consistency, digits reached.

The image measures are pure jax functions of ``[B, H, W, C]`` batches in ``[0, 1]`` that return
one value per image ``[B]``; averages over a test set are the caller's (``jwarp.evaluate``).
The digit measures are host-side: ``DigitClassifier`` is fitted on real digits only (never on
model output) and ``stroke_count`` counts connected pieces of ink.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jwarp.penalties import jacobian_det
from jwarp.sampler import warp


def psnr(
    a: Float[Array, "B H W C"], b: Float[Array, "B H W C"], data_range: float = 1.0
) -> Float[Array, " B"]:
    """Peak signal-to-noise ratio per image, ``10 log10(range² / MSE)`` in dB.

    Args:
      a, b: ``[B, H, W, C]`` images.
      data_range: the peak value (1 for images in ``[0, 1]``).

    Returns:
      ``[B]``; ``inf`` where the images are equal.
    """
    chex.assert_rank(a, 4)
    chex.assert_equal_shape([a, b])
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    mse = jnp.mean((a - b) ** 2, axis=(1, 2, 3))
    return 10.0 * jnp.log10(data_range**2 / mse)


def motion_mask(
    x0: Float[Array, "B H W C"], x1: Float[Array, "B H W C"], threshold: float = 1 / 255,
    grow: int = 2,
) -> Float[Array, "B H W"]:
    """Where a pair differs (any channel by more than ``threshold``), grown by ``grow`` pixels.

    Whole-image PSNR is dominated by the pixels that should not move; PSNR inside this mask
    (``masked_psnr``) measures the motion itself.

    Returns:
      ``[B, H, W]`` of 0/1.
    """
    chex.assert_equal_shape([x0, x1])
    moving = jnp.max(jnp.abs(x1 - x0), axis=-1) > threshold
    size = 2 * grow + 1
    grown = jax.lax.reduce_window(
        moving.astype(jnp.float32), 0.0, jax.lax.max, (1, size, size), (1, 1, 1), "SAME"
    )
    return grown


def masked_psnr(
    a: Float[Array, "B H W C"], b: Float[Array, "B H W C"], mask: Float[Array, "B H W"],
    data_range: float = 1.0,
) -> Float[Array, " B"]:
    """PSNR per image over the pixels where ``mask`` is 1 (all channels); NaN if none."""
    chex.assert_rank(a, 4)
    chex.assert_equal_shape([a, b])
    chex.assert_shape(mask, a.shape[:3])
    err = jnp.sum(mask[..., None] * (a - b) ** 2, axis=(1, 2, 3))
    mse = err / (jnp.sum(mask, axis=(1, 2)) * a.shape[-1])
    return 10.0 * jnp.log10(data_range**2 / mse)


def _gaussian_window(sigma: float, truncate: float = 3.5) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return (w / w.sum()).astype(np.float32)


def ssim(
    a: Float[Array, "B H W C"],
    b: Float[Array, "B H W C"],
    data_range: float = 1.0,
    sigma: float = 1.5,
) -> Float[Array, " B"]:
    """Structural similarity per image (Wang et al. 2004), averaged over channels.

    Gaussian-weighted local statistics (``sigma`` 1.5, an 11-pixel window), ``K1 = 0.01``,
    ``K2 = 0.03``, averaged over the pixels whose window lies inside the image: the same as
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1)``.

    Args:
      a, b: ``[B, H, W, C]`` images, ``H, W >=`` the window (11 pixels for ``sigma = 1.5``).
      data_range: the peak value.
      sigma: the Gaussian window's standard deviation in pixels.

    Returns:
      ``[B]`` in ``[-1, 1]``; 1 for equal images.
    """
    chex.assert_rank(a, 4)
    chex.assert_equal_shape([a, b])
    window = _gaussian_window(sigma)
    size = window.shape[0]
    _, h, w, c = a.shape
    if h < size or w < size:
        raise ValueError(f"ssim: images must be at least {size}x{size} pixels, got {h}x{w}")
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)

    def blur(x):  # separable 'valid' Gaussian filter of [B, H, W, C], channel by channel
        x = jnp.moveaxis(x, -1, 1).reshape(-1, 1, h, w)
        k = jnp.asarray(window)
        dn = ("NCHW", "OIHW", "NCHW")
        x = jax.lax.conv_general_dilated(x, k.reshape(1, 1, size, 1), (1, 1), "VALID",
                                         dimension_numbers=dn)
        x = jax.lax.conv_general_dilated(x, k.reshape(1, 1, 1, size), (1, 1), "VALID",
                                         dimension_numbers=dn)
        return x.reshape(-1, c, h - size + 1, w - size + 1)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return jnp.mean(num / den, axis=(1, 2, 3))


def negative_jacobian_fraction(disp: Float[Array, "T B H W 2"]) -> Float[Array, " B"]:
    """Fraction of pixels where ``phi_t = id + u_t`` folds (``J <= 0``), over all ``T`` times.

    Args:
      disp: ``[T, B, H, W, 2]`` displacements ``(dy, dx)`` in pixels, e.g. a saved trajectory.

    Returns:
      ``[B]`` in ``[0, 1]``; 0 for a diffeomorphic trajectory.
    """
    chex.assert_rank(disp, 5)
    t, b, h, w, _ = disp.shape
    jdet = jacobian_det(jnp.reshape(disp, (t * b, h, w, 2))).reshape(t, b, h - 1, w - 1)
    return jnp.mean(jdet <= 0, axis=(0, 2, 3))


def inverse_psnr(
    x0: Float[Array, "B H W C"],
    x1_hat: Float[Array, "B H W C"],
    disp_back: Float[Array, "B H W 2"],
) -> Float[Array, " B"]:
    """Inverse consistency: PSNR of ``warp(x1_hat, u_{-1})`` against ``x0``, in dB.

    Args:
      x0: ``[B, H, W, C]`` start frames.
      x1_hat: ``[B, H, W, C]`` forward end frames ``warp(x0, u_1)``.
      disp_back: ``[B, H, W, 2]`` the backward flow's ``u_{-1}``.
    """
    chex.assert_equal_shape([x0, x1_hat])
    return psnr(warp(x1_hat, disp_back), x0)


def stroke_count(images: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Connected pieces of ink (8-connectivity, pixels ``> threshold``) per image.

    A warped digit that tore apart has more pieces than it started with.

    Args:
      images: ``[N, H, W, 1]`` grey images in ``[0, 1]`` (ink bright).

    Returns:
      ``[N]`` int counts.
    """
    from scipy import ndimage  # a dependency of jax

    images = np.asarray(images)
    chex.assert_rank(images, 4)
    eight = np.ones((3, 3), bool)
    return np.array([ndimage.label(im[..., 0] > threshold, eight)[1] for im in images])


class DigitClassifier:
    """A 10-class digit classifier fitted on real bundled digits only (train split).

    An RBF support-vector machine on the ``size``×``size`` images that ``jwarp.data`` feeds the
    model; the test images of every class (so all test 3s and 4s) are left out of the fit.
    ``accuracy`` is its accuracy on those real test images.
    """

    def __init__(self, size: int = 32, seed: int = 0):
        from sklearn.svm import SVC

        from jwarp.data import digits_labelled

        x, y = digits_labelled("train", size, seed)
        self.size = size
        self._svc = SVC(gamma="scale", C=1.0).fit(x.reshape(len(x), -1), y)
        xt, yt = digits_labelled("test", size, seed)
        self.accuracy = float(np.mean(self.predict(xt) == yt))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """``[N, size, size, 1]`` images in ``[0, 1]`` -> ``[N]`` labels 0..9."""
        images = np.asarray(images, np.float32)
        chex.assert_shape(images, (None, self.size, self.size, 1))
        return self._svc.predict(np.clip(images, 0, 1).reshape(len(images), -1))


@functools.lru_cache(maxsize=4)
def digit_classifier(size: int = 32, seed: int = 0) -> DigitClassifier:
    """The fitted ``DigitClassifier`` for ``size`` and the data seed (cached: ~1 s to fit)."""
    return DigitClassifier(size, seed)
