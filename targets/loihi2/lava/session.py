"""Running a built Lava network under a deadline, and always stopping it cleanly.

Timeout: every chunk runs non-blocking (`RunSteps(blocking=False)`); the host polls the runtime
service's response channel (`probe()`) until the chunk is done, and raises `LavaTimeout` when
the deadline (`timeout_s`, default 60 s + 0.05 s per step, counted from the first run) passes.
Ctrl-C in a terminal signals the whole process group: Lava's child processes ignore SIGINT
(they are forked while a session runs, with SIGINT ignored in the child), so only the host
sees the interrupt and stops them, quietly and at once.
Lava is always stopped (`try/finally`, also on KeyboardInterrupt): a graceful `stop()` in a
helper thread, and where that cannot finish (Lava's runtime service is gone after an error in a
process model, or hangs) the child processes are terminated and the shared-memory manager shut
down, so no shared-memory segment (`toolchain.lifetime`) stays behind. An interrupt that arrives
while Lava stops is held until it has stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from toolchain.errors import UserError

STOP_GRACE_S = 10.0  # how long a graceful stop may take before the processes are terminated
_POLL_S = 0.0005  # polling period of a running chunk
_CHECK_S = 0.05  # how often the child processes are checked while polling


_sessions_running = 0  # while > 0, processes forked by Lava ignore SIGINT


def _child_ignores_sigint() -> None:
    if _sessions_running:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


os.register_at_fork(after_in_child=_child_ignores_sigint)


class LavaTimeout(UserError, RuntimeError):
    """A Lava run did not finish within its timeout; it was stopped."""


def default_timeout(steps: int) -> float:
    """Generous wall-clock limit of a run of `steps` Lava steps: 60 s + 50 ms per step."""
    return 60.0 + 0.05 * steps


class Session:
    """Runs chunks of steps on a network non-blocking, under a deadline, and always stops it."""

    def __init__(self, process: Any, config: Any, timeout_s: float, total_steps: int) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s} must be positive")
        self.process, self.config = process, config
        self.timeout_s, self.total_steps = timeout_s, total_steps
        self.deadline: float | None = None
        self.steps_done = 0

    def run(self, steps: int) -> None:
        from lava.magma.core.run_conditions import RunSteps

        global _sessions_running
        if self.deadline is None:  # the first run forks Lava's processes
            self.deadline = time.monotonic() + self.timeout_s
            _sessions_running += 1
        self.process.run(condition=RunSteps(num_steps=steps, blocking=False), run_cfg=self.config)
        runtime = self.process.runtime
        next_check = time.monotonic() + _CHECK_S
        while not all(port.probe() for port in runtime.service_to_runtime):
            now = time.monotonic()
            if now > self.deadline:
                raise LavaTimeout(
                    f"Lava run stalled: {self.steps_done} of {self.total_steps} steps finished"
                    f" after {self.timeout_s:.3g} s (timeout_s); the run was stopped"
                )
            if now > next_check:
                self._raise_if_a_process_died(runtime)
                next_check = now + _CHECK_S
            time.sleep(_POLL_S)
        self.process.wait()
        self.steps_done += steps

    def _raise_if_a_process_died(self, runtime: Any) -> None:
        """Lava hangs when a process model raises (the others wait for its messages): report
        the first dead child with its exception instead of waiting for the timeout."""
        for actor in runtime._messaging_infrastructure.actors:
            if not actor._is_done and actor.exitcode is not None:
                error = actor.exception
                detail = (
                    f": {error[0]!r}\n{error[1]}" if error else f" (exit code {actor.exitcode})"
                )
                raise RuntimeError(
                    f"a Lava process died after {self.steps_done} of {self.total_steps} steps"
                    f"{detail}"
                )

    def close(self) -> None:
        global _sessions_running
        try:
            with _interrupts_deferred():
                _shutdown(self.process)
        finally:
            if self.deadline is not None:
                _sessions_running -= 1


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Holds SIGINT until the block ends, then raises it again: a shutdown cut short
    leaves Lava's processes running and its shared-memory segments behind. Only the main thread
    can change the handler; elsewhere the block runs as it is."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        signal.raise_signal(signal.SIGINT)  # now to the handler it was meant for


def _shutdown(process: Any, grace_s: float = STOP_GRACE_S) -> None:
    """Stop Lava's runtime of `process`; terminate its processes where stop() cannot finish."""
    runtime = getattr(process, "runtime", None)
    if runtime is None:
        return
    infra = runtime._messaging_infrastructure
    # A graceful stop needs every child: with one dead, the others may wait for it forever.
    if runtime._is_started and infra.actors and all(_alive(actor) for actor in infra.actors):
        stopper = threading.Thread(target=_quiet_stop, args=(process,), daemon=True)
        stopper.start()
        stopper.join(grace_s)
        if not stopper.is_alive() and not runtime._is_started:
            return
    # The runtime service is gone (an error in a process model) or stop() hangs: force it.
    for actor in infra.actors:
        if _alive(actor):
            actor.terminate()
    for actor in infra.actors:
        if not actor._is_done:
            actor.join()
    runtime._is_running = runtime._is_started = False
    if infra.smm is not None:
        infra.smm.shutdown()
    runtime._watchdog_manager.stop()


def _alive(actor: Any) -> bool:
    return not actor._is_done and actor.is_alive()


def _quiet_stop(process: Any) -> None:
    try:
        process.stop()
    except Exception:  # noqa: BLE001  (the caller checks the state and forces the shutdown)
        pass
