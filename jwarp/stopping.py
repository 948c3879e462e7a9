"""Ctrl-C and SIGTERM during training: stop at the next step boundary with a checkpoint.

``StopRequest`` imports nothing heavy, so ``jwarp-train`` installs it before anything slow
(importing JAX, loading data, compiling): a signal in the first seconds is honoured too.
"""

from __future__ import annotations

import os
import signal


class StopRequest:
    """Ctrl-C and SIGTERM, from construction to ``restore``: ``signal`` becomes the signal
    that asks the run to stop (during start-up: before training begins; then at the next step
    boundary, with a checkpoint); asked twice, it stops at once (``KeyboardInterrupt``),
    without one."""

    def __init__(self, sigterm: bool = True):
        """Handles Ctrl-C, and SIGTERM unless ``sigterm`` is False (a multi-process run whose
        SIGTERM belongs to ``jax.distributed``'s preemption service: ``join_processes``)."""
        self.signal: int | None = None
        self.asked = False
        self.agree = False  # ``join_processes``
        signals = (signal.SIGINT, signal.SIGTERM) if sigterm else (signal.SIGINT,)
        self.old_handlers = {s: signal.signal(s, self._request) for s in signals}

    def _request(self, signum, frame):
        if self.asked:  # asked twice: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.asked = True
        if self.agree:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            self.signal = signum

    def release_sigterm(self) -> None:
        """Gives SIGTERM back (before ``jax.distributed.initialize``, whose preemption
        service handles it in a multi-process run); Ctrl-C stays with this request."""
        if signal.SIGTERM in self.old_handlers:
            signal.signal(signal.SIGTERM, self.old_handlers.pop(signal.SIGTERM))

    def join_processes(self) -> None:
        """In a multi-process run, stop at a step every process agrees on.

        One process stopping alone would leave the others waiting forever in a collective.
        ``jax.distributed``'s preemption service turns a SIGTERM on any process into one
        agreed step (``reached_preemption_sync_point``, in ``check``); Ctrl-C is forwarded to
        it as a SIGTERM, and SIGTERM is left to its handler.
        """
        import jax

        if jax.process_count() > 1 and jax.config.jax_enable_preemption_service:
            self.agree = True
            # Forget SIGTERM without touching it: jax.distributed installed its own handler
            # over this one when it started (release_sigterm before that is cleaner).
            self.old_handlers.pop(signal.SIGTERM, None)

    def check(self, step: int) -> None:
        """After ``step``: in a multi-process run, whether every process stops here."""
        if self.agree:
            from jax.experimental import multihost_utils

            if multihost_utils.reached_preemption_sync_point(step):
                self.signal = signal.SIGTERM

    def restore(self) -> None:
        """Puts back the handlers there were before."""
        for s, h in self.old_handlers.items():
            signal.signal(s, h)
        self.old_handlers = {}
