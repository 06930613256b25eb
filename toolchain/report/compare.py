"""Float against fixed point: the trained network and its quantised Graph on the same samples.

Per layer, spikes are compared time-aligned: population i (0-based) of the fixed-point graph
emits the float model's step j at Lava step i + 2 + j (one step of delay per synapse hop).
Agreement is 2 x matching / (float spikes + fixed spikes): 1 when the spike trains are equal,
0 when no spike matches (and 1 when neither side spikes). Where populations emit spike counts,
a neuron's step matches min(float count, fixed count) spikes.

`Comparison.add` takes two runs of the same samples (each: predictions and per-layer spikes on
the float time axis); `compare` produces them from the float side (a trained network, or a float
Graph such as an imported one, run by the float runner) and the reference simulator, batch by
batch. Plots are in `toolchain.report.plots`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from quantize.budget import Budget, blame, error_budget
from targets.loihi2.simulator import simulate
from targets.loihi2.timing import population_window
from toolchain.data.datasets import Split
from toolchain.ir import Graph, GraphError
from toolchain.ir.float_runner import run_float
from toolchain.ir.provenance import DEFAULT_PREDICTION
from toolchain.parallel import in_shards
from toolchain.report.divergence import Divergences, first_divergences
from toolchain.train.network import SpikingLayer, SpikingNetwork

BUDGET_SAMPLES = 1000  # samples the error budget runs on by default (every source, twice)


@dataclass
class LayerComparison:
    name: str
    neurons: int
    float_spikes: int = 0
    fixed_spikes: int = 0
    matching_spikes: int = 0
    current_wraps: int = 0
    voltage_saturations: int = 0
    readout: bool = False  # outputs its membrane: no spikes to agree on

    @property
    def agreement(self) -> float:
        total = self.float_spikes + self.fixed_spikes
        return 1.0 if total == 0 else 2 * self.matching_spikes / total


@dataclass
class Comparison:
    samples: int
    steps: int
    float_correct: int = 0
    fixed_correct: int = 0
    changed: list[dict[str, int]] = field(default_factory=list)  # predictions that differ
    layers: list[LayerComparison] = field(default_factory=list)
    divergences: Divergences | None = None  # where each sample first diverges
    budget: Budget | None = None  # which source of error causes it
    plots: list[Path] = field(default_factory=list)  # the PNGs written of it, if any

    def __post_init__(self) -> None:
        if self.divergences is None:
            self.divergences = Divergences([layer.name for layer in self.layers], self.steps)

    @property
    def float_accuracy(self) -> float:
        return self.float_correct / self.samples

    @property
    def fixed_accuracy(self) -> float:
        return self.fixed_correct / self.samples

    def rate(self, spikes: int, layer: LayerComparison) -> float:
        """Spikes per neuron per step."""
        return spikes / (layer.neurons * self.samples * self.steps)

    def to_json(self) -> dict[str, object]:
        layers = [
            {
                **asdict(layer),
                "agreement": layer.agreement,
                "float_rate": self.rate(layer.float_spikes, layer),
                "fixed_rate": self.rate(layer.fixed_spikes, layer),
            }
            for layer in self.layers
        ]
        return {
            "samples": self.samples,
            "float_accuracy": self.float_accuracy,
            "fixed_accuracy": self.fixed_accuracy,
            "changed_predictions": self.changed,
            "layers": layers,
            "first_divergence": self.divergences.to_json(),
            "error_budget": None if self.budget is None else self.budget.to_json(),
        }

    def table(self) -> str:
        lines = [
            f"samples {self.samples}: float accuracy {100 * self.float_accuracy:.2f} %, "
            f"fixed-point accuracy {100 * self.fixed_accuracy:.2f} %, "
            f"{len(self.changed)} predictions changed",
            f"{'layer':<10}{'neurons':>9}{'float spikes':>14}{'fixed spikes':>14}"
            f"{'agreement':>11}{'wraps':>8}{'saturated':>11}",
        ]
        for layer in self.layers:
            lines.append(
                f"{layer.name:<10}{layer.neurons:>9}{layer.float_spikes:>14}"
                f"{layer.fixed_spikes:>14}{layer.agreement:>11.4f}{layer.current_wraps:>8}"
                f"{layer.voltage_saturations:>11}"
            )
        budget = [] if self.budget is None else self.budget.lines()
        return "\n".join([*lines, *self.divergences.lines(), *budget])


@dataclass(frozen=True)
class Run:
    """One side of a comparison for a batch: predictions (N,) and every population's spikes,
    (N, *shape, T) on the float model's time axis; overflow counts where the side has them."""

    predictions: np.ndarray
    spikes: list[np.ndarray]
    current_wraps: list[int] | None = None
    voltage_saturations: list[int] | None = None


@dataclass
class Raster:
    """One sample's spikes per layer, float and fixed, each (neurons, T)."""

    sample: int
    float_spikes: list[np.ndarray]
    fixed_spikes: list[np.ndarray]


def compare(
    model: SpikingNetwork | Graph,
    graph: Graph,
    split: Split,
    *,
    batch_size: int = 500,
    progress: bool = False,
    workers: int = 1,
    budget_samples: int = BUDGET_SAMPLES,
) -> tuple[Comparison, Raster]:
    """Runs the float model (or float Graph) and the fixed-point graph on `split`, batch by
    batch; with workers > 1, shards of batches in that many processes (`toolchain.parallel`).
    Then, where fixed point diverges: the state at each changed prediction's first divergence,
    and the error budget (`quantize.budget`) over the first `budget_samples` samples
    (0: none) and of every changed prediction."""
    populations = graph.populations
    layers = (
        len(model.populations)
        if isinstance(model, Graph)
        else sum(1 for _ in _spiking_layers(model))
    )
    if len(populations) != layers:
        raise GraphError(
            f"graph {graph.name!r} has {len(populations)} populations, the network {layers}"
            " spiking layers: not the same network"
        )
    shapes = [graph.shapes()[graph.nodes.index(p)] for p in populations]
    result = Comparison(
        len(split),
        graph.T,
        layers=[
            LayerComparison(p.name, int(np.prod(shape)), readout=p.readout)
            for p, shape in zip(populations, shapes, strict=True)
        ],
    )
    raster = Raster(0, [], [])
    if not isinstance(model, Graph):
        model.eval()
    batches = math.ceil(len(split) / batch_size)

    def runs(first: int, stop: int) -> list[tuple[Run, Run]]:
        pieces = range(first * batch_size, min(stop * batch_size, len(split)), batch_size)
        images = [split.images[start : start + batch_size] for start in pieces]
        return [(_float_run(model, x, graph), _fixed_run(graph, x)) for x in images]

    # one batch per shard, so that a batch's spikes are let go once counted
    shards = (
        in_shards(runs, batches, workers, per_worker=math.ceil(batches / workers))
        if workers > 1
        else ((index, index + 1, runs(index, index + 1)) for index in range(batches))
    )
    with tqdm(total=len(split), desc="compare", unit="sample", disable=not progress) as bar:
        for first, _, pairs in shards:
            for index, (float_run, fixed_run) in enumerate(pairs, start=first):
                start = index * batch_size
                labels = split.labels[start : start + batch_size]
                add_runs(result, raster, float_run, fixed_run, labels, start)
                bar.update(len(labels))
    explain(result, model, graph, split, budget_samples, workers, progress)
    return result, raster


def explain(
    result: Comparison,
    model: SpikingNetwork | Graph,
    graph: Graph,
    split: Split,
    budget_samples: int,
    workers: int,
    progress: bool,
) -> None:
    """The state at the first divergences and the error budget, into `result`."""
    result.divergences.attach_states(graph, split.images)
    if not budget_samples:
        return

    def float_side(images: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        run = _float_run(model, images, graph)
        return run.spikes, run.predictions

    n = min(budget_samples, len(split))
    if progress:
        tqdm.write(f"error budget: {n} samples, one run per source of error", file=sys.stderr)
    result.budget = error_budget(
        graph, split.images[:n], split.labels[:n], float_side, workers=workers
    )
    changed = [c["index"] for c in result.changed]
    result.budget.blamed = blame(graph, split.images[changed], changed, float_side)


def _spiking_layers(model: SpikingNetwork):
    return (layer for layer in model.layers if isinstance(layer, SpikingLayer))


def _float_run(model: SpikingNetwork | Graph, images: np.ndarray, graph: Graph) -> Run:
    """The float side; a trained network predicts by the fixed graph's rule (its own, TSSL-BP's,
    unless the user chose another)."""
    if isinstance(model, Graph):
        run = run_float(model, images)
        return Run(run.predictions, [run.spikes[p.name] for p in model.populations])
    with torch.no_grad():
        output, spikes = model(torch.from_numpy(images), return_spikes=True)
    if graph.prediction == DEFAULT_PREDICTION:
        predictions = model.predict(output).numpy()
    else:
        predictions = graph.predict(spikes[-1].flatten(1, -2).numpy())
    return Run(predictions, [s.numpy() for s in spikes])


def _fixed_run(graph: Graph, images: np.ndarray) -> Run:
    fixed = simulate(graph, images, record=True)
    names = [p.name for p in graph.populations]
    return Run(
        fixed.predictions,
        [fixed.spikes[name][..., population_window(graph, i)] for i, name in enumerate(names)],
        [fixed.current_wraps[name] for name in names],
        [fixed.voltage_saturations[name] for name in names],
    )


def add_runs(
    result: Comparison,
    raster: Raster,
    float_run: Run,
    fixed_run: Run,
    labels: np.ndarray,
    offset: int,
) -> None:
    """Counts one batch of both runs (samples offset .. offset + N - 1) into `result`."""
    float_pred, fixed_pred = float_run.predictions, fixed_run.predictions
    result.float_correct += int((float_pred == labels).sum())
    result.fixed_correct += int((fixed_pred == labels).sum())
    for i in np.flatnonzero(float_pred != fixed_pred):
        result.changed.append(
            {
                "index": offset + int(i),
                "label": int(labels[i]),
                "float": int(float_pred[i]),
                "fixed": int(fixed_pred[i]),
            }
        )
    compared = [not layer.readout for layer in result.layers]
    divergences = first_divergences(float_run.spikes, fixed_run.spikes, compared)
    result.divergences.add(divergences, float_pred != fixed_pred, offset)
    for index, layer in enumerate(result.layers):
        f = float_run.spikes[index]  # 0/1, spike counts, or a readout's membrane
        q = fixed_run.spikes[index]
        if not layer.readout:
            f, q = f.astype(np.int64), q.astype(np.int64)
            layer.float_spikes += int(f.sum())
            layer.fixed_spikes += int(q.sum())
            layer.matching_spikes += int(np.minimum(f, q).sum())
        if fixed_run.current_wraps is not None:
            layer.current_wraps += fixed_run.current_wraps[index]
            layer.voltage_saturations += fixed_run.voltage_saturations[index]
        if offset == 0:
            raster.float_spikes.append(f[0].reshape(-1, result.steps) > 0)
            raster.fixed_spikes.append(q[0].reshape(-1, result.steps) > 0)
