"""The Loihi 2 plan as people read it: the compiler-style table per layer, totals, whether it fits
(or every broken rule), the activity and cost per inference and NeuroBench's metrics; as one JSON
object (`to_json`), as text (`table`) and as a plot (`plot_plan`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from targets.loihi2.activity import Activity, measure
from targets.loihi2.chip_rules import violations
from targets.loihi2.cost import Cost, estimate
from targets.loihi2.partition import Partition, partition
from targets.loihi2.plan import PlanError, plan
from toolchain.atomic import atomic_path
from toolchain.ir import Graph

STATE_BYTES_PER_NEURON = 6  # u and v, 24 bits each
ACTIVITY_SAMPLES = 100  # activity is counted on the first samples unless a user says otherwise


@dataclass(frozen=True)
class ChipPlan:
    placed: Partition
    violations: list[PlanError]
    activity: Activity | None = None
    cost: Cost | None = None

    @property
    def fits(self) -> bool:
        return not self.violations

    def neurobench(self) -> dict[str, float]:
        """NeuroBench's footprint and sparsities, and with activity its synaptic operations."""
        layers = self.placed.layers
        weights = sum(
            math.prod(block.synapse.weight_int.shape) for block in self.placed.plan.blocks
        )
        zeros = sum(int((block.synapse.weight_int == 0).sum()) for block in self.placed.plan.blocks)
        metrics: dict[str, float] = {
            "footprint_bytes": sum(
                math.ceil(layer.synapses * (layer.weight_bits + layer.delay_bits) / 8)
                + layer.neurons * STATE_BYTES_PER_NEURON
                + math.ceil(layer.neurons * layer.per_neuron_bits / 8)
                for layer in layers
            ),
            "connection_sparsity": zeros / weights if weights else 0.0,
        }
        if self.activity is not None:
            activity = self.activity
            updates = activity.total("neuron_updates")
            metrics["activation_sparsity"] = 1 - activity.total("output_spikes") / updates
            metrics["dense_synaptic_ops"] = activity.total("dense_synaptic_ops")
            metrics["effective_synaptic_ops"] = activity.total("effective_synaptic_ops")
        return metrics

    def to_json(self) -> dict[str, object]:
        layers = []
        events = self.activity.layers if self.activity else [None] * len(self.placed.layers)
        for layer, act in zip(self.placed.layers, events, strict=True):
            row: dict[str, object] = {
                "name": layer.name,
                "kind": layer.kind,
                "neurons": layer.neurons,
                "cores": layer.cores,
                "axons_in": layer.axons_in,
                "neuron_groups": layer.neuron_groups,
                "neurons_per_core": layer.neurons_per_core,
                "synapse_words_per_core": layer.synapse_words,
                "axon_map": layer.axon_map,
                "synapses": layer.synapses,
                "synaptic_memory_bits": layer.synaptic_memory_bits,
                "weight_bits": layer.weight_bits,
                "delay_bits": layer.delay_bits,
                "tile": None if layer.tile is None else list(layer.tile),
                "parameter_profiles": layer.profiles,
                "per_neuron_parameter_bits": layer.per_neuron_bits,
            }
            if act is not None:
                row["spikes_per_inference"] = act.output_spikes
                row["synaptic_ops_per_inference"] = act.synaptic_ops
                row["input_messages_per_inference"] = act.input_messages
                row["messages_out_per_inference"] = act.messages_out
                row["neuron_updates_per_inference"] = act.neuron_updates
            layers.append(row)
        result: dict[str, object] = {
            "graph": self.placed.plan.graph.name,
            "layers": layers,
            "cores": self.placed.cores,
            "chips": self.placed.chips,
            "fits": self.fits,
            "violations": [
                {
                    "rule": v.rule,
                    "layer": v.block,
                    "value": v.value,
                    "limit": v.limit,
                    "message": str(v),
                }
                for v in self.violations
            ],
            "neurobench": self.neurobench(),
        }
        if self.activity is not None and self.cost is not None:
            result["samples"] = self.activity.samples
            result["cost_model"] = self.cost.model
            result["energy_per_inference_j"] = self.cost.energy_per_inference_j
            result["dynamic_energy_per_inference_j"] = self.cost.dynamic_energy_per_inference_j
            result["time_per_step_s"] = self.cost.time_per_step_s
            result["inferences_per_s"] = self.cost.inferences_per_s
        return result

    def table(self) -> str:
        """The compiler's per-core columns per layer, then totals, fit and cost."""
        head = (
            f"{'layer':<16} {'AxonIn':>7} {'NeuronGr':>8} {'Neurons':>8} {'Synapses':>9} "
            f"{'AxonMap':>8} {'Cores':>6}  tile"
        )
        if self.activity:
            head += f"{'':12} {'spikes/inf':>11} {'synops/inf':>11}"
        lines = [head]
        events = self.activity.layers if self.activity else [None] * len(self.placed.layers)
        for layer, act in zip(self.placed.layers, events, strict=True):
            tile = "" if layer.tile is None else "Conv({}, {}, {})".format(*layer.tile)
            line = (
                f"{layer.name:<16} {layer.axons_in:>7} {layer.neuron_groups:>8} "
                f"{layer.neurons_per_core:>8} {layer.synapse_words:>9} {layer.axon_map:>8} "
                f"{layer.cores:>6}  {tile:<16}"
            )
            if act is not None:
                line += f"{act.output_spikes:>11.1f} {act.synaptic_ops:>11.0f}"
            lines.append(line.rstrip())
        lines.append(f"total: {self.placed.cores} neuro cores on {self.placed.chips} chip(s)")
        lines += [
            f"{layer.name}: parameters per neuron, {layer.per_neuron_bits} bits each, "
            f"{layer.profiles} distinct profiles"
            for layer in self.placed.layers
            if layer.per_neuron_bits
        ]
        lines += [
            f"{layer.name}: synaptic delays, {layer.delay_bits} bits beside each weight (modelled)"
            for layer in self.placed.layers
            if layer.delay_bits
        ]
        if self.fits:
            lines.append("fits Loihi 2: yes")
        else:
            lines.append("fits Loihi 2: NO")
            lines += [f"  {v}" for v in self.violations]
        if self.cost is not None and self.activity is not None:
            lines.append(
                f"per inference ({self.activity.samples} samples, {self.cost.model}): "
                f"{self.cost.energy_per_inference_j * 1e6:.3g} uJ "
                f"({self.cost.dynamic_energy_per_inference_j * 1e6:.3g} uJ dynamic), "
                f"{self.cost.time_per_step_s * 1e6:.3g} us per step, "
                f"{self.cost.inferences_per_s:.4g} inferences/s"
            )
        return "\n".join(lines)


def chip_plan_of(graph: Graph, samples: np.ndarray | None = None) -> ChipPlan:
    """The Loihi 2 plan of a fixed-point graph; with samples, its activity and cost on them."""
    placed = partition(plan(graph))
    if samples is None:
        return ChipPlan(placed, violations(placed))
    activity = measure(placed, samples)
    return ChipPlan(placed, violations(placed), activity, estimate(placed, activity))


def plot_plan(chip_plan: ChipPlan, path: Path) -> Path:
    """plan.png: cores per layer and, with activity, synaptic operations per inference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = chip_plan.placed.layers
    names = [layer.name for layer in layers]
    panels = 2 if chip_plan.activity else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels + 1, 3.5), squeeze=False)
    axes[0][0].bar(names, [layer.cores for layer in layers], color="tab:blue")
    axes[0][0].set(ylabel="neuro cores", title=f"{chip_plan.placed.cores} cores in all")
    if chip_plan.activity:
        ops = [act.synaptic_ops for act in chip_plan.activity.layers]
        axes[0][1].bar(names, ops, color="tab:orange")
        axes[0][1].set(ylabel="synaptic ops per inference", title="activity")
    for axis in axes[0]:
        axis.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
