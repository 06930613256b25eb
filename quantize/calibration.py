"""Calibration: how large each population's currents and voltages get in the float model."""

from __future__ import annotations

import numpy as np
import torch

from toolchain.ir import CubaLIF, Graph
from toolchain.ir.float_runner import apply_node, graph_input, run_population
from toolchain.parallel import over_shards


def calibration_ranges(
    graph: Graph, images: np.ndarray, workers: int = 1
) -> dict[str, tuple[float, float]]:
    """Per population: (max |synaptic current|, max |membrane|) of the float model on images;
    with workers > 1, the largest over shards run in that many processes."""
    parts = over_shards(
        lambda first, stop: _ranges(graph, images[first:stop]), len(images), workers
    )
    return {
        name: (max(part[name][0] for part in parts), max(part[name][1] for part in parts))
        for name in parts[0]
    }


@torch.no_grad()
def _ranges(graph: Graph, images: np.ndarray) -> dict[str, tuple[float, float]]:
    ranges: dict[str, tuple[float, float]] = {}
    x = graph_input(graph, images, torch.float64)
    for node in graph.feed_forward_nodes[1:]:
        if isinstance(node, CubaLIF):
            run = run_population(node, x, graph.recurrent_synapse(node))
            ranges[node.name] = (float(run.current.abs().max()), float(run.potential.abs().max()))
            x = run.spikes
        else:
            x = apply_node(node, x)
    return ranges
