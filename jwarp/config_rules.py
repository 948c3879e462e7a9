"""What the values of a run's configuration must be: each key's range, and the rules between
keys (``jwarp.config`` checks them on the final values, after every layer).

The checks read the nested dict of the ``Config`` tree (``{"data": {"name": ...}, ...}``) and
raise a one-line ``ConfigError`` naming the key, prefixed by the file a value came from
(``origins``). Integers are bounded too: they reach numpy and JAX as 32-bit integers (a seed
beyond ``2**32 - 1`` would overflow or wrap ``jax.random.PRNGKey``), so a huge value is an
error here, before anything runs, rather than a traceback or a silent wrap later.
"""

from __future__ import annotations

from typing import Any

from jwarp.choices import DATASETS, MODES, UNPAIRED_DATASETS
from jwarp.errors import ConfigError

DIR_DATASETS = ("mnist", "smiles", "fei", "folder", "npy")
ALIGNABLE = ("smiles", "fei", "folder")  # data sets of photos of faces (data.align)
PAIRED_BY_NATURE = ("faces", "fei")  # load as pairs whatever data.paired says
CONDITIONS = ("source", "pair")
GANS = ("wgan-gp", "lsgan")
CRITIC_FAKES = ("fresh", "shared")
SEED_MAX = 2**32 - 1  # jax.random.PRNGKey keeps 32 bits of a seed
COUNT_MAX = 10**9  # steps and intervals: step numbers stay int32 (optax, fold_in)
CHANNELS_MAX = 16384  # per layer; the authors' widest is 1024


def with_source(source: str | None, message: str) -> ConfigError:
    """A ``ConfigError`` of ``message``, prefixed by the file it came from, if any."""
    return ConfigError(f"{source}: {message}" if source else message)


def _one_of(allowed: tuple) -> tuple:
    return (lambda v: v in allowed, f"one of {allowed}")


def _int_in(low: int, high: int) -> tuple:
    return (lambda v: low <= v <= high, f"an integer in [{low}, {high}]")


def _positive() -> tuple:
    return (lambda v: v > 0, "a number > 0")


def _non_negative() -> tuple:
    return (lambda v: v >= 0, "a number >= 0")


def _channels(non_empty: bool) -> tuple:
    what = "a non-empty array" if non_empty else "an array"
    return (
        lambda v: (len(v) > 0 or not non_empty) and all(1 <= c <= CHANNELS_MAX for c in v),
        f"{what} of integers in [1, {CHANNELS_MAX}]",
    )


# Checked before the nested dataclasses are built, so that each message names one key (e.g.
# SolverConfig lumps rtol, atol and max_steps into one message). Every integer key has an upper
# bound (tests/config_test.py holds them to it).
RULES: dict[str, tuple] = {
    "data.name": _one_of(DATASETS),
    "data.image_size": _int_in(8, 8192),
    "data.channels": _one_of((1, 3, 4)),
    "data.n_train": _int_in(1, 10**6),
    "data.n_test": _int_in(1, 10**6),
    "data.source_class": (lambda v: 0 <= v <= 9, "a digit 0 to 9"),
    "data.target_class": (lambda v: 0 <= v <= 9, "a digit 0 to 9"),
    "data.crop": (
        lambda v: len(v) == 10 and all(0 <= x <= 1 for x in v),
        "10 fractions of the side in [0, 1]: (row, col) of the right eye, left eye, nose "
        "tip, right and left mouth corners",
    ),
    "data.augment.brightness": _non_negative(),
    "data.augment.contrast": _non_negative(),
    "data.augment.gamma": _non_negative(),
    "data.augment.blur": _non_negative(),
    "data.augment.noise": _non_negative(),
    "data.augment.shift": _non_negative(),
    "data.augment.rotate": _non_negative(),
    "data.augment.scale": _non_negative(),
    "data.augment.stroke": _non_negative(),
    "model.condition": _one_of(CONDITIONS),
    "model.unet.encoder": _channels(non_empty=True),
    "model.unet.decoder": _channels(non_empty=True),
    "model.unet.extra": _channels(non_empty=False),
    "model.unet.out_channels": (lambda v: v == 2, "2 (the velocity's (dy, dx))"),
    "model.unet.out_scale": _positive(),
    "model.unet.final_init_std": _non_negative(),
    "model.unet.out_sigma": _non_negative(),
    "model.unet.out_mask": (
        lambda v: v == () or (len(v) == 5 and 0 <= v[0] < v[2] <= 1 and 0 <= v[1] < v[3] <= 1
                              and v[4] >= 0),
        "[] (no mask) or [top, left, bottom, right, fade]: a box in fractions of the side, "
        "top < bottom, left < right, and the fade's width >= 0",
    ),
    "model.critic.channels": _channels(non_empty=True),
    # At least 1e-6: 1 / step_size steps, a million at most.
    "flow.step_size": (lambda v: 1e-6 <= v <= 1, "1e-6 <= step_size <= 1"),
    "flow.rtol": _positive(),
    "flow.atol": _positive(),
    "flow.max_steps": _int_in(1, 10**7),
    "execution.max_unrolled_steps": _int_in(0, 10**4),
    "loss.mode": _one_of(MODES),
    "loss.gan": _one_of(GANS),
    "loss.w_jd": _non_negative(),
    "loss.w_og": _non_negative(),
    "loss.w_rec": _non_negative(),
    "loss.w_area": _non_negative(),
    "loss.area_band": (lambda v: v > 1, "a number > 1"),
    "loss.w_bend": _non_negative(),
    "loss.gp_weight": _non_negative(),
    "loss.n_critic": _int_in(1, 1000),
    "loss.critic_fakes": _one_of(CRITIC_FAKES),
    "optim.lr": _positive(),
    "optim.b1": (lambda v: 0 <= v < 1, "0 <= b1 < 1"),
    "optim.b2": (lambda v: 0 <= v < 1, "0 <= b2 < 1"),
    "optim.weight_decay": _non_negative(),
    "optim.decay_rate": (lambda v: 0 < v <= 1, "0 < decay_rate <= 1"),
    "optim.decay_every": _int_in(1, 10**6),
    "optim.clip_norm": _non_negative(),
    "optim.critic_lr": _positive(),
    "optim.ema_decay": (lambda v: 0 <= v < 1, "0 <= ema_decay < 1"),
    "train.steps": _int_in(1, COUNT_MAX),
    "train.batch_size": _int_in(1, 65536),
    "train.seed": _int_in(0, SEED_MAX),
    "train.log_every": _int_in(1, COUNT_MAX),
    "train.sample_every": _int_in(1, COUNT_MAX),
    "train.checkpoint_every": _int_in(1, COUNT_MAX),
    "train.max_to_keep": _int_in(1, 10**6),
}


def get(tree: dict, key: str) -> Any:
    """The value at dotted ``key`` of the nested dict ``tree``."""
    for part in key.split("."):
        tree = tree[part]
    return tree


def check_values(tree: dict, origins: dict[str, str | None]) -> None:
    """Every key of ``RULES`` in its range (``origins``: dotted key -> its file, or None)."""
    for key, (ok, expected) in RULES.items():
        value = get(tree, key)
        if not ok(value):
            raise with_source(origins.get(key), f"{key}: expected {expected}, got {value!r}")


def check_combinations(tree: dict, origins: dict[str, str | None]) -> None:
    """The rules between keys: the data set's needs, pairing and the loss mode."""
    data, loss = tree["data"], tree["loss"]
    name, paired = data["name"], data["paired"]
    if data["source_class"] == data["target_class"]:
        raise with_source(
            origins.get("data.target_class"),
            f"data.target_class: expected a digit other than data.source_class "
            f"({data['source_class']}), got {data['target_class']}",
        )
    if name in DIR_DATASETS and not data["data_dir"]:
        what = {
            "npy": "the .npy/.npz file",
            "smiles": "a SMILEsmileD checkout (git clone https://github.com/hromi/SMILEsmileD)",
            "mnist": "the folder of the MNIST IDX files (t10k-* at least)",
            "fei": "FEI's frontal images (<n>a.jpg neutral, <n>b.jpg smiling)",
        }.get(name, "a folder")
        raise ConfigError(
            f"data.data_dir: data {name!r} needs {what} (--data-dir PATH or "
            f"--set data.data_dir=PATH), got ''"
        )
    if data["align"] and name not in ALIGNABLE:
        raise with_source(
            origins.get("data.align"),
            f"data.align: {name!r} images are not photos of faces; alignment is for "
            f"{', '.join(repr(n) for n in ALIGNABLE)}",
        )
    if data["fei_dir"] and (name != "smiles" or not data["align"]):
        raise with_source(
            origins.get("data.fei_dir"),
            f"data.fei_dir: FEI faces join the 'smiles' data with data.align = true (got "
            f"data {name!r}, align = {str(data['align']).lower()})",
        )
    if name in UNPAIRED_DATASETS and paired:
        raise with_source(
            origins.get("data.paired"),
            f"data.paired: {name!r} data is unpaired (source and target are different "
            f"images); expected false, got true",
        )
    # Faces and FEI always load as pairs; a GAN run trains on them unpaired (paired = false).
    if name in PAIRED_BY_NATURE and not paired and loss["mode"] == "l2":
        what = "FEI's pairs are" if name == "fei" else "faces are"
        raise with_source(
            origins.get("data.paired"),
            f"data.paired: {what} always paired in loss.mode 'l2'; got false",
        )
    if loss["mode"] == "l2" and not paired:
        raise with_source(
            origins.get("loss.mode"),
            f"loss.mode: 'l2' needs paired data, but data {name!r} has paired = false; "
            f"use mode 'gan'",
        )
    if tree["model"]["condition"] == "pair" and loss["mode"] != "l2":
        raise with_source(
            origins.get("model.condition"),
            f"model.condition: 'pair' needs loss.mode 'l2' (a GAN has no target frame to "
            f"condition on), got mode {loss['mode']!r}",
        )
