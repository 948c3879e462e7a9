"""jwarp: Warping Neural ODEs (Image2Gif) in JAX/Flax."""

from jwarp.animation import Animator, animate_pair
from jwarp.config import Config, ConfigError, load_config
from jwarp.execution import ExecutionConfig, Plan, plan
from jwarp.field import Field, flow, get_field
from jwarp.fit import FitConfig, fit_pair
from jwarp.flow import (
    FlowResult,
    Loop,
    SolverConfig,
    integrate,
    integrate_straight,
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
from jwarp.render import RenderOptions, render
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
    "ExecutionConfig",
    "Field",
    "FlowResult",
    "Loop",
    "Plan",
    "SolverConfig",
    "UNet",
    "UNetConfig",
    "compose",
    "flow",
    "get_field",
    "gradient_penalty",
    "identity_grid",
    "integrate",
    "integrate_straight",
    "integrate_svf",
    "jacobian_det",
    "negative_jacobian",
    "neural_velocity",
    "out_of_grid",
    "plan",
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
