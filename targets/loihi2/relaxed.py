"""The reference simulator with its sources of quantisation error switchable: a fixed-point Graph
run as Lava runs it, except that each source named in `exact` is put back to the float model's
exact arithmetic. With none exact it gives the bit-accurate simulator's spikes; with all of
them, the float network's (both tested). What it is for: `quantize.budget` runs it with
one source at a time to say which choice of the quantisation makes fixed point leave float.

It runs on the float time axis (population i's step j here is Lava's column i + 1 + j, as
`timing.population_window` aligns them), in float64, in integer units: a population of scale
`lam` holds lam times the float current and membrane. Each source, quantised and exact
(`formats` has the arithmetic of each):

- input: the graded payload round(x * levels), or x * levels;
- weights: W_int, or W times the synapse's weight factor (lam / (64 tau_s unit 2^weight_exp)),
  with the dense sum shifted by weight_exp without flooring;
- decays: the 12-bit fractions kept, (4096 - du - 1) / 4096 and (4096 - dv) / 4096, or
  1 - 1/tau_s and 1 - 1/tau_m;
- truncation: the decayed state truncated toward zero, or not;
- overflow: Lava's int32 sums, the 24-bit wrap of the current and of a convolution's sum and
  the saturation of the voltage, or none;
- biases: bias_mant << bias_exp (and a synaptic bias's integer << 6), or lam times the bias
  (lam / tau_s times the synaptic bias);
- threshold: vth << 6 and reset_sub, or lam times the threshold and the reset amount.

A spike count's cap (`formats.SPIKE_COUNT_MAX`) is not a switch: the fixed graph keeps only the
capped bound. The bit-exact `simulator` is not touched by any of this.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from targets.loihi2 import formats
from targets.loihi2.formats import ACT_SHIFT, DECAY_UNITY, INT32_LIMIT, STATE_LIMIT, U_WRAP
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph
from toolchain.ir.float_runner import apply_node

SOURCES = {
    "input": "the input at full precision instead of round(x * levels)",
    "weights": "weights in float at the integer scale instead of 8-bit mantissas",
    "decays": "decays exact instead of 12-bit fractions",
    "truncation": "no truncation toward zero in the decays",
    "overflow": "no int32 or 24-bit wrap of the current, no saturation of the voltage",
    "biases": "biases exact instead of 13-bit mantissas",
    "threshold": "threshold and reset amount not rounded",
}


@dataclass(frozen=True)
class RelaxedResult:
    spikes: list[np.ndarray]  # per population (N, *shape, T): spikes, counts, or a readout's v
    predictions: np.ndarray  # (N,) by the graph's prediction rule
    currents: list[np.ndarray] | None = None  # u per population, in integer units (`states`)
    voltages: list[np.ndarray] | None = None  # v before the reset, in integer units
    voltages_after_reset: list[np.ndarray] | None = None
    current_wraps: list[int] | None = None  # per population, where overflow is quantised
    voltage_saturations: list[int] | None = None


def sources_of(graph: Graph) -> list[str]:
    """The sources of error this fixed-point graph has (biases only where a population has one)."""
    biased = any(p.bias is not None or p.synaptic_bias is not None for p in graph.populations)
    return [s for s in SOURCES if s != "biases" or biased]


def simulate_relaxed(
    graph: Graph,
    images: np.ndarray,
    exact: frozenset[str] | set[str] = frozenset(),
    *,
    states: bool = False,
    device: str | torch.device = "cpu",
) -> RelaxedResult:
    """Runs the fixed-point graph on images (N, C, H, W) or (N, T, C, H, W) in [0, 1] with the
    sources in `exact` put back to float, on `device`; with `states`, also every population's u
    and v."""
    unknown = set(exact) - set(SOURCES)
    if unknown:
        raise ValueError(f"sources {sorted(unknown)}; accepted: {', '.join(SOURCES)}")
    exact = frozenset(exact)
    x = _input(graph, images, "input" in exact).to(device)
    runs = []
    for index, (synapse, population) in enumerate(graph.layers(recurrent=True)):
        unit = formats.input_unit(graph.input.levels, index == 0)
        weight = _weights(synapse, population, unit, exact).to(device)
        with torch.no_grad(), _exact_convolutions(x.device):
            drive = _drive(synapse, x, weight, exact)
            recurrent = graph.recurrent_synapse(population)
            run = _run_population(population, drive, recurrent, exact, states)
        runs.append(run)
        x = run.out
    spikes = [run.out.cpu().numpy() for run in runs]
    output = spikes[-1]
    if graph.populations[-1].readout:
        output = output / graph.populations[-1].scale  # the membrane in float units
    predictions = graph.predict(output.reshape(len(output), -1, graph.T))
    wraps = [run.wraps for run in runs]
    saturations = [run.saturations for run in runs]
    if not states:
        return RelaxedResult(
            spikes, predictions, current_wraps=wraps, voltage_saturations=saturations
        )
    u, v, after = ([series(run).cpu().numpy() for run in runs] for series in _STATES)
    return RelaxedResult(spikes, predictions, u, v, after, wraps, saturations)


def _exact_convolutions(device: torch.device) -> contextlib.AbstractContextManager:
    """No algorithm that is not exact on integer-valued operands: NNPACK (Winograd, FFT) on the
    CPU, cuDNN (which may pick FFT or Winograd) on a GPU; torch's own kernels only reorder sums."""
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=False)
    return torch.backends.nnpack.flags(enabled=False)


def _input(graph: Graph, images: np.ndarray, exact: bool) -> torch.Tensor:
    """The first synapse's input (N, C, H, W, T) in integer units: x * levels, rounded unless
    exact."""
    sent = graph.input.feed(np.asarray(images, np.float64)) * graph.input.levels
    if not exact:
        sent = np.rint(sent)
    x = torch.from_numpy(sent)
    if x.ndim == 5:
        return x.movedim(1, -1)
    return x.unsqueeze(-1).expand(*x.shape, graph.T)


def _weights(
    synapse: Dense | Conv2d, population: CubaLIF, unit: int, exact: frozenset[str]
) -> torch.Tensor:
    """The synapse's weights: its integers, or its float weights at the integer scale."""
    if "weights" not in exact:
        return torch.from_numpy(synapse.weight_int.astype(np.float64))
    exp = synapse.weight_exp if isinstance(synapse, Dense) else 0
    factor = formats.weight_factor(population.scale, population.tau_s, unit, exp)
    weight = synapse.weight.astype(np.float64)
    return torch.from_numpy(weight * formats.per_output(factor, weight))


def _drive(
    synapse: Dense | Conv2d, x: torch.Tensor, weight: torch.Tensor, exact: frozenset[str]
) -> torch.Tensor:
    """u's input from the synapse, a << 6, for inputs x (time last)."""
    return _shifted(synapse, apply_node(synapse, x, weight), exact)


def _shifted(synapse: Dense | Conv2d, total: torch.Tensor, exact: frozenset[str]) -> torch.Tensor:
    """A synapse's sum as Lava hands it to u: wrapped (int32 for a Dense, 24 bits for a Conv),
    shifted by a Dense's weight_exp (floored when negative), times 64."""
    overflow = "overflow" not in exact
    if isinstance(synapse, Conv2d):
        return (_wrap(total, U_WRAP) if overflow else total) * (1 << ACT_SHIFT)
    if overflow:
        total = _wrap(total, INT32_LIMIT)
    exp = synapse.weight_exp
    shifted = total * 2.0**exp
    if exp < 0 and "weights" not in exact:
        shifted = torch.floor(shifted)
    if exp > 0 and overflow:
        shifted = _wrap(shifted, INT32_LIMIT)
    return shifted * (1 << ACT_SHIFT)


def _wrap(x: torch.Tensor, limit: int) -> torch.Tensor:
    """x modulo 2 limit into [-limit, limit)."""
    return torch.remainder(x + limit, 2 * limit) - limit


@dataclass(frozen=True)
class _Constants:
    """A population's arithmetic with some sources exact, each shaped to broadcast over a step."""

    current_kept: object
    voltage_kept: object
    threshold: object
    reset: object | None  # subtracted per spike; None: v = 0
    bias: object  # added to v
    synaptic_bias: object  # added to u


def _constants(node: CubaLIF, step: torch.Tensor, exact: frozenset[str]) -> _Constants:
    def shaped(value: object) -> object:
        if not isinstance(value, np.ndarray):
            return value
        values = torch.from_numpy(value.astype(np.float64)).to(step.device)
        return values.reshape(-1, *[1] * (step.ndim - 2))

    lam = node.scale
    decays = "decays" in exact
    current_kept = (
        1.0 - 1.0 / np.asarray(node.tau_s, np.float64)
        if decays
        else formats.current_kept(node.du) / DECAY_UNITY
    )
    voltage_kept = (
        1.0 - 1.0 / np.asarray(node.tau_m, np.float64)
        if decays
        else formats.voltage_kept(node.dv) / DECAY_UNITY
    )
    rounded = "threshold" not in exact
    threshold = (
        formats.threshold_value(node.vth) if rounded else lam * np.asarray(node.threshold, float)
    )
    reset = None
    if node.reset_subtract is not None:
        reset = node.reset_sub if rounded else lam * np.asarray(node.reset_subtract, float)
    bias, synaptic_bias = 0.0, 0.0
    if "biases" in exact:
        if node.bias is not None:
            bias = lam * node.bias.astype(np.float64)
        if node.synaptic_bias is not None:
            synaptic_bias = lam * node.synaptic_bias.astype(np.float64) / node.tau_s
    else:
        if node.bias_mant is not None:
            bias = node.bias_mant.astype(np.int64) << node.bias_exp
        if node.synaptic_bias_int is not None:
            synaptic_bias = node.synaptic_bias_int.astype(np.int64) << ACT_SHIFT
    return _Constants(
        *(shaped(_scalar(v)) for v in (current_kept, voltage_kept, threshold)),
        None if reset is None else shaped(_scalar(reset)),
        shaped(bias),
        shaped(synaptic_bias),
    )


def _scalar(value: object) -> object:
    """A 0-d array as a Python float, so that it broadcasts as one number."""
    return float(value) if np.ndim(value) == 0 else np.asarray(value)


@dataclass
class _Run:
    """A population over all steps: what it sends, its states and its overflows."""

    out: torch.Tensor  # (N, *shape, T): spikes, counts or a readout's v
    u: list[torch.Tensor] = field(default_factory=list)  # per step
    v: list[torch.Tensor] = field(default_factory=list)  # before the reset
    v_after: list[torch.Tensor] = field(default_factory=list)
    wraps: int = 0
    saturations: int = 0


_STATES = (
    lambda run: torch.stack(run.u, -1),
    lambda run: torch.stack(run.v, -1),
    lambda run: torch.stack(run.v_after, -1),
)


def _run_population(
    node: CubaLIF,
    drive: torch.Tensor,
    recurrent: Dense | None,
    exact: frozenset[str],
    keep_states: bool,
) -> _Run:
    """The population over all steps of its drive (N, *shape, T); with `keep_states`, its u
    and v at every step."""
    c = _constants(node, drive[..., 0], exact)
    truncate = "truncation" not in exact
    overflow = "overflow" not in exact
    rec_weight = None
    if recurrent is not None:
        rec_weight = _weights(recurrent, node, 1, exact).to(drive.device)  # own spikes: unit 1
    u = torch.zeros_like(drive[..., 0])
    v = torch.zeros_like(u)
    s = torch.zeros_like(u)
    run, out = _Run(drive), []
    for t in range(drive.shape[-1]):
        u = _decay(u, c.current_kept, truncate) + drive[..., t] + c.synaptic_bias
        if rec_weight is not None:
            u = u + _shifted(recurrent, (s.flatten(1) @ rec_weight.T).reshape(u.shape), exact)
        if overflow:
            wrapped = _wrap_once(_wrap(u, INT32_LIMIT))
            run.wraps += int((wrapped != u).sum())
            u = wrapped
        v = _decay(v, c.voltage_kept, truncate) + u + c.bias
        if overflow:
            run.saturations += int((v.abs() > STATE_LIMIT).sum())
            v = v.clamp(-STATE_LIMIT, STATE_LIMIT)
        if node.refractory:
            v = torch.where(s > 0, 0.0, v)
        if keep_states:
            run.u.append(u)
            run.v.append(v)
        if node.readout:
            s = v.clone()
        else:
            s, v = _fire(node, v, c)
        if keep_states:
            run.v_after.append(v)
        out.append(s)
    run.out = torch.stack(out, -1)
    return run


def _decay(x: torch.Tensor, kept: object, truncate: bool) -> torch.Tensor:
    decayed = x * kept
    return torch.trunc(decayed) if truncate else decayed


def _wrap_once(u: torch.Tensor) -> torch.Tensor:
    """Lava's single 24-bit wrap: u > 2^23 -> u - 2^24, u <= -2^23 -> u + 2^24."""
    u = torch.where(u > U_WRAP, u - 2 * U_WRAP, u)
    return torch.where(u <= -U_WRAP, u + 2 * U_WRAP, u)


def _fire(node: CubaLIF, v: torch.Tensor, c: _Constants) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes (or counts) of v and v after the reset."""
    if node.max_spikes > 1:
        s = (torch.ceil(v / c.threshold) - 1).clamp(0, node.max_spikes)
    else:
        s = (v > c.threshold).to(v.dtype)
    if c.reset is not None:
        return s, v - s * c.reset
    return s, torch.where(s > 0, 0.0, v)
