"""How to execute: the one place that turns the ``[execution]`` settings and the backend into
concrete choices (solver loop, rematerialisation, convolution implementation).

None of these choices changes what a model computes, only how fast and in how much memory:
the parameters are the same for all of them, so a checkpoint moves freely between them, and a
run folder resumes under other execution settings. ``plan(config, purpose)`` resolves
``"auto"`` once, per purpose:

* ``"train"``: gradients of the solve. On CPU, for the neural field (a network pass at every
  stage) with fixed steps: a narrow network unrolls its steps (XLA:CPU differentiates
  convolutions inside a rolled loop 15-50x slower), a wide one (``>= WIDE_NETWORK`` channels,
  the authors') runs a ``scan`` that keeps every convolution's output (unrolled it compiles
  slowly and XLA:CPU does not bound its memory), with Winograd convolutions, whose weight
  gradient is the fastest inside a loop; a wide network computed once per image (the
  stationary field) also trains with Winograd convolutions. WGAN-GP's critic updates
  (second-order gradients) run the critic's 4x4 stride-2 convolutions as Winograd F(2x2, 2x2)
  (``jwarp.conv``). Everything else: diffrax's loop, XLA convolutions.
* ``"sample"``: forward solves inside training (sample GIFs): the same loops without the
  gradient-only choices.
* ``"animate"``: diffrax's rolled loop whatever ``loop`` says (its uniform steps make a frame
  independent of which other frames were asked for, and the compile time independent of their
  number), or for Euler steps that divide ``[0, 1]`` evenly the same solve as a ``"dense"``
  scan (``jwarp.flow``: traced and imported in a fraction of diffrax's time); on CPU a wide
  U-Net runs Winograd convolutions with kernels transformed once.

On CPU, ``"auto"`` convolutions otherwise run as im2col on tiny maps and as XLA's elsewhere
(``jwarp.conv``). The measurements behind each choice are in docs/performance.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax

from jwarp.conv import CONV_OUT
from jwarp.field import get_field
from jwarp.flow import LOOPS as CONCRETE_LOOPS
from jwarp.flow import Loop, SolverConfig, animation_loop
from jwarp.models import Critic, CriticConfig, UNet, UNetConfig

LOOPS = ("auto", *CONCRETE_LOOPS)
REMAT_POLICIES = ("auto", "inputs", "convs")
CONVS = ("auto", "lax", "im2col", "winograd")
PURPOSES = ("train", "sample", "animate")
WIDE_NETWORK = 256  # channels: the authors' U-Net and wider (see the module docstring)


@dataclasses.dataclass(frozen=True)
class ExecutionConfig:
    """The ``[execution]`` settings: how to run, never what is computed.

    Attributes:
      loop: ``"auto"``, ``"diffrax"``, ``"unrolled"`` or ``"scan"`` (``jwarp.flow``); animation
        always runs ``"diffrax"`` (or its equal, ``"dense"``).
      max_unrolled_steps: ``"auto"`` unrolls at most this many steps (compile time grows with
        them); longer solves run diffrax's loop.
      remat: in the unrolled and scan loops, recompute parts of each step in the backward pass
        instead of keeping them.
      remat_policy: what a rematerialised step keeps: ``"inputs"`` (only the step's input: one
        extra network pass per step), ``"convs"`` (also every convolution's output: no network
        pass is recomputed, memory grows with steps x convolution outputs) or ``"auto"``.
      unet_conv: how the U-Net's convolutions run: ``"auto"``, ``"lax"``, ``"im2col"`` or
        ``"winograd"`` (``jwarp.conv``).
      critic_conv: the same for the critic's.
    """

    loop: str = "auto"
    max_unrolled_steps: int = 64
    remat: bool = True
    remat_policy: str = "auto"
    unet_conv: str = "auto"
    critic_conv: str = "auto"

    def __post_init__(self):
        for name, allowed in (
            ("loop", LOOPS),
            ("remat_policy", REMAT_POLICIES),
            ("unet_conv", CONVS),
            ("critic_conv", CONVS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"execution.{name}: expected one of {allowed}, got {getattr(self, name)!r}"
                )
        if self.max_unrolled_steps < 0:
            raise ValueError(
                f"execution.max_unrolled_steps: expected >= 0, got {self.max_unrolled_steps}"
            )

    def check(self, flow: SolverConfig) -> None:
        """An explicit ``loop`` must suit the ``[flow]`` settings; a one-line ``ValueError``."""
        if self.loop != "auto":
            Loop(self.loop).check(flow)


class RunSettings(Protocol):
    """What ``plan`` reads of a run's ``jwarp.config.Config`` (which holds an
    ``ExecutionConfig``: this module does not import ``jwarp.config``)."""

    @property
    def execution(self) -> ExecutionConfig: ...

    @property
    def flow(self) -> SolverConfig: ...

    @property
    def model(self) -> Any: ...  # its .unet: UNetConfig

    @property
    def loss(self) -> Any: ...  # its .gan


@dataclasses.dataclass(frozen=True)
class Plan:
    """Concrete execution choices for one purpose (``plan``).

    Attributes:
      loop: how ``jwarp.flow.integrate`` runs its steps.
      unet_conv: how the U-Net's convolutions run (``jwarp.conv.CONV_IMPLS``).
      critic_conv: the critic's, where it is differentiated once (the generator's loss, LSGAN).
      critic_update_conv: the critic's in WGAN-GP critic updates (differentiated twice).
      winograd_cache: transform the U-Net's Winograd kernels once for given parameters
        (``jwarp.models.winograd_kernels``) instead of in every pass.
    """

    loop: Loop
    unet_conv: str
    critic_conv: str
    critic_update_conv: str
    winograd_cache: bool = False

    def unet(self, config: UNetConfig) -> UNet:
        """The U-Net of ``config`` running this plan's convolutions."""
        return UNet(config, conv=self.unet_conv)

    def critic(self, config: CriticConfig, update: bool = False) -> Critic:
        """The critic of ``config``; ``update``: as differentiated in critic updates."""
        return Critic(config, conv=self.critic_update_conv if update else self.critic_conv)


def backend() -> str:
    """The default JAX backend (``"cpu"``, ``"gpu"``, ``"tpu"``): the only place jwarp asks."""
    return jax.default_backend()


def plan(config: RunSettings, purpose: str, on: str | None = None) -> Plan:
    """Resolves ``config.execution`` for ``purpose`` on a backend (see the module docstring).

    Args:
      config: a run's ``jwarp.config.Config`` (its ``execution``, ``flow``, ``model`` and
        ``loss``).
      purpose: ``"train"``, ``"sample"`` or ``"animate"``.
      on: the backend to plan for; default the one JAX runs on.

    Returns:
      A ``Plan``.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose: expected one of {PURPOSES}, got {purpose!r}")
    ex = config.execution
    cpu = (on or backend()) == "cpu"
    wide = config.model.unet.widest >= WIDE_NETWORK
    network_in_loop = get_field(config.flow.field).network_in_loop
    by_size = "by-size" if cpu else "lax"

    kind, max_unrolled, policy = ex.loop, None, ex.remat_policy
    if purpose == "animate":
        kind = animation_loop(config.flow).kind
    elif kind == "auto":
        kind = "diffrax"
        if cpu and network_in_loop and config.flow.fixed_steps:
            if not wide:
                kind, max_unrolled = "unrolled", ex.max_unrolled_steps
            elif purpose == "train":
                kind = "scan"
                policy = "convs" if policy == "auto" else policy
    keep = (CONV_OUT,) if policy == "convs" else ()
    loop = Loop(kind, max_unrolled, ex.remat, keep)

    unet_conv = ex.unet_conv
    if unet_conv == "auto":
        unet_conv = by_size
        rolled = kind in ("diffrax", "scan")
        # A wide U-Net's single pass (the stationary field) trains faster as Winograd too:
        # paper_mnist's stationary iteration 0.85x the CPU time of "by-size".
        if cpu and purpose == "train" and ((network_in_loop and rolled) or wide):
            unet_conv = "winograd"
        if cpu and purpose == "animate" and wide:
            unet_conv = "winograd"

    critic_conv = by_size if ex.critic_conv == "auto" else ex.critic_conv
    critic_update_conv = critic_conv
    if cpu and ex.critic_conv == "auto" and config.loss.gan == "wgan-gp":
        critic_update_conv = "winograd"
    return Plan(
        loop=loop,
        unet_conv=unet_conv,
        critic_conv=critic_conv,
        critic_update_conv=critic_update_conv,
        winograd_cache=purpose == "animate" and unet_conv == "winograd",
    )
