"""jwarp: Warping Neural ODEs (Image2Gif) in JAX/Flax."""

from jwarp.animation import Animator, RenderOptions, animate_pair, render
from jwarp.config import Config, ConfigError, load_config
from jwarp.fit import FitConfig, fit_pair
from jwarp.flow import (
    FlowResult,
    SolverConfig,
    flow,
    integrate,
    integrate_svf,
    straight_round_trip,
)
from jwarp.models import Critic, CriticConfig, UNet, UNetConfig
from jwarp.penalties import (
    gradient_penalty,
    jacobian_det,
    negative_jacobian,
    out_of_grid,
)
from jwarp.sampler import compose, identity_grid, sample, sample_with_gradient, warp
from jwarp.velocity import (
    neural_velocity,
    stationary_velocity,
    straight_inverse,
    straight_velocity,
    with_penalties,
)

__all__ = [
    "Animator",
    "RenderOptions",
    "animate_pair",
    "render",
    "FitConfig",
    "fit_pair",
    "Config",
    "ConfigError",
    "load_config",
    "Critic",
    "CriticConfig",
    "FlowResult",
    "SolverConfig",
    "UNet",
    "UNetConfig",
    "compose",
    "flow",
    "gradient_penalty",
    "identity_grid",
    "integrate",
    "integrate_svf",
    "jacobian_det",
    "negative_jacobian",
    "neural_velocity",
    "out_of_grid",
    "sample",
    "sample_with_gradient",
    "stationary_velocity",
    "straight_inverse",
    "straight_round_trip",
    "straight_velocity",
    "warp",
    "with_penalties",
]

__version__ = "0.1.0"
