"""jwarp: Warping Neural ODEs (Image2Gif) in JAX/Flax.

The public names below are loaded on first use (PEP 562), so ``import jwarp.cli`` or
``jwarp-train --help`` does not import JAX; ``jwarp.Animator`` imports what it needs then.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# Public name -> the module that defines it. The functions ``jwarp.field.flow`` and
# ``jwarp.render.render`` are not among them: ``jwarp.flow`` and ``jwarp.render`` are modules.
_EXPORTS = {
    "Animator": "jwarp.animation",
    "animate_pair": "jwarp.animation",
    "RenderOptions": "jwarp.render_options",
    "FitConfig": "jwarp.fit",
    "fit_pair": "jwarp.fit",
    "Config": "jwarp.config",
    "load_config": "jwarp.config",
    "ConfigError": "jwarp.errors",
    "Critic": "jwarp.models",
    "CriticConfig": "jwarp.models",
    "UNet": "jwarp.models",
    "UNetConfig": "jwarp.models",
    "ExecutionConfig": "jwarp.execution",
    "Plan": "jwarp.execution",
    "plan": "jwarp.execution",
    "Field": "jwarp.field",
    "get_field": "jwarp.field",
    "FlowResult": "jwarp.flow",
    "Loop": "jwarp.flow",
    "SolverConfig": "jwarp.flow",
    "integrate": "jwarp.flow",
    "integrate_straight": "jwarp.flow",
    "integrate_svf": "jwarp.flow",
    "straight_round_trip": "jwarp.flow",
    "gradient_penalty": "jwarp.penalties",
    "jacobian_det": "jwarp.penalties",
    "negative_jacobian": "jwarp.penalties",
    "out_of_grid": "jwarp.penalties",
    "compose": "jwarp.sampler",
    "identity_grid": "jwarp.sampler",
    "sample": "jwarp.sampler",
    "sample_with_gradient": "jwarp.sampler",
    "warp": "jwarp.sampler",
    "neural_velocity": "jwarp.velocity",
    "stationary_velocity": "jwarp.velocity",
    "straight_inverse": "jwarp.velocity",
    "straight_velocity": "jwarp.velocity",
    "with_penalties": "jwarp.velocity",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jwarp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
