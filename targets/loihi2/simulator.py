"""Bit-accurate reference simulator of a lowered fixed-point Graph, step for step as Lava 0.10.0.

It computes, batched over samples, exactly the integers that Lava's `fixed_pt` models compute
for the same network (RingBuffer source -> Dense/Conv -> LIF -> ... -> sink), so its spikes,
currents and voltages equal Lava's at every step (Lava runs one sample at a time, at about a
millisecond per step; this runs whole batches through vectorised products and updates).

Timing (`targets.loihi2.timing`): one sample takes S = T + L Lava steps for L populations; the
output population's float steps 0 .. T - 1 are columns L .. L + T - 1 (`output_window`). The
input sends p = round(x * levels) at steps 1 .. T and 0 after; every synapse delays by a step.

Integers per population and step (exact here, and stored in int32 as Lava stores them; tz(x) =
x / 4096 truncated toward zero):
- Dense: a = W_int @ x shifted by weight_exp (<< e, or arithmetic >> -e, on the sum). Lava sums
  graded payloads in int32 and shifts in int32, so the sum wraps modulo 2^32 before and after
  the shift; spike sums never come near 2^31. Dense does not clip.
- Conv2d: a = integer convolution (stride, zero padding) wrapped to signed 24 bits,
  (x + 2^23) mod 2^24 - 2^23. Lava computes it in float64 and casts it to int32 first, which
  is undefined beyond 2^31: graphs whose bound reaches it are refused.
- u = wrap24(wrap32(tz(u * (4096 - (du + 1))) + (a << 6))): Lava adds in int32 (wrap32), then
  wraps once: x > 2^23 -> x - 2^24, x <= -2^23 -> x + 2^24. One step's drive beyond 2^24 can
  leave u outside 24 bits, as Lava's u then is; `current_wraps` counts updates where u differs
  from the exact sum.
- v = clip(tz(v * (4096 - dv)) + u + b, -(2^23 - 1), 2^23 - 1), b = bias_mant << bias_exp of
  a population with a bias (else 0); `voltage_saturations` counts clips.
- s = v > (vth << 6); v = 0 where s (u is not reset), or v = v - reset_sub where s for a
  population that resets by subtraction (`LIFVariant`, a microcoded neuron on the chip).
  A population with max_spikes m > 1 emits the count s = clip((v - 1) // (vth << 6), 0, m)
  as a graded spike, and v -= s reset_sub, or v = 0 where s > 0. A synaptic bias c is added to
  a (u += (a + c) << 6); a refractory population's v is 0 the step after a spike, before the
  threshold. A readout population never spikes: it sends its v every step (a graded spike of
  up to 24 bits), and the output holds those voltages. These run as `LIFVariant` on Lava (a
  microcoded neuron on the chip).
  States are 0 when the sample reaches the population (with biases, which charge v before,
  every population is reset then, as Lava's LIFReset does).

Speed: the synaptic sums use float BLAS / torch products, exact because every partial sum is an
integer below 2^24 (float32, chosen when the bound allows) or 2^53 (float64), whatever the
order of summation; a Dense synapse whose int32 sum cannot wrap and whose weight_exp >= 0 holds
its weights times 2^(weight_exp + 6), so that its product is a << 6 itself (a power of two keeps
every partial sum exact). The bound, unit * max over outputs of sum |W_int| with unit = levels
for the input synapse and 1 for spikes, is checked once per graph. Convolutions run in torch,
whose CPU algorithms (oneDNN direct, im2col + GEMM) only reorder sums; NNPACK, which may use
Winograd or FFT, is switched off around the call. A static input is constant for steps 1 .. T,
so the first synapse is applied once per batch; later synapses are skipped while their source
is silent. The input payload is formed batch by batch, batch_size samples at a time. States are
int32, as Lava's, and each update computes in float64 (exact, as |u * 4096| < 2^43); spikes are
written as float32 0 or 1, the products' operand, with their count, so that neither needs
another pass. Each update is one pass per population and step in the compiled kernel
`kernels/population.cpp` (vectorised, on one thread: numpy's BLAS has the cores for the
products; built as `toolchain.native` says), or, without it (or with
`SNN_DEPLOY_SIM_KERNEL=reference`), the numpy passes of `_update_reference`, which it mirrors
operation for operation (tested equal).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from targets.loihi2 import formats
from targets.loihi2.formats import (
    ACT_SHIFT,
    DECAY_UNITY,
    FLOAT32_EXACT,
    FLOAT64_EXACT,
    INT32_LIMIT,
    STATE_LIMIT,
    U_WRAP,
)
from targets.loihi2.plan import LIF_FIELDS, Plan, plan
from targets.loihi2.stream import checked_images, output_dtype, payload, spike_dtype
from targets.loihi2.timing import (
    first_input_step,
    in_window,
    output_window,
    reset_offset,
    steps_for,
)
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph, GraphError
from toolchain.ir.fields import set_fields
from toolchain.native import compiled
from toolchain.parallel import in_shards
from toolchain.resources import require_memory

BACKENDS = ("numpy", "torch")  # the numpy passes (and compiled kernel) or PyTorch on a device
KERNEL_SOURCE = Path(__file__).with_name("kernels") / "population.cpp"
KERNEL_ENV = "SNN_DEPLOY_SIM_KERNEL"


@dataclass(frozen=True)
class SimulationResult:
    """Spikes (and optionally states) of every Lava step, columns 0 .. S-1 = steps 1 .. S."""

    output_spikes: np.ndarray  # (N, n_out, S) uint8; a readout's voltages, int64 (`output_dtype`)
    predictions: np.ndarray  # (N,) int64
    spikes: dict[str, np.ndarray] | None  # population -> (N, *shape, S) uint8
    currents: dict[str, np.ndarray] | None  # population -> u, (N, *shape, S) int64
    voltages: dict[str, np.ndarray] | None  # population -> v after reset, (N, *shape, S) int64
    voltages_before_reset: dict[str, np.ndarray] | None  # v where it is compared with vth
    current_wraps: dict[str, int]
    voltage_saturations: dict[str, int]
    spike_counts: dict[str, int]  # population -> spikes in its T-step window, all samples
    window: slice  # the output population's columns of the float steps 0 .. T-1

    @property
    def output_window_spikes(self) -> np.ndarray:
        """(N, n_out, T): the output spikes on the float time axis, what Lava's run returns."""
        return self.output_spikes[..., self.window]


@dataclass(frozen=True)
class _Synapse:
    """A Dense or Conv2d synapse, ready to map its source's output to Lava's integer input a."""

    node: Dense | Conv2d
    # Dense: W_int.T, times 2^(weight_exp + 6) where `shifted`; Conv: W_int; in the product's
    # dtype
    weight: np.ndarray | torch.Tensor
    bound: int  # no |sum| can exceed it: unit * max over outputs of sum |W_int|
    shifted: bool = False  # the product is a << 6 already

    @property
    def dtype(self) -> type:
        """The dtype of its products."""
        weight = self.weight
        return (weight.numpy() if isinstance(weight, torch.Tensor) else weight).dtype.type

    def drive(self, x: np.ndarray) -> np.ndarray:
        """a << 6 (N, *out) of source outputs x (N, *in): exact integers, int or float."""
        if isinstance(self.node, Dense):
            return self._dense(self.node, x)
        return self._conv(self.node, x) << ACT_SHIFT

    def _dense(self, node: Dense, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(self.weight.dtype, copy=False)
        if self.shifted:
            return flat @ self.weight
        exp = node.weight_exp
        if _stays_in_int32(node, self.bound):
            return np.floor((flat @ self.weight) * 2.0**exp) * (1 << ACT_SHIFT)
        total = _wrap32((flat @ self.weight).astype(np.int64))
        a = _wrap32(total << exp) if exp > 0 else total >> -exp
        return a << ACT_SHIFT

    def _conv(self, node: Conv2d, x: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(x).to(self.weight.dtype)
        with torch.backends.nnpack.flags(enabled=False):  # NNPACK may use Winograd or FFT
            total = F.conv2d(inputs, self.weight, stride=node.stride, padding=node.padding)
        return ((total.numpy().astype(np.int64) + U_WRAP) & (2 * U_WRAP - 1)) - U_WRAP


@dataclass(frozen=True)
class _DelayedSynapse:
    """A Dense with delays: one synapse per delay, of the weights with that delay, each summed
    and shifted apart as Lava's DelayDense does."""

    node: Dense
    buckets: tuple[tuple[int, _Synapse], ...]  # (delay, its synapse)

    @property
    def dtype(self) -> type:
        """The widest dtype of its delays' products."""
        return np.result_type(*(synapse.dtype for _, synapse in self.buckets)).type

    def drive(self, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(delay, a << 6) of each delay's weights for source outputs x."""
        return [(delay, synapse.drive(x)) for delay, synapse in self.buckets]


class _DelayLine:
    """What a delayed synapse has yet to deliver to one batch: slot j arrives j steps later."""

    def __init__(self, synapse: _DelayedSynapse) -> None:
        self.pending: list[np.ndarray | None] = [None] * (max(d for d, _ in synapse.buckets) + 1)

    def clear(self) -> None:
        """Forgets everything pending: the source's new sample starts this step."""
        self.pending = [None] * len(self.pending)

    def advance(self, contributions: list[tuple[int, np.ndarray]] | None) -> np.ndarray | None:
        """Adds this step's contributions at their delays; the drive due now."""
        for delay, a in contributions or ():
            self.pending[delay] = _sum(self.pending[delay], a)
        due = self.pending.pop(0)
        self.pending.append(None)
        return due


@dataclass(frozen=True)
class _Population:
    """A CubaLIF population's integer constants."""

    name: str
    shape: tuple[int, ...]
    # each one number, or one per channel or neuron shaped like `bias` (`CubaLIF.per_neuron`)
    current_factor: int | np.ndarray  # the 12-bit fraction kept per step
    voltage_factor: int | np.ndarray
    threshold: int | np.ndarray  # the voltage to exceed
    reset_sub: int | np.ndarray | None  # subtracted from v on a spike; None: v = 0
    bias: np.ndarray | None  # added to v every step, shaped to broadcast over the population
    recurrent: _Synapse | None  # from the population's own spikes of the previous step
    max_spikes: int = 1  # > 1: the population emits spike counts up to it
    synaptic_bias: np.ndarray | None = None  # c << 6, added to u with the drive
    refractory: int = 0  # 1: v = 0 the step after a spike
    readout: bool = False  # never spikes: sends v

    numpy_update: bool = False  # `needs_numpy_update` of its node


@dataclass
class _State:
    """One population's state for a batch, updated in place, and its overflow counts."""

    u: np.ndarray  # int32, as Lava's; each step computes in float64 (|u * 4096| < 2^43 < 2^53)
    v: np.ndarray
    spikes: np.ndarray  # the last step's: float32 0 or 1 (the products' operand), or uint8
    # spike counts, or a readout's v in float64
    v_crossing: np.ndarray  # v before the reset, where `spikes` (kept only when recording)
    fired: int = 0  # the last step's spikes (their sum for counts; nonzero values of a readout)
    current_wraps: int = 0
    voltage_saturations: int = 0

    @classmethod
    def zeros(cls, shape: tuple[int, ...], counts: bool = False, readout: bool = False) -> _State:
        dtype = np.float64 if readout else np.uint8 if counts else np.float32

        def integers() -> np.ndarray:
            return np.zeros(shape, np.int32)

        return cls(integers(), integers(), np.zeros(shape, dtype), integers())

    def reset(self) -> None:
        """u, v and the last spikes to 0, as Lava's LIFReset leaves them (no recurrent input
        from the sample before)."""
        self.u.fill(0)
        self.v.fill(0)
        self.spikes.fill(0)
        self.fired = 0


@dataclass
class _Recorder:
    """The arrays the caller asked for, filled batch by batch and step by step."""

    output: np.ndarray
    spikes: dict[str, np.ndarray] | None
    currents: dict[str, np.ndarray] | None
    voltages: dict[str, np.ndarray] | None
    voltages_before_reset: dict[str, np.ndarray] | None
    current_wraps: dict[str, int] = field(default_factory=dict)
    voltage_saturations: dict[str, int] = field(default_factory=dict)
    spike_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(
        cls, populations: list[_Population], n: int, steps: int, record: bool, states: bool
    ) -> _Recorder:
        def arrays(dtype: type | None) -> dict[str, np.ndarray]:
            return {
                p.name: np.zeros((n, *p.shape, steps), dtype=dtype or spike_dtype(p))
                for p in populations
            }

        last = populations[-1]
        output = np.zeros((n, int(np.prod(last.shape)), steps), dtype=spike_dtype(last))
        return cls(
            output,
            arrays(None) if record else None,
            arrays(np.int64) if states else None,
            arrays(np.int64) if states else None,
            arrays(np.int64) if states else None,
            {p.name: 0 for p in populations},
            {p.name: 0 for p in populations},
            {p.name: 0 for p in populations},
        )

    def store(self, name: str, rows: slice, column: int, state: _State) -> None:
        if self.spikes is not None:
            self.spikes[name][rows, ..., column] = state.spikes
        if self.currents is not None and self.voltages is not None:
            self.currents[name][rows, ..., column] = state.u
            self.voltages[name][rows, ..., column] = state.v
            before = np.where(state.spikes, state.v_crossing, state.v)
            self.voltages_before_reset[name][rows, ..., column] = before

    def store_output(self, rows: slice, column: int, state: _State) -> None:
        self.output[rows, :, column] = state.spikes.reshape(len(state.spikes), -1)

    def count(self, name: str, state: _State) -> None:
        self.current_wraps[name] += state.current_wraps
        self.voltage_saturations[name] += state.voltage_saturations


def simulate(
    graph: Graph,
    images: np.ndarray,
    *,
    record: bool = False,
    record_states: bool = False,
    batch_size: int = 1000,
    progress: bool = False,
    workers: int = 1,
    backend: str = "numpy",
    device: str = "cpu",
) -> SimulationResult:
    """Run the fixed-point graph on images (N, C, H, W) in [0, 1], or inputs per step (N, T, C,
    H, W), for S = T + L Lava steps; with workers > 1, shards of the samples in that many
    processes (`toolchain.parallel`), the same integers. `backend` "torch" computes the same
    integers in PyTorch on `device` ("cpu" or "cuda"), each sample's windows only
    (`targets.loihi2.torch_backend`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    needed = memory_needed(
        graph, len(images), np.ndim(images) == 5, batch_size, record, record_states
    )
    require_memory(needed, f"simulating {len(images)} samples of {graph.T} steps")
    options = {"record": record, "record_states": record_states, "batch_size": batch_size}
    if backend == "torch":
        from targets.loihi2.torch_backend import simulate_torch

        return simulate_torch(graph, images, **options, device=device)
    if workers > 1:
        shards = in_shards(
            lambda first, stop: _simulate(graph, images[first:stop], **options),
            len(images),
            workers,
            progress=progress,
            desc="simulate",
        )
        return _concatenate([part for _, _, part in shards])
    return _simulate(graph, images, **options, progress=progress)


def memory_needed(
    graph: Graph,
    samples: int,
    per_step: bool,
    batch_size: int = 1000,
    record: bool = False,
    record_states: bool = False,
) -> int:
    """About the bytes `simulate` allocates: the recorded arrays for all samples (S = T + L
    steps each) and one batch's states, drives and payload."""
    shapes = graph.shapes()
    neurons = [math.prod(shapes[graph.nodes.index(p)]) for p in graph.populations]
    steps = steps_for(1, graph.T, len(neurons))
    item = np.dtype(output_dtype(graph)).itemsize
    total = samples * neurons[-1] * steps * item
    total += samples * sum(neurons) * steps * ((8 if record else 0) + (24 if record_states else 0))
    batch = min(batch_size, samples)
    frames = graph.T if per_step else 1
    total += batch * (sum(neurons) * 24 + (math.prod(shapes[0]) + neurons[0]) * 8 * frames)
    return total


def _concatenate(parts: list[SimulationResult]) -> SimulationResult:
    """One result of consecutive shards' results."""

    def joined(arrays: list[dict[str, np.ndarray] | None]) -> dict[str, np.ndarray] | None:
        if arrays[0] is None:
            return None
        return {name: np.concatenate([a[name] for a in arrays]) for name in arrays[0]}

    def summed(counts: list[dict[str, int]]) -> dict[str, int]:
        return {name: sum(c[name] for c in counts) for name in counts[0]}

    return SimulationResult(
        output_spikes=np.concatenate([p.output_spikes for p in parts]),
        predictions=np.concatenate([p.predictions for p in parts]),
        spikes=joined([p.spikes for p in parts]),
        currents=joined([p.currents for p in parts]),
        voltages=joined([p.voltages for p in parts]),
        voltages_before_reset=joined([p.voltages_before_reset for p in parts]),
        current_wraps=summed([p.current_wraps for p in parts]),
        voltage_saturations=summed([p.voltage_saturations for p in parts]),
        spike_counts=summed([p.spike_counts for p in parts]),
        window=parts[0].window,
    )


def _simulate(
    graph: Graph,
    images: np.ndarray,
    *,
    record: bool,
    record_states: bool,
    batch_size: int,
    progress: bool = False,
) -> SimulationResult:
    """`simulate` in this process."""
    checked = plan(graph)
    layers = _prepare(checked)
    images = checked_images(graph, images)
    populations = [population for _, population in layers]
    steps = checked.steps_per_sample
    recorder = _Recorder.create(populations, len(images), steps, record, record_states)
    with tqdm(total=len(images), unit="sample", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            rows = slice(start, min(start + batch_size, len(images)))
            # per batch: small arrays that stay in cache, in the first product's dtype
            sent = payload(graph, images[rows], layers[0][0].dtype)
            _run_batch(layers, sent, graph.T, rows, recorder, checked.resets)
            bar.update(rows.stop - rows.start)
    window = output_window(graph)
    return SimulationResult(
        output_spikes=recorder.output,
        predictions=graph.predict(recorder.output[..., window]),
        spikes=recorder.spikes,
        currents=recorder.currents,
        voltages=recorder.voltages,
        voltages_before_reset=recorder.voltages_before_reset,
        current_wraps=recorder.current_wraps,
        voltage_saturations=recorder.voltage_saturations,
        spike_counts=recorder.spike_counts,
        window=window,
    )


def _prepare(checked: Plan) -> list[tuple[_Synapse, _Population]]:
    """Each block's synapse and population, ready to run."""
    return [
        (
            _synapse(block.synapse, block.source_payload),
            _population(block.population, block.shape, block.recurrent),
        )
        for block in checked.blocks
    ]


def _synapse(node: Dense | Conv2d, unit: int) -> _Synapse | _DelayedSynapse:
    if isinstance(node, Dense) and node.delay is not None:
        buckets = []
        for delay in (int(d) for d in np.unique(node.delay)):
            kept = np.where(node.delay == delay, node.weight_int, 0).astype(np.int32)
            bucket = Dense(node.name, node.weight, kept, node.weight_exp)
            buckets.append((delay, _synapse(bucket, unit)))
        return _DelayedSynapse(node, tuple(buckets))
    weight = node.weight_int.astype(np.int64)
    bound = formats.sum_bound(weight, unit)
    if isinstance(node, Dense) and bound >= FLOAT64_EXACT:
        raise GraphError(f"node {node.name!r}: sums up to {bound} are not exact in float64")
    dtype = np.float32 if bound < FLOAT32_EXACT else np.float64
    if isinstance(node, Conv2d):
        return _Synapse(node, torch.from_numpy(weight.astype(dtype)), bound)
    # Scaling every weight by a power of two keeps each partial sum exact: the product is then
    # a << 6 itself, with no pass over it.
    shifted = node.weight_exp >= 0 and _stays_in_int32(node, bound)
    scale = 2.0 ** (node.weight_exp + ACT_SHIFT) if shifted else 1.0
    return _Synapse(node, np.ascontiguousarray((weight.T * scale).astype(dtype)), bound, shifted)


def _stays_in_int32(node: Dense, bound: int) -> bool:
    """Whether Lava's int32 sum and shift of this synapse can never wrap: then the float
    product needs no wrap."""
    return bound << max(node.weight_exp, 0) < INT32_LIMIT


def _population(
    node: CubaLIF, shape: tuple[int, ...], recurrent: Dense | None = None
) -> _Population:
    return _Population(
        name=node.name,
        shape=shape,
        current_factor=_each(formats.current_kept(node.du), shape),
        voltage_factor=_each(formats.voltage_kept(node.dv), shape),
        threshold=_each(formats.threshold_value(node.vth), shape),
        reset_sub=_each(node.reset_sub, shape),
        bias=_bias_of(node.bias_mant, node.bias_exp, shape),
        recurrent=None if recurrent is None else _synapse(recurrent, node.max_spikes),
        max_spikes=node.max_spikes,
        synaptic_bias=_bias_of(node.synaptic_bias_int, ACT_SHIFT, shape),
        refractory=node.refractory,
        readout=node.readout,
        numpy_update=needs_numpy_update(node),
    )


# What the compiled update computes: Lava's LIF and the reset by subtraction, with one value of
# each parameter for the population. A population with any other field set (spike counts, a
# synaptic bias, a refractory step, a read-out, or a field added later), or with parameters
# that differ between its neurons, runs the numpy passes of `_update_reference`.
KERNEL_FIELDS = LIF_FIELDS | {"reset_subtract", "reset_sub"}


def needs_numpy_update(node: CubaLIF) -> bool:
    return bool(node.per_neuron) or any(
        name not in KERNEL_FIELDS for name, _, _ in set_fields(node)
    )


def _each(value: int | np.ndarray | None, shape: tuple[int, ...]) -> int | np.ndarray | None:
    """One number as it is; one per channel or neuron shaped (C, 1, 1) or (n,), in float64 as
    the states are (exact: every value is an integer below 2^24)."""
    if not isinstance(value, np.ndarray):
        return value
    return value.reshape(-1, *[1] * (len(shape) - 1)).astype(np.float64)


def _bias_of(mant: np.ndarray | None, exp: int, shape: tuple[int, ...]) -> np.ndarray | None:
    """mant << exp per channel (or neuron), shaped (C, 1, 1) or (n,)."""
    return None if mant is None else _each(mant.astype(np.int64) << exp, shape)


def _run_batch(
    layers: list[tuple[_Synapse, _Population]],
    payload: np.ndarray,
    T: int,
    rows: slice,
    recorder: _Recorder,
    resets: bool,
) -> None:
    """All S steps of one batch. Populations update last to first within a step, so each
    synapse still sees its source's spikes of the previous step. Population k + 1 (1-based)
    first receives the sample at step k + 2. Without `resets` it is silent before, so those
    steps are skipped; with them (biases charge it before, as on Lava) it runs from step 1 and
    is reset at Lava's LIFReset steps (`timing.reset_offset`)."""
    states = [
        _State.zeros(
            (len(payload), *population.shape),
            counts=population.max_spikes > 1,
            readout=population.readout,
        )
        for _, population in layers
    ]
    input_drives = _input_drives(layers[0][0], payload, T)
    lines = [
        _DelayLine(synapse) if isinstance(synapse, _DelayedSynapse) else None
        for synapse, _ in layers
    ]
    for step in range(1, steps_for(1, T, len(layers)) + 1):
        for k in reversed(range(len(layers))):
            if step < first_input_step(k) and not resets:
                continue  # nothing has reached population k + 1 yet: its state is still 0
            synapse, population = layers[k]
            if k == 0:
                drive = input_drives[step - first_input_step(0)] if in_window(step, 0, T) else None
            else:
                drive = _spike_drive(synapse, states[k - 1])
            new_sample = resets and step % T == reset_offset(k + 1, T)
            if lines[k] is not None:
                if new_sample:
                    # SampleDelayDense empties its buffer at the step before, once it has sent:
                    # what is pending came from before the sample reached the source
                    lines[k].clear()
                drive = lines[k].advance(drive)
            if new_sample:
                states[k].reset()
            if population.recurrent is not None:
                drive = _sum(drive, _spike_drive(population.recurrent, states[k]))
            _update(population, states[k], drive, recorder.voltages is not None)
            recorder.store(population.name, rows, step - 1, states[k])
            if in_window(step, k, T) and not population.readout:
                recorder.spike_counts[population.name] += states[k].fired
        recorder.store_output(rows, step - 1, states[-1])
    for (_, population), state in zip(layers, states, strict=True):
        recorder.count(population.name, state)


def _input_drives(synapse: _Synapse, payload: np.ndarray, T: int) -> list[np.ndarray]:
    """The first synapse's drive at each of the T input steps: one for a static payload
    (N, C, H, W), one per step for (N, C, H, W, T)."""
    if payload.ndim == 4:
        return [synapse.drive(payload)] * T
    return [synapse.drive(payload[..., t]) for t in range(T)]


def _sum(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """The sum of two drives, either of which may be None (zero), in float64: two float32
    drives, each exact, may sum beyond float32's 24 bits."""
    if a is None or b is None:
        return b if a is None else a
    return a.astype(np.float64) + b


def _spike_drive(synapse: _Synapse, source: _State) -> np.ndarray | None:
    """a << 6 from the source's last spikes, or None while it is silent."""
    return synapse.drive(source.spikes) if source.fired else None


@functools.cache
def population_kernel() -> ModuleType | None:
    """The compiled population update, or None (the numpy reference runs)."""
    return compiled("snn_deploy_population", KERNEL_SOURCE, KERNEL_ENV)


def _update(
    population: _Population, state: _State, drive: np.ndarray | None, record_crossing: bool
) -> None:
    """One Lava step of a population, in place, given its synaptic input a << 6 (None: zero)."""
    kernel = population_kernel()
    if kernel is None or population.numpy_update:
        _update_reference(population, state, drive, record_crossing)
        return
    empty = torch.empty(0)
    bias = population.bias
    wraps, saturations, state.fired = kernel.update(
        torch.from_numpy(state.u),
        torch.from_numpy(state.v),
        empty if drive is None else torch.from_numpy(np.ascontiguousarray(drive)),
        empty if bias is None else torch.from_numpy(bias.reshape(-1)),
        math.prod(population.shape[1:]) if len(population.shape) > 1 else 1,
        torch.from_numpy(state.spikes),
        torch.from_numpy(state.v_crossing) if record_crossing else empty,
        population.current_factor / DECAY_UNITY,
        population.voltage_factor / DECAY_UNITY,
        float(population.threshold),
        float(population.reset_sub or 0),
        population.reset_sub is not None,
        U_WRAP,
        float(STATE_LIMIT),
    )
    state.current_wraps += wraps
    state.voltage_saturations += saturations


def _update_reference(
    population: _Population, state: _State, drive: np.ndarray | None, record_crossing: bool
) -> None:
    """`_update` in numpy passes: the reference the compiled kernel mirrors."""
    u = _decayed(state.u, population.current_factor)
    if drive is not None:
        u += drive
    if population.synaptic_bias is not None:
        u += population.synaptic_bias
    state.current_wraps += _wrap_current(u)
    state.u[...] = u
    v = _decayed(state.v, population.voltage_factor)
    v += u
    if population.bias is not None:
        v += population.bias
    state.voltage_saturations += _saturate_voltage(v)
    if population.refractory:
        np.copyto(v, 0, where=state.spikes > 0)  # still the previous step's spikes
    if population.readout:
        _send_voltage(state, v, record_crossing)
    elif population.max_spikes > 1:
        _emit_counts(population, state, v, record_crossing)
    else:
        _emit_spikes(population, state, v, record_crossing)
    state.v[...] = v


def _send_voltage(state: _State, v: np.ndarray, record_crossing: bool) -> None:
    """A readout sends v as its graded spike; it never resets."""
    state.spikes[...] = v
    state.fired = int(np.count_nonzero(v))
    if record_crossing:
        state.v_crossing[...] = v


def _emit_spikes(population: _Population, state: _State, v: np.ndarray, record: bool) -> None:
    """Spikes where v exceeds the threshold, and the reset of v there (in place)."""
    fired = v > population.threshold
    state.spikes[...] = fired
    state.fired = int(np.count_nonzero(fired))
    if record:
        state.v_crossing[fired] = v[fired]
    if population.reset_sub is None:
        v[fired] = 0
    else:
        v -= np.where(fired, population.reset_sub, 0)


def _emit_counts(population: _Population, state: _State, v: np.ndarray, record: bool) -> None:
    """Spike counts: how many multiples of the threshold v exceeds, up to max_spikes; the
    reset subtracts reset_sub per spike, or zeroes v (in place). v and the threshold are
    integers below 2^24, so the float quotient's floor is the integer one."""
    counts = np.clip(np.floor((v - 1) / population.threshold), 0, population.max_spikes)
    state.spikes[...] = counts
    state.fired = int(counts.sum())
    fired = counts > 0
    if record:
        state.v_crossing[fired] = v[fired]
    if population.reset_sub is None:
        v[fired] = 0
    else:
        v -= counts * population.reset_sub


def _decayed(x: np.ndarray, factor: int | np.ndarray) -> np.ndarray:
    """tz(x * factor / 4096) in float64 (a factor per channel or neuron broadcasts). factor /
    4096 is exact in binary and |x * factor| stays below 2^53, so the float product is the
    exact rational and trunc is Lava's shift."""
    if np.ndim(factor) == 0 and factor == DECAY_UNITY:
        return x.astype(np.float64)
    return np.trunc(x * (factor / DECAY_UNITY))


def _wrap_current(x: np.ndarray) -> int:
    """Lava's int32 sum then its single 24-bit wrap, in place; how many values changed."""
    count = _count_outside(x, -U_WRAP + 1, U_WRAP)
    if count:
        wrapped = _wrap32(x.astype(np.int64))
        wrapped[wrapped > U_WRAP] -= 2 * U_WRAP
        wrapped[wrapped <= -U_WRAP] += 2 * U_WRAP
        x[...] = wrapped
    return count


def _saturate_voltage(v: np.ndarray) -> int:
    """Clip to +-(2^23 - 1) in place; how many values were clipped."""
    count = _count_outside(v, -STATE_LIMIT, STATE_LIMIT)
    if count:
        np.clip(v, -STATE_LIMIT, STATE_LIMIT, out=v)
    return count


def _count_outside(x: np.ndarray, low: int, high: int) -> int:
    """How many values lie outside [low, high]; just two reductions when none does."""
    if x.min() >= low and x.max() <= high:
        return 0
    return int(np.count_nonzero((x < low) | (x > high)))


def _wrap32(x: np.ndarray) -> np.ndarray:
    """x modulo 2^32 as a signed 32-bit value (numpy's int32 overflow), in int64."""
    return ((x + INT32_LIMIT) & (2 * INT32_LIMIT - 1)) - INT32_LIMIT
