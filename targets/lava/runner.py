"""Run a lowered fixed-point Graph on Lava: many samples streamed through one compiled network.

Streaming (`run_on_lava`, `run_payload_on_lava`): one build and one compile for N samples.
Sample w's payload is sent at Lava steps w*T + 1 .. w*T + T, the next sample directly after;
population k (1-based) works on sample w at steps w*T + k + 1 .. w*T + k + T and is reset to
u = v = 0 before the first of them (`LIFReset`, see `targets.lava.network`). The run lasts
N*T + L steps (L populations); the output population's spikes of sample w are those of steps
w*T + L + 1 .. w*T + L + T (sink columns w*T + L .. w*T + L + T - 1), which equal the reference
simulator's `output_window` of that sample alone, bit for bit.

Buffers and chunks: the source RingBuffer normally holds all N*T + L columns (passed at build
time, so it costs nothing to load). Lava's `Var.set` sends one message per element (about
17 us each, measured: 64 inputs x 200 steps in 0.22 s, exact), which costs more than the
simulation itself (about 1 ms per step) once the input has more than ~60 elements, so the
buffer is refilled between runs only when it would exceed `MAX_BUFFER_ITEMS` int32 values
(or when `buffer_samples` asks for it): then source and sink hold `buffer_samples * T` columns,
the source is `set` to the next columns and the sink read after each period. Either way the
steps run in chunks of about `CHUNK_STEPS` (whole samples) so that a progress bar moves.

Timeout: every chunk runs non-blocking (`RunSteps(blocking=False)`); the host polls the runtime
service's response channel (`probe()`) until the chunk is done, and raises `LavaTimeout` when
the deadline (`timeout_s`, default 60 s + 0.05 s per step, counted from the first run) passes.
Lava is always stopped (`try/finally`, also on KeyboardInterrupt): a graceful `stop()` in a
helper thread, and where that cannot finish (Lava's runtime service is gone after an error in a
process model, or hangs) the child processes are terminated and the shared-memory manager shut
down, so no `/dev/shm/psm_*` segment stays behind.

Per-sample mode (`run_per_sample`): one build + run + stop of T + L steps per sample with plain
LIF populations, as a baseline for benchmarks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from targets.lava.network import (
    LavaNetwork,
    LavaTargetUnavailable,
    build_network,
    deployable_layers,
    from_lava_order,
    run_config,
    source_shape,
    stream_columns,
)
from targets.reference import input_payload, predict_from_spikes
from toolchain.graph import Graph

__all__ = [
    "LavaResult",
    "LavaTargetUnavailable",
    "LavaTimeout",
    "default_timeout",
    "run_on_lava",
    "run_payload_on_lava",
    "run_per_sample",
]

MAX_BUFFER_ITEMS = 2**24  # int32 values in the source RingBuffer before it is refilled by set
CHUNK_STEPS = 256  # steps per run() call (rounded up to whole samples)
STOP_GRACE_S = 10.0  # how long a graceful stop may take before the processes are terminated
_POLL_S = 0.0005  # polling period of a running chunk
_CHECK_S = 0.05  # how often the child processes are checked while polling


class LavaTimeout(RuntimeError):
    """A Lava run did not finish within its timeout; it was stopped."""


@dataclass(frozen=True)
class LavaResult:
    """What a Lava run produced.

    output_spikes: (N, n_out, T) uint8, the output population's window of every sample, neurons
        in graph order ((C, H, W) flattened for a convolutional output).
    predictions: (N,) int64, `predict_from_spikes` of output_spikes.
    steps: Lava steps run (N*T + L streaming, N*(T + L) per sample).
    seconds: wall time of building, compiling, running and reading back.
    probes: population -> {"u": (steps, *shape), "v": (steps, *shape)} int64 in graph order,
        row i = Lava step i + 1 (per sample: the runs' rows one after the other).
    """

    output_spikes: np.ndarray
    predictions: np.ndarray
    steps: int
    seconds: float
    probes: dict[str, dict[str, np.ndarray]]

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else math.inf


def default_timeout(steps: int) -> float:
    """Generous wall-clock limit of a run of `steps` Lava steps: 60 s + 50 ms per step."""
    return 60.0 + 0.05 * steps


def run_on_lava(
    graph: Graph,
    images: np.ndarray,
    *,
    target: str = "lava-sim",
    probe: Sequence[str] = (),
    timeout_s: float | None = None,
    progress: bool = False,
) -> LavaResult:
    """Stream images (N, C, H, W) in [0, 1] through one compiled Lava network of `graph`.

    target: "lava-sim" (Lava's bit-accurate CPU simulation) or "loihi" (Loihi 2 hardware;
    raises LavaTargetUnavailable without Intel's lava-loihi). probe: populations whose u and v
    are recorded. Raises GraphError for a graph that is not lowered and fixed-point, LavaTimeout
    when the run takes longer than timeout_s (default `default_timeout(steps)`).
    """
    return run_payload_on_lava(
        graph,
        input_payload(graph, images),
        target=target,
        probe=probe,
        timeout_s=timeout_s,
        progress=progress,
    )


def run_payload_on_lava(
    graph: Graph,
    payload: np.ndarray,
    *,
    target: str = "lava-sim",
    probe: Sequence[str] = (),
    timeout_s: float | None = None,
    progress: bool = False,
    buffer_samples: int | None = None,
) -> LavaResult:
    """`run_on_lava` on integer payloads instead of images.

    payload: (N, C, H, W) graded spikes sent unchanged for T steps (what `input_payload` gives),
    or (N, C*H*W, T) a payload per step (time-varying input; (N, C, H, W, T) also accepted).
    buffer_samples: samples per source/sink buffer; None: all of them unless the source would
    exceed MAX_BUFFER_ITEMS values (then the buffer is refilled with Var.set between runs).
    """
    started = time.perf_counter()
    layers = deployable_layers(graph)
    config = run_config(target)
    data = _normalise_payload(graph, payload)
    shape = source_shape(graph)
    n, T, L = len(data), graph.T, len(layers)
    total = n * T + L
    buffer = _buffer_steps(total, T, math.prod(shape), buffer_samples)
    network = build_network(
        graph,
        stream_columns(data, T, 0, buffer, shape),
        sink_buffer=buffer,
        reset_interval=T,
        probe=probe,
        probe_steps=total,
    )
    chunk = T * max(1, -(-CHUNK_STEPS // T))
    out_shape = layers[-1].shape
    spikes = np.zeros((*reversed(out_shape), total) if len(out_shape) == 3 else (*out_shape, total))
    limit = default_timeout(total) if timeout_s is None else timeout_s
    session = _Session(network.source, config, limit, total)
    with tqdm(total=n, unit="sample", disable=not progress, desc="lava") as bar:
        try:
            for period in range(0, total, buffer):
                if period:
                    network.source.data.set(stream_columns(data, T, period, buffer, shape))
                steps = min(buffer, total - period)
                for offset in range(0, steps, chunk):
                    session.run(min(chunk, steps - offset))
                    bar.update(_samples_done(session.steps_done, n, T, L) - bar.n)
                spikes[..., period : period + steps] = network.sink.data.get()[..., :steps]
            probes = _read_probes(network)
        finally:
            session.close()
    output = _output_windows(spikes, out_shape, n, T, L)
    return LavaResult(
        output_spikes=output,
        predictions=predict_from_spikes(output, graph.populations[-1].tau_s),
        steps=total,
        seconds=time.perf_counter() - started,
        probes=probes,
    )


def run_per_sample(
    graph: Graph,
    images: np.ndarray,
    *,
    timeout_s: float | None = None,
    progress: bool = False,
    probe: Sequence[str] = (),
    target: str = "lava-sim",
) -> LavaResult:
    """One Lava build + run (T + L steps, plain LIF) + stop per image: the unstreamed baseline.

    timeout_s applies to each sample's run (default `default_timeout(T + L)`).
    """
    started = time.perf_counter()
    layers = deployable_layers(graph)
    config = run_config(target)
    data = _normalise_payload(graph, input_payload(graph, images))
    shape, out_shape = source_shape(graph), layers[-1].shape
    n, T, L = len(data), graph.T, len(layers)
    steps = T + L
    outputs, traces = [], []
    for w in tqdm(range(n), unit="sample", disable=not progress, desc="lava"):
        network = build_network(
            graph,
            stream_columns(data[w : w + 1], T, 0, steps, shape),
            sink_buffer=steps,
            probe=probe,
            probe_steps=steps,
        )
        limit = default_timeout(steps) if timeout_s is None else timeout_s
        session = _Session(network.source, config, limit, steps)
        try:
            session.run(steps)
            spikes = network.sink.data.get()
            traces.append(_read_probes(network))
        finally:
            session.close()
        outputs.append(_output_windows(spikes, out_shape, 1, T, L)[0])
    output = np.stack(outputs) if outputs else np.zeros((0, math.prod(out_shape), T), np.uint8)
    probes = {
        name: {var: np.concatenate([t[name][var] for t in traces]) for var in ("u", "v")}
        for name in (traces[0] if traces else {})
    }
    return LavaResult(
        output_spikes=output,
        predictions=predict_from_spikes(output, graph.populations[-1].tau_s),
        steps=n * steps,
        seconds=time.perf_counter() - started,
        probes=probes,
    )


def _normalise_payload(graph: Graph, payload: np.ndarray) -> np.ndarray:
    """(N, *source_shape) static or (N, *source_shape, T) per-step payloads, int64."""
    payload = np.asarray(payload)
    if payload.dtype.kind not in "iu":
        raise ValueError(f"payload must be integers, got {payload.dtype}")
    n, in_shape, shape = len(payload), graph.input.shape, source_shape(graph)
    if payload.shape[1:] == in_shape:
        return payload.reshape(n, *shape).astype(np.int64)
    n_in = math.prod(in_shape)
    if payload.shape[1:] in ((n_in, graph.T), (*in_shape, graph.T)):
        return payload.reshape(n, *shape, graph.T).astype(np.int64)
    raise ValueError(
        f"payload has shape {payload.shape}; expected (N, *{in_shape}), (N, {n_in}, {graph.T})"
        f" or (N, *{in_shape}, {graph.T})"
    )


def _buffer_steps(total: int, T: int, n_in: int, buffer_samples: int | None) -> int:
    if buffer_samples is None:
        if n_in * total <= MAX_BUFFER_ITEMS:
            return total
        buffer_samples = max(1, MAX_BUFFER_ITEMS // (n_in * T))
    if buffer_samples < 1:
        raise ValueError(f"buffer_samples={buffer_samples} must be >= 1")
    return min(total, buffer_samples * T)


def _samples_done(steps: int, n: int, T: int, L: int) -> int:
    return int(min(n, max(0, (steps - L) // T)))


def _output_windows(
    spikes: np.ndarray, shape: tuple[int, ...], n: int, T: int, L: int
) -> np.ndarray:
    """Sink data (*lava_shape, steps) -> (n, n_out, T) uint8 of every sample's output window."""
    flat = from_lava_order(np.moveaxis(spikes, -1, 0), shape).reshape(spikes.shape[-1], -1).T
    columns = np.arange(n)[:, None] * T + L + np.arange(T)
    return flat[:, columns].transpose(1, 0, 2).astype(np.uint8)


def _read_probes(network: LavaNetwork) -> dict[str, dict[str, np.ndarray]]:
    probes: dict[str, dict[str, np.ndarray]] = {}
    shapes = {layer.population.name: layer.shape for layer in network.layers}
    for name, monitors in network.monitors.items():
        lif = network.lifs[name]
        probes[name] = {
            var: from_lava_order(monitor.get_data()[lif.name][var], shapes[name]).astype(np.int64)
            for var, monitor in monitors.items()
        }
    return probes


class _Session:
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

        if self.deadline is None:
            self.deadline = time.monotonic() + self.timeout_s
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
        _shutdown(self.process)


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
