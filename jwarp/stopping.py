"""Ctrl-C and SIGTERM during training: stop at the next step boundary with a checkpoint.

``StopRequest`` imports nothing heavy, so ``jwarp-train`` installs it before anything slow
(importing JAX, loading data, compiling): a signal in the first seconds is honoured too.

Python runs signal handlers only between bytecodes of the main thread, so while that thread
is inside XLA (compiling the first step can take minutes) a handler waits. With ``on_signal``,
a watcher thread hears each signal at once through ``signal.set_wakeup_fd`` (written by the
C-level handler): the command can say what will happen, and a second signal that the main
thread cannot act on within ``exit_after_s`` ends the process (exit code 130).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable


class StopRequest:
    """Ctrl-C and SIGTERM, from construction to ``restore``: ``signal`` becomes the signal
    that asks the run to stop (during start-up: before training begins; then at the next step
    boundary, with a checkpoint); asked twice, it stops at once (``KeyboardInterrupt``),
    without one."""

    def __init__(
        self,
        sigterm: bool = True,
        *,
        on_signal: Callable[[int, bool], None] | None = None,
        exit_after_s: float = 3.0,
    ):
        """Handles Ctrl-C, and SIGTERM unless ``sigterm`` is False (a multi-process run whose
        SIGTERM belongs to ``jax.distributed``'s preemption service: ``join_processes``).

        Args:
          on_signal: called as ``on_signal(n, training)`` for the ``n``-th signal, at once, from
            a watcher thread (constructed in the main thread; else no watcher); ``training``:
            whether the training loop has begun (the first stops it with a checkpoint).
          exit_after_s: after a second signal, the process exits with code 130 unless
            ``restore`` is called within this many seconds (with ``on_signal`` only).
        """
        self.signal: int | None = None
        self.asked = False
        self.agree = False  # ``join_processes``
        self.training = False  # set when the training loop begins (a stop then saves)
        signals = (signal.SIGINT, signal.SIGTERM) if sigterm else (signal.SIGINT,)
        self.old_handlers = {s: signal.signal(s, self._request) for s in signals}
        self._done = threading.Event()
        self._wakeup: tuple[int, int] | None = None  # (write end, the wakeup fd before)
        if on_signal is not None:
            self._watch(on_signal, exit_after_s)

    def _watch(self, on_signal, exit_after_s: float) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        try:
            old = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            os.close(read_fd)
            os.close(write_fd)
            return
        self._wakeup = (write_fd, old)
        threading.Thread(
            target=self._listen, args=(read_fd, on_signal, exit_after_s), daemon=True,
            name="jwarp-stop-watcher",
        ).start()

    def _listen(self, read_fd: int, on_signal, exit_after_s: float) -> None:
        heard = 0
        try:
            while data := os.read(read_fd, 64):  # b"": restore closed the write end
                for signum in data:
                    if signum not in self.old_handlers:  # not ours (SIGTERM given away)
                        continue
                    heard += 1
                    with contextlib.suppress(Exception):  # e.g. a closed stderr
                        on_signal(heard, self.training)
                    if heard == 2 and not self._done.wait(exit_after_s):
                        _exit_now(130)
        finally:
            os.close(read_fd)

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
        """Puts back the handlers there were before (and stops the watcher)."""
        self._done.set()
        if self._wakeup is not None:
            write_fd, old = self._wakeup
            self._wakeup = None
            signal.set_wakeup_fd(old)
            os.close(write_fd)
        for s, h in self.old_handlers.items():
            signal.signal(s, h)
        self.old_handlers = {}


def _exit_now(code: int) -> None:
    """Ends the process at once (the main thread is stuck in compiled code), after giving
    what was printed a moment to reach the terminal."""
    def flush():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()

    flusher = threading.Thread(target=flush, daemon=True)
    flusher.start()
    flusher.join(1.0)  # a stream locked by the stuck thread must not keep the process alive
    os._exit(code)
