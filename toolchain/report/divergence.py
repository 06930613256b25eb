"""Where fixed point first leaves float: for every sample, the first (step, layer) at which a
population's fixed-point spikes differ from the float ones, on the float time axis (the timing
model's alignment, `toolchain.report.compare`), and the neurons that differ there.

"First" is causal order: a layer's step j is computed from the layer before at the same step
j (the float model has no delay between layers), so divergences are ordered by step, then by
layer; everything before it agrees on both sides. A read-out's membrane is not compared (float
and integer membranes never match exactly); a sample whose spikes agree everywhere has none.
Per layer, a histogram of the steps at which samples first diverge there; per changed
prediction, its first divergence (the list is ordered earliest first: the worst samples).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from targets.loihi2.relaxed import SOURCES, simulate_relaxed
from toolchain.ir import Graph

SHOWN_NEURONS = 8  # neurons listed per divergence
STATED = 200  # changed predictions whose state at the divergence is reported, earliest first


@dataclass(frozen=True)
class FirstDivergence:
    sample: int
    layer: int  # population index
    step: int  # on the float time axis, 0-based
    neurons: tuple[int, ...]  # flat indices in the population's (C, H, W) order, the first few
    differing: int  # how many neurons differ at that step
    state: dict[str, float] | None = None  # the first neuron's, both sides (`state_at`)


def first_divergences(
    float_spikes: list[np.ndarray], fixed_spikes: list[np.ndarray], compared: list[bool]
) -> list[FirstDivergence | None]:
    """Per sample of a batch (spikes per layer, (N, *shape, T)), its first divergence."""
    samples = len(float_spikes[0])
    found: list[FirstDivergence | None] = [None] * samples
    for layer, (f, q) in enumerate(zip(float_spikes, fixed_spikes, strict=True)):
        if not compared[layer]:
            continue
        differ = (f != q).reshape(samples, -1, f.shape[-1])  # (N, neurons, T)
        steps_differing = differ.any(axis=1)
        for n in np.flatnonzero(steps_differing.any(axis=1)):
            step = int(steps_differing[n].argmax())
            current = found[n]
            if current is not None and (current.step, current.layer) <= (step, layer):
                continue
            neurons = np.flatnonzero(differ[n, :, step])
            shown = tuple(int(i) for i in neurons[:SHOWN_NEURONS])
            found[n] = FirstDivergence(int(n), layer, step, shown, len(neurons))
    return found


@dataclass
class Divergences:
    """First divergences over a comparison's samples."""

    layers: list[str]
    steps: int
    diverging: int = 0  # samples with any divergence
    histogram: list[list[int]] = field(default_factory=list)  # per layer, per step
    changed: list[FirstDivergence] = field(default_factory=list)  # of changed predictions

    def __post_init__(self) -> None:
        self.histogram = self.histogram or [[0] * self.steps for _ in self.layers]

    def add(self, batch: list[FirstDivergence | None], changed: np.ndarray, offset: int) -> None:
        """One batch's divergences (samples offset ..); `changed` marks changed predictions."""
        for divergence in batch:
            if divergence is None:
                continue
            self.diverging += 1
            self.histogram[divergence.layer][divergence.step] += 1
            if changed[divergence.sample]:
                self.changed.append(replace(divergence, sample=offset + divergence.sample))

    def attach_states(self, graph: Graph, images: np.ndarray) -> None:
        """The state at the first divergence of the earliest STATED changed predictions (images:
        the compared samples)."""
        worst = self.worst()[:STATED]
        stated = {d.sample: d for d in states_at(graph, images, worst)}
        self.changed = [stated.get(d.sample, d) for d in self.changed]

    def worst(self) -> list[FirstDivergence]:
        """Changed predictions, those diverging earliest first."""
        return sorted(self.changed, key=lambda d: (d.step, d.layer, d.sample))

    def to_json(self) -> dict[str, object]:
        return {
            "samples_diverging": self.diverging,
            "per_layer": [
                {"layer": name, "first_divergence_steps": counts}
                for name, counts in zip(self.layers, self.histogram, strict=True)
            ],
            "changed_predictions": [
                {
                    "index": d.sample,
                    "layer": self.layers[d.layer],
                    "step": d.step,
                    "neurons": list(d.neurons),
                    "differing_neurons": d.differing,
                    **({"state": d.state} if d.state else {}),
                }
                for d in self.worst()
            ],
        }

    def lines(self, shown: int = 5) -> list[str]:
        """For the text table: where samples first diverge, and the earliest changed ones."""
        where = ", ".join(
            f"{name} {sum(counts)}"
            for name, counts in zip(self.layers, self.histogram, strict=True)
        )
        lines = [f"first divergence (samples): {where}; {self.diverging} diverge in all"]
        for d in self.worst()[:shown]:
            lines.append(
                f"  changed sample {d.sample}: {self.layers[d.layer]} step {d.step}, "
                f"{d.differing} neurons (first {list(d.neurons)})"
            )
            if d.state:
                s = d.state
                lines.append(
                    f"    neuron {d.neurons[0]}: float v {s['float_voltage']:.4f} (margin "
                    f"{s['margin']:+.4f} to threshold {s['threshold']:.4f}), fixed v "
                    f"{s['fixed_voltage']:.4f}; current float {s['float_current']:.4f}, fixed "
                    f"{s['fixed_current']:.4f}"
                )
        return lines


def states_at(
    graph: Graph, images: np.ndarray, found: list[FirstDivergence]
) -> list[FirstDivergence]:
    """Each divergence with the state of its first neuron at its step, in float units: the float
    network's current and voltage (before the reset; the all-exact relaxed run, float64), the
    fixed-point ones divided by the scale, the threshold on both sides, and the margin, the float
    voltage minus its threshold (a spike where positive)."""
    if not found:
        return []
    rows = np.array([d.sample for d in found])
    fixed = simulate_relaxed(graph, images[rows], states=True)
    exact = simulate_relaxed(graph, images[rows], set(SOURCES), states=True)
    stated = []
    for n, d in enumerate(found):
        population = graph.populations[d.layer]
        neurons = int(np.prod(fixed.currents[d.layer].shape[1:-1]))
        threshold = float(_of_neuron(population.threshold, d.neurons[0], neurons))
        vth = int(_of_neuron(population.vth, d.neurons[0], neurons))
        float_voltage = _at(exact.voltages, n, d) / population.scale
        state = {
            "float_current": _at(exact.currents, n, d) / population.scale,
            "float_voltage": float_voltage,
            "fixed_current": _at(fixed.currents, n, d) / population.scale,
            "fixed_voltage": _at(fixed.voltages, n, d) / population.scale,
            "threshold": threshold,
            "fixed_threshold": (vth << 6) / population.scale,
            "margin": float_voltage - threshold,
        }
        stated.append(replace(d, state=state))
    return stated


def _at(values: list[np.ndarray], n: int, d: FirstDivergence) -> float:
    """Row n's value of the divergence's layer, first neuron and step."""
    flat = values[d.layer][n].reshape(-1, values[d.layer].shape[-1])
    return float(flat[d.neurons[0], d.step])


def _of_neuron(value: float | np.ndarray, neuron: int, neurons: int) -> float:
    """A population's parameter for one neuron (flat index): one for all, or per channel or
    neuron."""
    if np.ndim(value) == 0:
        return value
    return value[neuron // (neurons // len(value))].item()  # len(value): channels or neurons
