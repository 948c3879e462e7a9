"""Strict numerics for the whole test suite, and shared fixtures."""

import jax

# Implicit rank promotion hides shape bugs ([H, W, 2] + [B, H, W, 2] silently broadcasting).
jax.config.update("jax_numpy_rank_promotion", "raise")
