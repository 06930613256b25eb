"""From a trained checkpoint, or a float Graph from elsewhere, to a fixed-point Graph: lower,
calibrate, quantise, and (for checkpoints, which carry their training config) fine-tune."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from quantize.auto import DEFAULTS, AutoReport, Options, auto_quantize
from quantize.finetune import FixedPointFinetuner
from quantize.scales import QuantReport, quantize_graph, with_input_levels
from targets.loihi2.formats import WEIGHT_EXP_MIN
from targets.loihi2.simulator import simulate
from toolchain.data.datasets import Dataset, Split
from toolchain.ir import Graph
from toolchain.ir.float_runner import run_float
from toolchain.ir.lowering import lower
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.to_graph import graph_from_checkpoint


@dataclass
class QuantizationResult:
    graph: Graph
    report: QuantReport
    float_accuracy: float | None  # None: inputs without labels
    ptq_accuracy: float | None
    finetune: list[dict[str, float]] = field(default_factory=list)
    agreement: float | None = None  # samples whose float and fixed predictions agree
    auto: AutoReport | None = None  # what --auto tried

    @property
    def fixed_accuracy(self) -> float | None:
        return self.finetune[-1]["test_accuracy"] if self.finetune else self.ptq_accuracy

    def table(self) -> str:
        """Per layer: the scale, the integers and what limited the scale; then the accuracies."""
        lines = [
            f"{'layer':<8}{'scale':>12}{'w_exp':>7}{'vth':>8}{'weights':>14}{'clipped':>9}"
            f"{'wraps':>7}{'saturated':>10}  limited by"
        ]
        for r in self.report.layers:
            lines.append(
                f"{r.population:<8}{r.scale:>12.1f}{r.weight_exp:>7}{_span(r.vth):>8}"
                f"{f'[{r.weight_min}, {r.weight_max}]':>14}{r.weights_clipped:>9}"
                f"{r.current_wraps:>7}{r.voltage_saturations:>10}  {r.limited_by}"
            )
        report = self.report
        lines.append(f"input levels: {report.input_levels} (the data's own: {report.data_levels})")
        counts = [f"{r.population} up to {r.max_spikes}" for r in report.layers if r.max_spikes > 1]
        if counts:
            lines.append(f"spike counts per step: {', '.join(counts)}")
        if self.float_accuracy is not None:
            lines.append(
                f"test accuracy: float {100 * self.float_accuracy:.2f} %, after PTQ "
                f"{100 * self.ptq_accuracy:.2f} %, fixed point {100 * self.fixed_accuracy:.2f} %"
            )
        if self.agreement is not None:
            lines.append(f"float and fixed point predict alike on {100 * self.agreement:.2f} %")
        if self.auto is not None:
            lines += self.auto.lines()
        if self.report.overflowing_layers:
            lines.append(
                "warning: states left 24 bits on the calibration set in "
                f"{', '.join(self.report.overflowing_layers)}"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "float_accuracy": self.float_accuracy,
            "ptq_accuracy": self.ptq_accuracy,
            "fixed_accuracy": self.fixed_accuracy,
            "prediction_agreement": self.agreement,
            "finetune": self.finetune,
            "overflowing_layers": self.report.overflowing_layers,
            "quantization": self.report.to_json(),
            **({"auto": self.auto.to_json()} if self.auto is not None else {}),
        }


def calibration_images(split: Split, count: int, seed: int) -> np.ndarray:
    """`count` training images drawn without replacement, the same for the same seed."""
    order = np.random.default_rng(seed).permutation(len(split))[: min(count, len(split))]
    return split.images[np.sort(order)]


def post_training(
    graph: Graph,
    calibration: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray | None,
    *,
    netx: bool = False,
    workers: int = 1,
    options: Options = DEFAULTS,
    auto: bool = False,
) -> QuantizationResult:
    """PTQ of a lowered float graph on calibration images with `options` (with `auto`, the
    best of those the error budget points to, `quantize.auto`); on `images`, how often float
    and fixed point predict alike, and with `labels` their accuracies. `workers`: processes for
    the calibration and the simulations (`toolchain.parallel`)."""
    float_pred = run_float(graph, images, workers=workers).predictions
    exp = _min_weight_exp(netx)
    tried = None
    if auto:
        fixed, report, tried = auto_quantize(
            graph, calibration, start=options, min_weight_exp=exp, workers=workers
        )
    else:
        fixed, report = quantize_graph(
            graph,
            calibration,
            headroom=options.headroom,
            min_weight_exp=exp,
            workers=workers,
            levels=options.levels,
        )
    calib = simulate(fixed, calibration, workers=workers)
    report.record_overflows(calib.current_wraps, calib.voltage_saturations)
    fixed_pred = simulate(fixed, images, workers=workers).predictions
    accuracies = (None, None)
    if labels is not None:
        accuracies = (float(np.mean(float_pred == labels)), float(np.mean(fixed_pred == labels)))
    agreement = float(np.mean(float_pred == fixed_pred))
    return QuantizationResult(fixed, report, *accuracies, agreement=agreement, auto=tried)


def fixed_accuracy(graph: Graph, split: Split, workers: int = 1) -> float:
    """Accuracy of the bit-accurate simulator."""
    predictions = simulate(graph, split.images, workers=workers).predictions
    return float((predictions == split.labels).mean())


def fixed_graph_of(
    checkpoint: Checkpoint, dataset: Dataset, *, calibration: int = 1000, workers: int = 1
) -> Graph:
    """The trained network quantised as `quantize_checkpoint` quantises it (the same calibration
    images), without measuring accuracies: for planning."""
    graph, images = _calibration(checkpoint, dataset, calibration)
    return quantize_graph(graph, images, min_weight_exp=_min_weight_exp(False), workers=workers)[0]


def _calibration(
    checkpoint: Checkpoint, dataset: Dataset, calibration: int
) -> tuple[Graph, np.ndarray]:
    """The trained network's lowered float graph and the training images that calibrate it."""
    graph = lower(graph_from_checkpoint(checkpoint))
    return graph, calibration_images(dataset.train, calibration, checkpoint.config.train.seed)


def _min_weight_exp(netx: bool) -> int:
    """netx stores no dense weight exponent: with `netx`, every one stays 0."""
    return 0 if netx else WEIGHT_EXP_MIN


def quantize_checkpoint(
    checkpoint: Checkpoint,
    dataset: Dataset,
    *,
    calibration: int = 1000,
    finetune_epochs: int = 0,
    progress: bool = True,
    netx: bool = False,
    workers: int = 1,
    options: Options = DEFAULTS,
    auto: bool = False,
    backend: str = "numpy",
) -> QuantizationResult:
    """PTQ of the trained network (`post_training`'s options and `auto`), then optional
    fine-tuning on the integer forward pass, run by the simulator's `backend`.

    `netx`: dense weight exponents of 0 only, so that lava-dl's netx file (which stores none)
    holds the graph exactly; the input synapse then uses fewer weight bits."""
    graph, images = _calibration(checkpoint, dataset, calibration)
    test = dataset.test
    result = post_training(
        graph,
        images,
        test.images,
        test.labels,
        netx=netx,
        workers=workers,
        options=options,
        auto=auto,
    )
    if finetune_epochs:
        torch.manual_seed(checkpoint.config.train.seed)
        sent = with_input_levels(graph, result.report.input_levels)
        tuner = FixedPointFinetuner(
            sent, result.report.scales(), checkpoint.config, backend=backend
        )
        for epoch in range(finetune_epochs):
            loss, train_acc = tuner.epoch(dataset, progress)
            test_acc = fixed_accuracy(tuner.fixed_graph(), dataset.test, workers)
            result.finetune.append(
                {
                    "epoch": epoch + 1,
                    "loss": loss,
                    "train_accuracy": train_acc,
                    "test_accuracy": test_acc,
                }
            )
            if progress:
                tqdm.write(
                    f"fine-tune {epoch + 1}/{finetune_epochs}: loss {loss:.4f}, fixed-point"
                    f" train {100 * train_acc:.2f} %, test {100 * test_acc:.2f} %",
                    file=sys.stderr,
                )
        result.graph = tuner.fixed_graph()
    return result


def _span(value: int | list[int]) -> str:
    """A reported integer, or the range of one per neuron."""
    return f"{min(value)}-{max(value)}" if isinstance(value, list) else str(value)
