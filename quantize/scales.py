"""Post-training quantisation: a lowered float Graph becomes integers, one scale per population,
against the number formats of the target (`targets.loihi2.formats`).

For each population the scale `lam` (integer voltage per float unit) is the largest that
  1. maps the largest incoming float weight to the weight range's end (254),
  2. keeps the threshold mantissa within 17 bits, and
  3. keeps the calibration set's currents and voltages within `headroom` of the 24-bit limit.
A population that emits spike counts keeps its bound up to SPIKE_COUNT_MAX (the 8 bits of its
graded spikes); a float bound beyond it (Sinabs: none) is capped there.
Dense synapses reach a smaller scale by a negative `weight_exp` (the sum is shifted), keeping
the full weight range; Conv synapses have no exponent in Lava, so their weights shrink instead.
With `min_weight_exp = 0` (for lava-dl's netx files, which store no dense exponent) dense
weights shrink too.

Input levels. The graded input payload round(x * levels) multiplies the first synapse's
weights, so the more levels, the smaller those weights must be for the same states. A Conv2d
first synapse has no exponent to make up for it: its input gets the largest power of two of
levels (at most the data's own) that leaves its weights at least MIN_FIRST_WEIGHTS (MNIST: 16
levels, weights up to about +-68, instead of 255 levels and +-4).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from quantize.calibration import calibration_ranges
from targets.loihi2.formats import (
    SPIKE_COUNT_MAX,
    STATE_LIMIT,
    WEIGHT_EXP_MAX,
    WEIGHT_EXP_MIN,
    WEIGHT_MAX,
    PerNeuron,
    PerNeuronInt,
    bias_integers,
    current_decay,
    input_unit,
    max_scale_for_bias,
    max_scale_for_threshold,
    per_output,
    quantize_weights,
    reset_amount,
    synaptic_bias_integers,
    threshold_mantissa,
    voltage_decay,
    weight_factor,
)
from toolchain.ir import Conv2d, Dense, Graph, GraphError, Node

DEFAULT_HEADROOM = 0.5  # of the 24-bit state range, left to the calibration set's largest state


@dataclass(frozen=True)
class LayerScale:
    """The quantisation choice for one population and its incoming synapse."""

    population: str
    synapse: str
    scale: float
    weight_exp: int
    limited_by: str  # "weights", "threshold" or "states"


@dataclass
class LayerReport:
    population: str
    synapse: str
    scale: float
    weight_exp: int
    limited_by: str
    du: int | list[int]  # a list: one per channel or neuron
    dv: int | list[int]
    vth: int | list[int]
    weight_min: int
    weight_max: int
    weights_clipped: int
    calibration_max_current: int  # largest |u| expected, in integer units
    calibration_max_voltage: int  # largest |v| expected, in integer units
    current_wraps: int = 0  # filled by the bit-accurate simulator on the calibration set
    voltage_saturations: int = 0
    biases_clipped: int = 0  # beyond bias_mant's 13 bits at exponent 7, or a's bias range
    max_spikes: int = 1  # a spike count's bound per step on the chip (1: plain spikes)


@dataclass
class QuantReport:
    calibration_samples: int
    headroom: float
    input_levels: int  # of the graded input payload, chosen here
    data_levels: int  # of the float graph's input (the data's own)
    layers: list[LayerReport] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def scales(self) -> list[LayerScale]:
        """The per-layer choices, to quantise other weights the same way (fine-tuning)."""
        return [
            LayerScale(r.population, r.synapse, r.scale, r.weight_exp, r.limited_by)
            for r in self.layers
        ]

    def record_overflows(self, current_wraps: dict[str, int], saturations: dict[str, int]) -> None:
        """Per layer, how often a simulation (of the calibration set) wrapped or saturated."""
        for layer in self.layers:
            layer.current_wraps = current_wraps[layer.population]
            layer.voltage_saturations = saturations[layer.population]

    @property
    def overflowing_layers(self) -> list[str]:
        return [r.population for r in self.layers if r.current_wraps or r.voltage_saturations]


def choose_scales(
    graph: Graph,
    ranges: dict[str, tuple[float, float]],
    headroom: float = DEFAULT_HEADROOM,
    min_weight_exp: int = WEIGHT_EXP_MIN,
) -> list[LayerScale]:
    """The largest admissible scale of every population, with the weight exponent to reach it."""
    choices = []
    for index, (synapse, population) in enumerate(graph.layers(recurrent=True)):
        unit = input_unit(graph.input.levels, index == 0)
        per_scale = weight_factor(1.0, population.tau_s, unit, 0)
        full_range = WEIGHT_MAX / (_largest(synapse.weight, per_scale) or float(np.max(per_scale)))
        state = max(ranges[population.name]) or 1e-12
        limits = {
            "threshold": max_scale_for_threshold(population.threshold),
            "states": headroom * STATE_LIMIT / state,
        }
        if population.bias is not None and np.any(population.bias):
            limits["bias"] = max_scale_for_bias(population.bias)
        cap_reason = min(limits, key=limits.get)
        cap = limits[cap_reason]
        exp = 0
        if isinstance(synapse, Dense) and full_range > cap:
            exp = min(0, max(min_weight_exp, math.floor(math.log2(cap / full_range))))
        scale = full_range * 2.0**exp
        reason = "weights"
        if scale > cap:
            scale, reason = cap, cap_reason
        choices.append(LayerScale(population.name, synapse.name, scale, exp, reason))
    return choices


def apply_scales(graph: Graph, scales: list[LayerScale]) -> tuple[Graph, list[LayerReport]]:
    """The fixed-point Graph for given scales, with what each layer's integers look like."""
    by_population = {s.population: s for s in scales}
    nodes: list[Node] = list(graph.nodes)
    reports = []
    for index, (synapse, population) in enumerate(graph.layers(recurrent=True)):
        choice = by_population[population.name]
        unit = input_unit(graph.input.levels, index == 0)
        factor = weight_factor(choice.scale, population.tau_s, unit, choice.weight_exp)
        weight_int, clipped = quantize_weights(synapse.weight, factor)
        position = nodes.index(synapse)
        if isinstance(synapse, Dense):
            nodes[position] = dataclasses.replace(
                synapse, weight_int=weight_int, weight_exp=choice.weight_exp
            )
        else:
            nodes[position] = Conv2d(
                synapse.name, synapse.weight, synapse.stride, synapse.padding, weight_int
            )
        recurrent = graph.recurrent_synapse(population)
        if recurrent is not None:
            rec, rec_clipped = _quantized_recurrent(recurrent, choice.scale, population.tau_s)
            nodes[nodes.index(recurrent)] = rec
            clipped += rec_clipped
        bias_mant, bias_exp, biases_clipped = None, 0, 0
        if population.bias is not None:
            bias_mant, bias_exp, biases_clipped = bias_integers(population.bias, choice.scale)
        synaptic_bias_int = None
        if population.synaptic_bias is not None:
            synaptic_bias_int, clipped_there = synaptic_bias_integers(
                population.synaptic_bias, choice.scale, population.tau_s
            )
            biases_clipped += clipped_there
        fixed = dataclasses.replace(
            population,
            du=current_decay(population.tau_s),
            dv=voltage_decay(population.tau_m),
            vth=threshold_mantissa(population.threshold, choice.scale),
            scale=choice.scale,
            reset_sub=(
                None
                if population.reset_subtract is None
                else reset_amount(population.reset_subtract, choice.scale)
            ),
            bias_mant=bias_mant,
            bias_exp=bias_exp,
            max_spikes=min(population.max_spikes, SPIKE_COUNT_MAX),
            synaptic_bias_int=synaptic_bias_int,
        )
        nodes[nodes.index(population)] = fixed
        reports.append(
            LayerReport(
                population.name,
                synapse.name,
                choice.scale,
                choice.weight_exp,
                choice.limited_by,
                _reported(fixed.du),
                _reported(fixed.dv),
                _reported(fixed.vth),
                int(weight_int.min()),
                int(weight_int.max()),
                clipped,
                0,
                0,
                biases_clipped=biases_clipped,
                max_spikes=fixed.max_spikes,
            )
        )
    return graph.with_nodes(tuple(nodes), graph.edges), reports


def _largest(weight: np.ndarray, factor: PerNeuron) -> float:
    """The largest |weight| times its output's factor: the largest integer weight, unrounded."""
    return float(np.abs(weight * per_output(factor, weight)).max(initial=0.0))


def _reported(value: PerNeuronInt) -> int | list[int]:
    """A report's du, dv or vth: the number, or each neuron's (JSON has no numpy arrays)."""
    return value.tolist() if isinstance(value, np.ndarray) else value


def _quantized_recurrent(synapse: Dense, scale: float, tau_s: PerNeuron) -> tuple[Dense, int]:
    """A population's recurrent Dense at its scale, with the exponent that puts its largest
    weight nearest the end of the range; and how many weights were clipped."""
    largest = _largest(synapse.weight, weight_factor(scale, tau_s, 1, 0))
    exp = 0 if largest == 0 else math.ceil(math.log2(largest / WEIGHT_MAX))
    exp = min(max(exp, WEIGHT_EXP_MIN), WEIGHT_EXP_MAX)
    weight_int, clipped = quantize_weights(synapse.weight, weight_factor(scale, tau_s, 1, exp))
    return dataclasses.replace(synapse, weight_int=weight_int, weight_exp=exp), clipped


MIN_FIRST_WEIGHTS = 64  # largest |weight| a Conv2d first synapse should reach: 7 bits and sign


def with_input_levels(graph: Graph, levels: int) -> Graph:
    """The same graph, its input sent with `levels` levels."""
    nodes = (dataclasses.replace(graph.input, levels=levels), *graph.nodes[1:])
    return graph.with_nodes(nodes, graph.edges)


def choose_input_levels(
    graph: Graph, ranges: dict[str, tuple[float, float]], headroom: float
) -> int:
    """The data's levels, or fewer for a Conv2d first synapse (see the module docstring)."""
    synapse, population = graph.layers(recurrent=True)[0]
    if not isinstance(synapse, Conv2d):
        return graph.input.levels
    candidates = [graph.input.levels]
    candidates += [2**k for k in range(7, 2, -1) if 2**k < graph.input.levels]
    for levels in candidates:
        scale = choose_scales(with_input_levels(graph, levels), ranges, headroom)[0].scale
        if _largest(synapse.weight, weight_factor(scale, population.tau_s, levels, 0)) >= (
            MIN_FIRST_WEIGHTS
        ):
            return levels
    return candidates[-1]


def quantize_graph(
    graph: Graph,
    calibration: np.ndarray,
    *,
    headroom: float = DEFAULT_HEADROOM,
    min_weight_exp: int = WEIGHT_EXP_MIN,
    workers: int = 1,
    levels: int | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> tuple[Graph, QuantReport]:
    """Post-training quantisation of a lowered float Graph on calibration images (N, C, H, W),
    calibrated in `workers` processes (or on `ranges` calibrated before).

    The fixed graph's input has `levels` levels, by default the data's or fewer
    (`choose_input_levels`)."""
    if not graph.is_lowered:
        raise GraphError("quantise a lowered graph: fold pooling and flatten first (lower())")
    if ranges is None:
        ranges = calibration_ranges(graph, calibration, workers)
    if levels is None:
        levels = choose_input_levels(graph, ranges, headroom)
    sent = with_input_levels(graph, levels)
    fixed, layers = apply_scales(sent, choose_scales(sent, ranges, headroom, min_weight_exp))
    for report in layers:
        current, voltage = ranges[report.population]
        report.calibration_max_current = round(current * report.scale)
        report.calibration_max_voltage = round(voltage * report.scale)
    report = QuantReport(len(calibration), headroom, levels, graph.input.levels, layers)
    return fixed, report
