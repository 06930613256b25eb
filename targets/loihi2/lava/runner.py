"""Run a lowered fixed-point Graph on Lava: many samples streamed through one compiled network.

Streaming (`run_on_lava`, `run_payload_on_lava`): one build and one compile for N samples.
Sample w's payload is sent at Lava steps w*T + 1 .. w*T + T, the next sample directly after;
population k (1-based) works on sample w at steps w*T + k + 1 .. w*T + k + T and is reset to
u = v = 0 before the first of them (`LIFReset`, see `targets.loihi2.lava.network`). The run lasts
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

Timeout and stopping: `targets.loihi2.lava.session`.

Per-sample mode (`run_per_sample`): one build + run + stop of T + L steps per sample with plain
LIF populations, as a baseline for benchmarks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from targets.loihi2.lava.network import (
    LavaNetwork,
    LavaTargetUnavailable,
    build_network,
    run_config,
)
from targets.loihi2.lava.session import LavaTimeout, Session, default_timeout
from targets.loihi2.plan import from_lava_order, plan
from targets.loihi2.stream import (
    input_payload,
    output_dtype,
    output_windows,
    source_shape,
    stream_columns,
)
from targets.loihi2.timing import samples_finished, steps_for
from toolchain.ir import Graph

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


@dataclass(frozen=True)
class LavaResult:
    """What a Lava run produced.

    output_spikes: (N, n_out, T) uint8 (a readout's voltages: int64), the output population's
        window of every sample, neurons in graph order ((C, H, W) flattened for a convolutional
        output).
    predictions: (N,) int64, the graph's prediction (`Graph.predict`) of output_spikes.
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


def run_on_lava(
    graph: Graph,
    images: np.ndarray,
    *,
    target: str = "lava-sim",
    probe: Sequence[str] = (),
    timeout_s: float | None = None,
    progress: bool = False,
) -> LavaResult:
    """Stream images (N, C, H, W) in [0, 1], or inputs per step (N, T, C, H, W), through one
    compiled Lava network of `graph`.

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
    blocks = plan(graph).blocks
    config = run_config(target)
    data = _normalise_payload(graph, payload)
    shape = source_shape(graph)
    n, T, L = len(data), graph.T, len(blocks)
    total = steps_for(n, T, L)
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
    out_shape = blocks[-1].shape
    spikes = np.zeros((*blocks[-1].lava_shape, total))
    limit = default_timeout(total) if timeout_s is None else timeout_s
    session = Session(network.source, config, limit, total)
    with tqdm(total=n, unit="sample", disable=not progress, desc="lava") as bar:
        try:
            for period in range(0, total, buffer):
                if period:
                    network.source.data.set(stream_columns(data, T, period, buffer, shape))
                steps = min(buffer, total - period)
                for offset in range(0, steps, chunk):
                    session.run(min(chunk, steps - offset))
                    bar.update(samples_finished(session.steps_done, n, T, L) - bar.n)
                spikes[..., period : period + steps] = network.sink.data.get()[..., :steps]
            probes = _read_probes(network)
        finally:
            session.close()
    output = output_windows(spikes, out_shape, n, graph)
    return LavaResult(
        output_spikes=output,
        predictions=graph.predict(output),
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
    checked = plan(graph)
    config = run_config(target)
    data = _normalise_payload(graph, input_payload(graph, images))
    shape, out_shape = source_shape(graph), checked.blocks[-1].shape
    n, T = len(data), graph.T
    steps = checked.steps_per_sample
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
        session = Session(network.source, config, limit, steps)
        try:
            session.run(steps)
            spikes = network.sink.data.get()
            traces.append(_read_probes(network))
        finally:
            session.close()
        outputs.append(output_windows(spikes, out_shape, 1, graph)[0])
    empty = np.zeros((0, math.prod(out_shape), T), output_dtype(graph))
    output = np.stack(outputs) if outputs else empty
    probes = {
        name: {var: np.concatenate([t[name][var] for t in traces]) for var in ("u", "v")}
        for name in (traces[0] if traces else {})
    }
    return LavaResult(
        output_spikes=output,
        predictions=graph.predict(output),
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


def _read_probes(network: LavaNetwork) -> dict[str, dict[str, np.ndarray]]:
    probes: dict[str, dict[str, np.ndarray]] = {}
    shapes = {block.population.name: block.shape for block in network.blocks}
    for name, monitors in network.monitors.items():
        lif = network.lifs[name]
        probes[name] = {
            var: from_lava_order(monitor.get_data()[lif.name][var], shapes[name]).astype(np.int64)
            for var, monitor in monitors.items()
        }
    return probes
