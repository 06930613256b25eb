"""Plots of a float-vs-fixed comparison: agreement and firing rates per layer, one raster, and
the error budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quantize.budget import Budget
from toolchain.atomic import atomic_path
from toolchain.report.compare import Comparison, Raster


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
    if result.budget is not None:
        paths.append(plot_budget(result.budget, out_dir / "budget.png"))
    return paths


def plot_budget(budget: Budget, path: Path) -> Path:
    """budget.png: per layer, the spike disagreement each source causes alone, beside the
    fixed-point network's."""
    import matplotlib.pyplot as plt

    shown = [i for i, c in enumerate(budget.compared) if c]
    runs = [("fixed point", "fixed"), *((s, f"{s} alone") for s in budget.ranking())]
    x = np.arange(len(shown))
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(shown) + 3), 3.8))
    for k, (label, key) in enumerate(runs):
        disagreement = budget.tallies[key].disagreement()
        ax.bar(
            x + (k - (len(runs) - 1) / 2) * width,
            [disagreement[i] for i in shown],
            width,
            label=label,
        )
    ax.set(
        xticks=x,
        xticklabels=[budget.layers[i] for i in shown],
        ylabel="spike disagreement with float",
        title=f"error budget: each source alone ({budget.samples} samples)",
    )
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
