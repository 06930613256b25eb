"""Float against fixed point: the trained network and its quantised Graph on the same samples.

Per layer, spikes are compared time-aligned: population i (0-based) of the fixed-point graph
emits the float model's step j at Lava step i + 2 + j (one step of delay per synapse hop).
Agreement is 2 x matching / (float spikes + fixed spikes): 1 when the spike trains are equal,
0 when no spike matches (and 1 when neither side spikes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from targets.reference import population_window, simulate
from toolchain.atomic import atomic_path
from toolchain.datasets import Split
from toolchain.graph import Graph, GraphError
from toolchain.network import SpikingLayer, SpikingNetwork


@dataclass
class LayerComparison:
    name: str
    neurons: int
    float_spikes: int = 0
    fixed_spikes: int = 0
    matching_spikes: int = 0
    current_wraps: int = 0
    voltage_saturations: int = 0

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
        return "\n".join(lines)


@dataclass
class Raster:
    """One sample's spikes per layer, float and fixed, each (neurons, T)."""

    sample: int
    float_spikes: list[np.ndarray]
    fixed_spikes: list[np.ndarray]


def compare(
    model: SpikingNetwork,
    graph: Graph,
    split: Split,
    *,
    batch_size: int = 500,
    progress: bool = False,
) -> tuple[Comparison, Raster]:
    """Runs the float model and the fixed-point graph on `split`, batch by batch."""
    populations = graph.populations
    layers = sum(1 for _ in _spiking_layers(model))
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
            LayerComparison(p.name, int(np.prod(shape)))
            for p, shape in zip(populations, shapes, strict=True)
        ],
    )
    raster = Raster(0, [], [])
    model.eval()
    with tqdm(total=len(split), desc="compare", unit="sample", disable=not progress) as bar:
        for start in range(0, len(split), batch_size):
            images = split.images[start : start + batch_size]
            labels = split.labels[start : start + batch_size]
            _compare_batch(model, graph, images, labels, start, result, raster)
            bar.update(len(images))
    return result, raster


def _spiking_layers(model: SpikingNetwork):
    return (layer for layer in model.layers if isinstance(layer, SpikingLayer))


def _compare_batch(
    model: SpikingNetwork,
    graph: Graph,
    images: np.ndarray,
    labels: np.ndarray,
    offset: int,
    result: Comparison,
    raster: Raster,
) -> None:
    with torch.no_grad():
        output, float_spikes = model(torch.from_numpy(images), return_spikes=True)
    float_pred = model.predict(output).numpy()
    fixed = simulate(graph, images, record=True)
    result.float_correct += int((float_pred == labels).sum())
    result.fixed_correct += int((fixed.predictions == labels).sum())
    for i in np.flatnonzero(float_pred != fixed.predictions):
        result.changed.append(
            {
                "index": offset + int(i),
                "label": int(labels[i]),
                "float": int(float_pred[i]),
                "fixed": int(fixed.predictions[i]),
            }
        )
    for index, (layer, population) in enumerate(zip(result.layers, graph.populations, strict=True)):
        f = float_spikes[index].numpy().astype(bool)
        q = fixed.spikes[population.name][..., population_window(graph, index)].astype(bool)
        layer.float_spikes += int(f.sum())
        layer.fixed_spikes += int(q.sum())
        layer.matching_spikes += int((f & q).sum())
        layer.current_wraps += fixed.current_wraps[population.name]
        layer.voltage_saturations += fixed.voltage_saturations[population.name]
        if offset == 0:
            raster.float_spikes.append(f[0].reshape(-1, graph.T))
            raster.fixed_spikes.append(q[0].reshape(-1, graph.T))


def plot_comparison(result: Comparison, raster: Raster, out_dir: Path | str) -> list[Path]:
    """Writes layers.png (agreement and rates per layer) and raster.png (one sample)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    names = [layer.name for layer in result.layers]
    x = np.arange(len(names))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.bar(x, [layer.agreement for layer in result.layers], color="tab:green")
    left.set(
        xticks=x,
        xticklabels=names,
        ylim=(0, 1.05),
        ylabel="spike agreement",
        title="float vs fixed, time-aligned",
    )
    width = 0.38
    right.bar(
        x - width / 2,
        [result.rate(lay.float_spikes, lay) for lay in result.layers],
        width,
        label="float",
    )
    right.bar(
        x + width / 2,
        [result.rate(lay.fixed_spikes, lay) for lay in result.layers],
        width,
        label="fixed point",
    )
    right.set(xticks=x, xticklabels=names, ylabel="spikes / neuron / step", title="firing rates")
    right.legend()
    fig.suptitle(
        f"float {100 * result.float_accuracy:.2f} %  vs  fixed point "
        f"{100 * result.fixed_accuracy:.2f} %  ({result.samples} samples)"
    )
    fig.tight_layout()
    paths = [_save(fig, out_dir / "layers.png")]
    fig, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 3.5), squeeze=False)
    for ax, name, f, q in zip(
        axes[0], names, raster.float_spikes, raster.fixed_spikes, strict=True
    ):
        for spikes, marker, label in ((f, "o", "float"), (q, "x", "fixed point")):
            neuron, step = np.nonzero(spikes)
            ax.scatter(step, neuron, marker=marker, s=12, label=label, alpha=0.7)
        steps, neurons = f.shape[1], f.shape[0]
        ax.set(
            title=name,
            xlabel="step",
            ylabel="neuron",
            xticks=range(steps),
            xlim=(-0.5, steps - 0.5),
            ylim=(-0.5, neurons - 0.5),
        )
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=2)
    fig.suptitle(f"sample {raster.sample}: spikes per layer")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    paths.append(_save(fig, out_dir / "raster.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
