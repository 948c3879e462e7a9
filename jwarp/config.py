"""The run configuration: one frozen, typed dataclass tree holding every default.

A run's ``Config`` is built in three layers, each overriding the one before:

1. the defaults below (and those of ``UNetConfig``, ``CriticConfig`` and ``SolverConfig``);
2. a preset: a TOML file of ``configs/`` (``jwarp.presets``) or at any path, that only
   overrides fields, in the tables ``[data]``, ``[model]``, ``[model.unet]``,
   ``[model.critic]``, ``[flow]``, ``[execution]``, ``[loss]``, ``[optim]``, ``[train]``;
3. dotted-key overrides, e.g. ``{"train.steps": 5, "model.unet.encoder": [8, 8]}`` (what the
   command-line flags and ``--set KEY=VALUE`` of ``jwarp.config_args`` become).

Values are type-checked against the field annotations as each layer is applied, and ranges and
cross-field rules (``jwarp.config_rules``) are checked once, on the final values (so a preset
may leave ``data_dir`` empty for the command line to fill in). Every problem is a
``ConfigError`` whose message is one line naming the key, prefixed by the file it came from
when it came from a file.

``save_config`` writes the fully resolved config as TOML that ``load_config`` reads back to an
equal ``Config``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from jwarp.config_rules import PAIRED_BY_NATURE, check_combinations, check_values, with_source
from jwarp.data.augment import AugmentConfig
from jwarp.errors import ConfigError
from jwarp.execution import ExecutionConfig
from jwarp.faces.align import DEFAULT_CROP, CanonicalCrop
from jwarp.files import atomic_write
from jwarp.flow import SolverConfig
from jwarp.models import CriticConfig, UNetConfig
from jwarp.presets import PRESETS_DIR, list_presets, resolve_preset  # noqa: F401 (public here too)

FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max; floats are float32


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which images to train on (docs/method.md §6).

    Attributes:
      name: ``"faces"``, ``"digits"``, ``"mnist"``, ``"smiles"``, ``"fei"``, ``"folder"`` or
        ``"npy"``.
      data_dir: needed by ``mnist`` (the folder of the IDX files), ``smiles`` (a SMILEsmileD
        checkout), ``fei`` (FEI's frontal images), ``folder`` (a folder) and ``npy`` (the
        ``.npy``/``.npz`` file).
      paired: whether training pairs each source with its target (L2); ``folder``: pair
        source and target files by name. Faces and FEI are paired in L2 mode; ``digits``,
        ``mnist`` and ``smiles`` are unpaired (must be false). A GAN run trains on unpaired
        batches whatever the data; on faces and FEI (pairs whatever the flag) its resolved
        config says false, while ``folder`` and ``npy`` keep the flag (how they load, and
        whether evaluation has pairs).
      image_size: height and width in pixels.
      channels: 1, 3 or 4.
      n_train: number of training faces (``faces`` only).
      n_test: number of test faces (``faces`` only).
      source_class: ``digits`` and ``mnist``: the digit to animate from.
      target_class: ``digits`` and ``mnist``: the digit to animate towards.
      align: photos of faces (``smiles``, ``fei``, ``folder``): find the face in every image
        and align it to ``crop`` (``jwarp.faces``; cached). A model trained so finds and
        aligns the faces of the photos it animates, and moves them in place. ``fei`` is
        always aligned.
      crop: the canonical crop of ``align``: ``(row, col)`` of the eyes, the nose tip and the
        mouth corners as fractions of the image's side (``jwarp.faces.align.CanonicalCrop``).
      fei_dir: ``smiles``: also FEI's frontal images (their train split), neutral faces with
        the sources and smiling ones with the targets (needs ``align``).
      augment: random changes of the training images (``jwarp.data.augment``).
    """

    name: str = "faces"
    data_dir: str = ""
    paired: bool = True
    image_size: int = 64
    channels: int = 4
    n_train: int = 2000
    n_test: int = 64
    source_class: int = 3
    target_class: int = 4
    align: bool = False
    crop: tuple[float, ...] = DEFAULT_CROP
    fei_dir: str = ""
    augment: AugmentConfig = AugmentConfig()

    @property
    def canonical_crop(self) -> CanonicalCrop | None:
        """The canonical crop faces are aligned to, or None when they are not."""
        return CanonicalCrop(self.crop) if self.align or self.name == "fei" else None


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The networks.

    Attributes:
      condition: ``"source"`` (the U-Net sees ``x0``) or ``"pair"`` (it sees ``[x0, x1]``; L2
        mode only).
      unet: the velocity U-Net.
      critic: the WGAN critic (GAN mode only).
    """

    condition: str = "source"
    unet: UNetConfig = UNetConfig()
    critic: CriticConfig = CriticConfig()


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The training objective (docs/method.md §5).

    Attributes:
      mode: ``"l2"`` (paired data) or ``"gan"`` (unpaired).
      gan: ``"wgan-gp"`` or ``"lsgan"``.
      w_jd: weight of the Jacobian-fold penalty (both directions).
      w_og: weight of the out-of-grid penalty (both directions).
      w_rec: weight of the backward reconstruction term.
      w_area: weight of ``area_excess`` of the forward end map (jwarp's addition to the
        paper's loss): area squeezed or stretched beyond ``area_band`` is penalised, so that
        the warp does not crumple or balloon what it moves.
      area_band: the area factor allowed without penalty (``J`` in ``[1/band, band]``).
      w_bend: weight of the bending energy of the forward end map's displacement
        (``jwarp.metrics.bending_energy``, px^-2; jwarp's addition): bends and waves in what
        the warp moves cost, straight lines that move stay straight.
      gp_weight: WGAN-GP gradient-penalty weight (lambda).
      n_critic: critic steps per generator step.
      critic_fakes: ``"fresh"``: each critic step warps its own batch of sources with the
        current generator (one forward solve per critic step); ``"shared"``: one generator
        forward per iteration gives the fakes of all ``n_critic`` critic steps (each against its
        own batch of real targets), and the generator's gradient is taken through that same
        forward after the critic steps, as in the authors' loop: an iteration costs one
        generator step plus ``n_critic`` critic-only updates.
    """

    mode: str = "l2"
    gan: str = "wgan-gp"
    w_jd: float = 1.0
    w_og: float = 1.0
    w_rec: float = 0.01
    w_area: float = 0.0
    area_band: float = 2.0
    w_bend: float = 0.0
    gp_weight: float = 10.0
    n_critic: int = 10
    critic_fakes: str = "fresh"


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Adam with torch-style L2 weight decay and step learning-rate decay.

    Attributes:
      lr: generator learning rate.
      b1: Adam beta1.
      b2: Adam beta2.
      weight_decay: L2 coefficient, added to the gradient (torch-style), not decoupled.
      decay_rate: the learning rate is multiplied by this every ``decay_every`` epochs.
      decay_every: epochs between decays. An epoch is ``training images // batch_size``
        iterations (generator steps), as in the authors' loop, however many batches a GAN
        iteration draws; the critic's rate decays with the generator's.
      clip_norm: global gradient-norm clipping; 0 = off.
      critic_lr: critic learning rate.
      ema_decay: decay of an exponential moving average of the generator's parameters, which
        then make the samples, evaluations and animations of the run (training itself, the
        critic included, uses the raw parameters); 0 = off. Bias-corrected as Adam's moments,
        so it does not lean on the initialisation: it averages over about the last
        ``1 / (1 - ema_decay)`` steps.
    """

    lr: float = 1e-4
    b1: float = 0.5
    b2: float = 0.999
    weight_decay: float = 1e-5
    decay_rate: float = 0.95
    decay_every: int = 1
    clip_norm: float = 0.0
    critic_lr: float = 1e-4
    ema_decay: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training loop.

    Attributes:
      steps: generator steps.
      batch_size: images per step (global, over all devices).
      seed: seed of the data order, initialisation and noise.
      log_every: steps between metric lines.
      sample_every: steps between sample GIFs.
      checkpoint_every: steps between checkpoints.
      max_to_keep: checkpoints kept.
    """

    steps: int = 2000
    batch_size: int = 16
    seed: int = 0
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    max_to_keep: int = 3


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run needs; each part goes to the code that uses it."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    flow: SolverConfig = SolverConfig()
    execution: ExecutionConfig = ExecutionConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()


# ---------------------------------------------------------------------------------------------
# Types: coercion of TOML / command-line values to the field annotations.

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation, in declaration order."""
    if cls not in _HINTS:
        resolved = typing.get_type_hints(cls)
        _HINTS[cls] = {f.name: resolved[f.name] for f in dataclasses.fields(cls)}
    return _HINTS[cls]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """``value`` as the annotated type, or a ``ConfigError`` naming ``key``."""
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        # No silent truncation of 1.5, and no True-as-1.
        if _is_int(value):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if _is_int(value) or isinstance(value, float):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
            if abs(value) > FLOAT32_MAX:  # computed in float32: it would be inf
                raise ConfigError(
                    f"{key}: expected a number float32 can hold (at most {FLOAT32_MAX:.4g} "
                    f"in size), got {value!r}"
                )
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if typing.get_origin(hint) is tuple and typing.get_args(hint) == (int, Ellipsis):
        if isinstance(value, list | tuple) and all(_is_int(v) for v in value):
            return tuple(value)
        raise ConfigError(f"{key}: expected an array of integers, got {value!r}")
    if typing.get_origin(hint) is tuple and typing.get_args(hint) == (float, Ellipsis):
        if isinstance(value, list | tuple):
            return tuple(_coerce(key, float, v) for v in value)
        raise ConfigError(f"{key}: expected an array of numbers, got {value!r}")
    raise TypeError(f"{key}: unsupported annotation {hint!r}")  # a bug in this module


# ---------------------------------------------------------------------------------------------
# Layers: a nested dict mirroring the dataclass tree, updated in place.


def _known(cls: type, table: str) -> str:
    names = ", ".join(sorted(_hints(cls)))
    return f"known keys in [{table}]: {names}" if table else f"known sections: {names}"


def _assign(
    tree: dict,
    cls: type,
    parts: Sequence[str],
    value: Any,
    table: str,
    source: str | None,
    origins: dict[str, str | None],
) -> None:
    """Sets ``tree[parts[0]][parts[1]]... = value`` after checking the key and the type.

    Args:
      tree: the nested dict of the dataclass ``cls``.
      parts: the key path below ``table``; a table value (a mapping) is merged key by key.
      table: the dotted name of ``cls``'s table (``""`` at the top).
      source: where the value came from (a file name), for messages; None for overrides.
      origins: dotted key -> source of every assigned leaf, updated.
    """
    name, rest = parts[0], parts[1:]
    hints = _hints(cls)
    full = ".".join([table, *parts] if table else parts)
    if name not in hints:
        raise ConfigError(f"unknown key {full!r} ({_known(cls, table)})")
    hint = hints[name]
    key = f"{table}.{name}" if table else name
    if dataclasses.is_dataclass(hint):
        if rest:
            _assign(tree[name], hint, rest, value, key, source, origins)
            return
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        for sub, sub_value in value.items():
            _assign(tree[name], hint, [sub], sub_value, key, source, origins)
        return
    if rest:
        raise ConfigError(f"unknown key {full!r} ({key} is a value, not a table)")
    tree[name] = _coerce(key, hint, value)
    origins[key] = source


# Execution settings that earlier versions kept in [flow] and [model.*] (and so in run folders'
# config.toml): read where they are now, in [execution].
_MOVED = {
    "flow.loop": "execution.loop",
    "flow.max_unrolled_steps": "execution.max_unrolled_steps",
    "flow.remat": "execution.remat",
    "flow.remat_policy": "execution.remat_policy",
    "model.unet.conv_impl": "execution.unet_conv",
    "model.critic.conv_impl": "execution.critic_conv",
}


def _flat_items(value: Any, key: str) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf below ``key`` (a table is a ``Mapping``)."""
    if not isinstance(value, Mapping):
        return [(key, value)]
    return [item for k, v in value.items() for item in _flat_items(v, f"{key}.{k}")]


def _assign_all(tree: dict, key: str, value: Any, source: str | None, origins: dict) -> None:
    """``_assign`` of ``value`` (a leaf or a table) at the dotted ``key`` of ``Config``, with
    the keys of ``_MOVED`` read at their new place."""
    for leaf, leaf_value in _flat_items(value, key):
        leaf = _MOVED.get(leaf, leaf)
        _assign(tree, Config, leaf.split("."), leaf_value, "", source, origins)


# ---------------------------------------------------------------------------------------------
# Validation of the final values (the ranges and rules: jwarp.config_rules).


def _build(cls: type, tree: dict, table: str, origins: dict[str, str | None]) -> Any:
    """The dataclass ``cls`` from its nested dict; its own ``ValueError``s become ConfigErrors."""
    kwargs = {}
    for name, hint in _hints(cls).items():
        key = f"{table}.{name}" if table else name
        is_table = dataclasses.is_dataclass(hint)
        kwargs[name] = _build(hint, tree[name], key, origins) if is_table else tree[name]
    try:
        return cls(**kwargs)
    except ValueError as e:
        message = " ".join(str(e).split())
        # UNetConfig/CriticConfig name their keys relative to [model] ("unet.norm: ...").
        if table.startswith("model.") and not message.startswith("model."):
            message = f"model.{message}"
        bad_key = message.split(":", 1)[0]
        raise with_source(origins.get(bad_key), message) from None


def _validate(tree: dict, origins: dict[str, str | None]) -> Config:
    check_values(tree, origins)
    config = _build(Config, tree, "", origins)
    try:
        config.execution.check(config.flow)
    except ValueError as e:
        raise with_source(origins.get("execution.loop"), str(e)) from None
    check_combinations(tree, origins)
    if config.loss.mode == "gan" and config.data.name in PAIRED_BY_NATURE:
        # GAN training draws sources and targets independently, whatever the data
        # (jwarp.training), and these load as pairs whatever the flag: the run records what it
        # uses. Folder and npy data keep theirs: it says how they load (by name, as pairs),
        # and evaluation measures against the pairs.
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, paired=False))
    return config


# ---------------------------------------------------------------------------------------------
# Files and presets.


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read_toml(path: Path) -> dict[str, Any]:
    where = _display(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if m:
            message = f"line {m.group(1)}, column {m.group(2)}: {message[: m.start()]}"
        raise ConfigError(f"{where}: {message}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{where}: cannot read ({e.strerror or e})") from None


# ---------------------------------------------------------------------------------------------
# Public construction.


def config_to_dict(config: Config) -> dict[str, Any]:
    """The nested dict of ``config`` (tuples stay tuples)."""
    return dataclasses.asdict(config)


def load_config(
    preset: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None
) -> Config:
    """Defaults, then a preset, then dotted-key overrides; validated.

    Args:
      preset: a preset name (``configs/``) or a path to a TOML file (e.g. a run folder's
        ``config.toml``); None for the built-in defaults.
      overrides: ``{"section.key": value}`` (or ``{"section": {...}}``), applied in order.

    Returns:
      The validated ``Config``.

    Raises:
      ConfigError: one line naming the offending key (and file).
    """
    tree = config_to_dict(Config())
    origins: dict[str, str | None] = {}
    if preset is not None:
        path = resolve_preset(preset)
        where = _display(path)
        document = _read_toml(path)
        try:
            for key, value in document.items():
                _assign_all(tree, key, value, where, origins)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    for key, value in (overrides or {}).items():
        _assign_all(tree, key, value, None, origins)
    return _validate(tree, origins)


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """A validated ``Config`` from a nested dict (missing keys keep their defaults)."""
    tree = config_to_dict(Config())
    origins: dict[str, str | None] = {}
    for key, value in d.items():
        _assign_all(tree, key, value, None, origins)
    return _validate(tree, origins)


def to_toml(config: Config) -> str:
    """Every field of ``config`` as TOML; ``load_config`` reads it back to an equal Config."""
    header = "# jwarp resolved config: every field, as used by the run.\n"
    return header + tomli_w.dumps(config_to_dict(config))


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Writes ``to_toml(config)`` to ``path`` atomically (a temporary file, then a rename)."""
    atomic_write(path, to_toml(config))
