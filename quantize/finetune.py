"""Quantisation-aware fine-tuning whose forward pass IS the bit-accurate simulator.

Each batch: the current float weights are quantised with the fixed per-population scales, the
reference simulator runs the integers (truncation, decay offsets, wrap, saturation, strict
threshold) and records every population's spikes and states. The backward pass is TSSL-BP's,
evaluated at that integer operating point (voltages divided by the scale), and reaches the float
weights straight through the rounding. So the accuracy the fine-tuning reports is the
fixed-point accuracy, by construction.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from tqdm import tqdm

from quantize.scales import LayerScale, apply_scales
from targets.loihi2.simulator import SimulationResult, simulate
from targets.loihi2.timing import population_window
from toolchain.data.datasets import Dataset
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph, GraphError, Node
from toolchain.ir.float_runner import apply_node, graph_input
from toolchain.neuron import psp_filter, readout
from toolchain.train.config import Config
from toolchain.train.losses import build_loss
from toolchain.train.methods.tsslbp import tsslbp_grad


class _AtIntegerPoint(torch.autograd.Function):
    """Returns the PSP of the integer spikes; the gradient is TSSL-BP's at the integer states."""

    @staticmethod
    def forward(ctx, current, psp, spikes, u_pre, params):  # type: ignore[override]
        ctx.save_for_backward(psp, spikes, u_pre)
        ctx.params = params
        return psp.clone()

    @staticmethod
    def backward(ctx, grad_psp):  # type: ignore[override]
        return tsslbp_grad(grad_psp, *ctx.saved_tensors, **ctx.params), *([None] * 4)


def operating_point(
    result: SimulationResult, graph: Graph, index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(psp, spikes, u before reset) of population `index` in float units, time aligned.

    Population k (1-based) sees the input's step j at Lava step k + 1 + j, i.e. column k + j.
    """
    population = graph.populations[index]
    columns = population_window(graph, index)
    spikes = result.spikes[population.name][..., columns].astype(np.float64)
    v_pre = result.voltages_before_reset[population.name][..., columns]
    spikes_t = torch.from_numpy(spikes)
    psp = psp_filter(spikes_t, population.tau_s)
    return psp, spikes_t, torch.from_numpy(v_pre / population.scale)


FINETUNE_LR_FACTOR = 0.1  # fine-tuning starts near a good point: a tenth of the training rate


class FixedPointFinetuner:
    """Fine-tunes the synapse weights of a lowered float Graph for fixed per-layer scales."""

    def __init__(
        self,
        graph: Graph,
        scales: list[LayerScale],
        config: Config,
        lr_factor: float = FINETUNE_LR_FACTOR,
        backend: str = "numpy",
    ) -> None:
        for population in graph.populations:
            if population.per_neuron:  # TSSL-BP's gradient takes one of each per layer
                raise GraphError(
                    f"node {population.name!r}: sets {', '.join(population.per_neuron)} per "
                    "neuron; fine-tuning takes one time constant and threshold per population"
                )
        self.graph = graph
        self.scales = scales
        self.config = config
        self.backend = backend  # of the simulator that runs the forward pass
        self.weights = [
            torch.nn.Parameter(torch.from_numpy(node.weight.astype(np.float64)))
            for node in graph.nodes
            if isinstance(node, Dense | Conv2d)
        ]
        t = config.train
        self.optimizer = torch.optim.AdamW(
            self.weights, lr=t.lr * lr_factor, weight_decay=t.weight_decay
        )
        self.loss_fn = build_loss(config.loss, config.neuron)

    def float_graph(self) -> Graph:
        weights = iter(self.weights)
        nodes: list[Node] = [
            dataclasses.replace(n, weight=next(weights).detach().numpy().astype(np.float32))
            if isinstance(n, Dense | Conv2d)
            else n
            for n in self.graph.nodes
        ]
        return self.graph.with_nodes(tuple(nodes))

    def fixed_graph(self) -> Graph:
        return apply_scales(self.float_graph(), self.scales)[0]

    def _output_psp(self, fixed: Graph, images: np.ndarray) -> torch.Tensor:
        result = simulate(fixed, images, record=True, record_states=True, backend=self.backend)
        x = graph_input(fixed, images, torch.float64)
        x = psp_filter(x, fixed.populations[0].tau_s)
        weights = iter(self.weights)
        index = 0
        for node in fixed.nodes[1:]:
            if isinstance(node, CubaLIF):
                point = operating_point(result, fixed, index)
                params = {"tau_m": node.tau_m, "tau_s": node.tau_s, "threshold": node.threshold}
                x = _AtIntegerPoint.apply(x, *point, params)
                index += 1
            else:
                x = apply_node(node, x, weight=next(weights))
        return x

    def step(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
        """One optimiser step; returns (loss, correct predictions) of the fixed-point forward."""
        output = self._output_psp(self.fixed_graph(), images)
        loss = self.loss_fn(output, torch.from_numpy(labels))
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.weights, self.config.train.grad_clip)
        self.optimizer.step()
        correct = int((readout(output.detach()).numpy() == labels).sum())
        return loss.item(), correct

    def epoch(self, dataset: Dataset, progress: bool = True) -> tuple[float, float]:
        t = self.config.train
        order = torch.randperm(len(dataset.train)).numpy()
        total, correct = 0.0, 0
        with tqdm(
            total=len(order), desc="fine-tune", unit="sample", disable=not progress, leave=False
        ) as bar:
            for start in range(0, len(order), t.batch_size):
                index = order[start : start + t.batch_size]
                loss, right = self.step(dataset.train.images[index], dataset.train.labels[index])
                total, correct = total + loss, correct + right
                bar.update(len(index))
        return total / len(order), correct / len(order)
