"""Calibration: how large each population's currents and voltages get in the float model."""

from __future__ import annotations

import numpy as np
import torch

from toolchain.data.encoding import repeat_over_time
from toolchain.ir import CubaLIF, Graph
from toolchain.ir.float_runner import apply_node
from toolchain.train.neuron import lif_forward, psp_filter


@torch.no_grad()
def calibration_ranges(graph: Graph, images: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per population: (max |synaptic current|, max |membrane|) of the float model on images."""
    ranges: dict[str, tuple[float, float]] = {}
    x = repeat_over_time(torch.from_numpy(images).double(), graph.T)
    for node in graph.nodes[1:]:
        if isinstance(node, CubaLIF):
            current = psp_filter(x, node.tau_s)
            _, x, u_pre = lif_forward(
                current, tau_m=node.tau_m, tau_s=node.tau_s, threshold=node.threshold
            )
            ranges[node.name] = (float(current.abs().max()), float(u_pre.abs().max()))
        else:
            x = apply_node(node, x)
    return ranges
