"""The errors jwarp raises for problems a user can fix, each with a one-line message.

They live in one module that imports nothing heavy, so the command-line layer
(``jwarp.cli``) can name them without importing JAX or any other part of jwarp. Every one of
them ends a command with one line on stderr: exit code 2 (bad input), except
``TrainingError``'s 1 (the run itself failed).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem; the message is one line that names the key."""


class DataError(ValueError):
    """Input data that cannot be used; the message is one line naming the file or folder and
    what was expected."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read; the message is one line naming it."""


class AnimationError(ValueError):
    """A problem with what ``animate.py`` was asked to do; the message is one line."""


class EvaluationError(ValueError):
    """A problem with what ``jwarp.evaluate`` was asked to do; the message is one line."""


class PretrainedError(ValueError):
    """A shipped model that is unknown, incomplete or damaged; the message is one line."""


class TrainingError(RuntimeError):
    """A run that cannot continue (non-finite loss, incompatible run folder).

    ``exit_code`` is what the command-line tools exit with (``jwarp.cli``): 1, the run failed.
    """

    exit_code = 1


class RunFolderError(TrainingError):
    """The run folder belongs to an incompatible configuration (bad input: exit code 2)."""

    exit_code = 2


def check_finite(error: type[Exception], what: str, *arrays, model: bool = True) -> None:
    """Raises ``error``, one line naming ``what``, when any of ``arrays`` (frames, maps) holds
    NaN or infinity: checked before anything is written. ``model``: a model made them (its
    parameters may be damaged), not a fit."""
    import numpy as np  # here: this module imports nothing heavy

    if not all(np.isfinite(a).all() for a in arrays):
        why = "; its parameters may hold NaN or infinity (damaged)" if model else ""
        raise error(f"{what}: the animation is not finite (NaN or infinity){why}; nothing written")


# Every error above: a command that catches one of these prints its one line and exits.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DataError,
    CheckpointError,
    AnimationError,
    EvaluationError,
    PretrainedError,
    TrainingError,
)
