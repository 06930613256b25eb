"""Runs a float Graph in PyTorch, with the semantics documented in `toolchain.ir.nodes`.

All T steps of a layer are computed at once, time last: (N, C, H, W, T) or (N, F, T).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from toolchain.data.encoding import repeat_over_time
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, GraphError, Node, SumPool2d
from toolchain.train.neuron import lif_forward, predict_from_spikes, psp_filter


@dataclass(frozen=True)
class FloatResult:
    spikes: dict[str, np.ndarray]  # per population: (N, *shape, T), 0/1
    predictions: np.ndarray  # (N,)


def apply_node(node: Node, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """One node over all steps; a CubaLIF returns its spikes. `weight` overrides a synapse's."""
    if isinstance(node, Dense | Conv2d) and weight is None:
        weight = torch.tensor(node.weight, dtype=x.dtype)  # a copy: graph arrays are read-only
    if isinstance(node, Dense):
        return torch.einsum("oi,nit->not", weight, x.flatten(1, -2))
    if isinstance(node, Conv2d):
        kernel = weight.unsqueeze(-1)
        pad, stride = node.padding, node.stride
        return F.conv3d(x, kernel, stride=(stride, stride, 1), padding=(pad, pad, 0))
    if isinstance(node, SumPool2d):
        k = node.size
        return F.avg_pool3d(x, kernel_size=(k, k, 1)) * (k * k * node.weight)
    if isinstance(node, Flatten):
        return x.flatten(1, -2)
    if isinstance(node, CubaLIF):
        current = psp_filter(x, node.tau_s)
        if node.bias is not None:  # (C,) over (N, C, ..., T)
            bias = torch.tensor(node.bias, dtype=x.dtype)
            current = current + bias.reshape(-1, *[1] * (x.ndim - 2))
        _, spikes, _ = lif_forward(
            current,
            tau_m=node.tau_m,
            tau_s=node.tau_s,
            threshold=node.threshold,
            reset_subtract=node.reset_subtract,
        )
        return spikes
    raise TypeError(f"node {node.name!r}: no float semantics for {type(node).__name__}")


@torch.no_grad()
def run_float(
    graph: Graph, images: np.ndarray, *, dtype: torch.dtype = torch.float32, batch_size: int = 500
) -> FloatResult:
    """Spikes of every population and the predictions, for images (N, C, H, W), repeated over
    the graph's T steps, or per-step inputs (N, T, C, H, W)."""
    if not graph.is_chain:
        raise GraphError(f"graph {graph.name!r}: the float runner runs feed-forward chains only")
    chunks: dict[str, list[np.ndarray]] = {p.name: [] for p in graph.populations}
    predictions = []
    for start in range(0, len(images), batch_size):
        x = _over_time(torch.from_numpy(images[start : start + batch_size]).to(dtype), graph.T)
        for node in graph.nodes[1:]:
            x = apply_node(node, x)
            if isinstance(node, CubaLIF):
                chunks[node.name].append(x.to(torch.uint8).numpy())
        predictions.append(predict_from_spikes(x, graph.populations[-1].tau_s))
    spikes = {name: np.concatenate(parts) for name, parts in chunks.items()}
    return FloatResult(spikes, np.concatenate(predictions))


def _over_time(inputs: torch.Tensor, steps: int) -> torch.Tensor:
    """(N, C, H, W, T): static inputs repeated, per-step inputs (N, T, C, H, W) time last."""
    return inputs.movedim(1, -1) if inputs.ndim == 5 else repeat_over_time(inputs, steps)
