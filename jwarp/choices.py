"""The names and defaults the command-line parsers offer, each defined once here.

This module imports nothing (no JAX, no other part of jwarp), so ``jwarp-train --help`` and
``jwarp-animate --help`` build their parsers without loading the numerical modules. The modules
that use these values import them from here: ``jwarp.config`` (data sets, loss modes),
``jwarp.velocity`` (fields), ``jwarp.animation`` (directions), ``jwarp.fit`` (similarities and
``FitConfig``'s defaults that ``animate.py`` shows).
"""

from __future__ import annotations

# jwarp.config: data.name, and which of them are unpaired; loss.mode.
DATASETS = ("faces", "digits", "mnist", "smiles", "fei", "folder", "npy")
UNPAIRED_DATASETS = ("digits", "mnist", "smiles")
MODES = ("l2", "gan")

# jwarp.velocity / jwarp.field: flow.field.
FIELDS = ("neural", "stationary", "straight")

# jwarp.animation: the order frames are shown in.
DIRECTIONS = ("forward", "backward", "boomerang")

# jwarp.media: animation file formats (--out's extension, or --format for a folder);
# jwarp.data.common: how a photo of another aspect becomes a square input (--resize).
OUTPUT_FORMATS = ("gif", "webp", "mp4")
RESIZE_MODES = ("crop", "pad", "stretch")

# jwarp.fit: pair fitting's similarity measures and FitConfig's defaults of the settings that
# animate.py exposes (--fit-steps, --fit-similarity, --fit-smoothness).
SIMILARITIES = ("l2", "lncc")
FIT_STEPS = 30
FIT_SIMILARITY = "l2"
FIT_SMOOTHNESS = 5.0

__all__ = [
    "DATASETS",
    "DIRECTIONS",
    "FIELDS",
    "FIT_SIMILARITY",
    "FIT_SMOOTHNESS",
    "FIT_STEPS",
    "MODES",
    "OUTPUT_FORMATS",
    "RESIZE_MODES",
    "SIMILARITIES",
    "UNPAIRED_DATASETS",
]
