"""From a trained checkpoint to a fixed-point Graph: lower, calibrate, quantise, fine-tune."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from quantize.finetune import FixedPointFinetuner
from quantize.scales import QuantReport, quantize_graph
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
    float_accuracy: float
    ptq_accuracy: float
    finetune: list[dict[str, float]] = field(default_factory=list)

    @property
    def fixed_accuracy(self) -> float:
        return self.finetune[-1]["test_accuracy"] if self.finetune else self.ptq_accuracy

    def to_json(self) -> dict[str, object]:
        return {
            "float_accuracy": self.float_accuracy,
            "ptq_accuracy": self.ptq_accuracy,
            "fixed_accuracy": self.fixed_accuracy,
            "finetune": self.finetune,
            "overflowing_layers": self.report.overflowing_layers,
            "quantization": self.report.to_json(),
        }


def calibration_images(split: Split, count: int, seed: int) -> np.ndarray:
    """`count` training images drawn without replacement, the same for the same seed."""
    order = np.random.default_rng(seed).permutation(len(split))[: min(count, len(split))]
    return split.images[np.sort(order)]


def fixed_accuracy(graph: Graph, split: Split) -> float:
    """Accuracy of the bit-accurate simulator."""
    return float((simulate(graph, split.images).predictions == split.labels).mean())


def quantize_checkpoint(
    checkpoint: Checkpoint,
    dataset: Dataset,
    *,
    calibration: int = 1000,
    finetune_epochs: int = 0,
    progress: bool = True,
) -> QuantizationResult:
    """PTQ of the trained network, then optional fine-tuning on the integer forward pass."""
    graph = lower(graph_from_checkpoint(checkpoint))
    float_acc = float(
        (run_float(graph, dataset.test.images).predictions == dataset.test.labels).mean()
    )
    images = calibration_images(dataset.train, calibration, checkpoint.config.train.seed)
    fixed, report = quantize_graph(graph, images)
    calib = simulate(fixed, images)
    report.record_overflows(calib.current_wraps, calib.voltage_saturations)
    ptq_acc = fixed_accuracy(fixed, dataset.test)
    result = QuantizationResult(fixed, report, float_acc, ptq_acc)
    if finetune_epochs:
        torch.manual_seed(checkpoint.config.train.seed)
        tuner = FixedPointFinetuner(graph, report.scales(), checkpoint.config)
        for epoch in range(finetune_epochs):
            loss, train_acc = tuner.epoch(dataset, progress)
            test_acc = fixed_accuracy(tuner.fixed_graph(), dataset.test)
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
                    f" train {100 * train_acc:.2f} %, test {100 * test_acc:.2f} %"
                )
        result.graph = tuner.fixed_graph()
    return result
