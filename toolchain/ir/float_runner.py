"""Runs a float Graph in PyTorch, with the semantics documented in `toolchain.ir.nodes`.

All T steps of a layer are computed at once, time last: (N, C, H, W, T) or (N, F, T); a
population that reads its own previous spikes (`Graph.recurrent_synapse`) step by step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from toolchain.data.encoding import repeat_over_time
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, GraphError, Node, SumPool2d
from toolchain.neuron import (
    lif_forward,
    lif_step,
    psp_filter,
    refractory_mask,
)
from toolchain.parallel import over_shards
from toolchain.pooling import sum_pool
from toolchain.resources import require_memory


@dataclass(frozen=True)
class FloatResult:
    spikes: dict[str, np.ndarray]  # per population: (N, *shape, T), 0/1, counts or a membrane
    predictions: np.ndarray  # (N,)


def apply_node(node: Node, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """One node over all steps; a CubaLIF returns its spikes. `weight` overrides a synapse's."""
    if isinstance(node, Dense | Conv2d) and weight is None:
        weight = torch.tensor(node.weight, dtype=x.dtype)  # a copy: graph arrays are read-only
    if isinstance(node, Dense):
        if node.delay is not None:
            return _delayed(node.delay, weight, x.flatten(1, -2))
        return torch.einsum("oi,nit->not", weight, x.flatten(1, -2))
    if isinstance(node, Conv2d):
        kernel = weight.unsqueeze(-1)
        return F.conv3d(x, kernel, stride=(*node.stride, 1), padding=(*node.padding, 0))
    if isinstance(node, SumPool2d):
        return sum_pool(x, node.size, spatial=-3) * node.weight
    if isinstance(node, Flatten):
        return x.flatten(1, -2)
    if isinstance(node, CubaLIF):
        return run_population(node, x).spikes
    raise TypeError(f"node {node.name!r}: no float semantics for {type(node).__name__}")


def _delayed(delay: np.ndarray, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A Dense with delays over all steps of x (N, in, T): each delay's weights, their sums
    shifted that many steps later (what would arrive after step T is dropped)."""
    out = torch.zeros(len(x), weight.shape[0], x.shape[-1], dtype=x.dtype, device=x.device)
    steps = x.shape[-1]
    for d in (int(d) for d in np.unique(delay) if d < steps):
        mask = torch.from_numpy(delay == d).to(weight.device)
        part = torch.einsum("oi,nit->not", weight * mask, x)
        out[..., d:] += part[..., : steps - d]
    return out


def _per_channel(values: np.ndarray | None, x: torch.Tensor) -> torch.Tensor | float:
    """A population's bias (or per-neuron parameter), (C,) shaped to broadcast over x
    (N, C, ...); 0 without one."""
    if values is None:
        return 0.0
    return torch.tensor(values, dtype=x.dtype).reshape(-1, *[1] * (x.ndim - 2))


def _per_neuron(
    value: float | np.ndarray | None, step: torch.Tensor
) -> float | torch.Tensor | None:
    """A population's parameter as `toolchain.neuron` takes it: one number, or one per channel
    or neuron shaped to broadcast over one step's x (N, C, ...)."""
    return _per_channel(value, step) if isinstance(value, np.ndarray) else value


def _neuron(node: CubaLIF, step: torch.Tensor) -> dict[str, object]:
    """tau_m, tau_s, threshold and firing of the population, for one step shaped like `step`."""
    firing = node.firing
    subtract = _per_neuron(firing.reset_subtract, step)
    return {
        "tau_m": _per_neuron(node.tau_m, step),
        "tau_s": _per_neuron(node.tau_s, step),
        "threshold": math.inf if node.readout else _per_neuron(node.threshold, step),
        "firing": dataclasses.replace(firing, reset_subtract=subtract),
    }


@dataclass(frozen=True)
class PopulationRun:
    spikes: torch.Tensor  # (N, *shape, T); a readout's: its membrane
    current: torch.Tensor  # the synaptic current (Loihi's u; the bias goes to v)
    potential: torch.Tensor  # the membrane before reset


def run_population(node: CubaLIF, x: torch.Tensor, recurrent: Dense | None = None) -> PopulationRun:
    """A population over all steps of its synaptic input x (N, *shape, T); with `recurrent`,
    it also reads its own spikes of the previous step through that Dense, step by step."""
    neuron = _neuron(node, x[..., 0])
    if recurrent is None:
        current = psp_filter(x + _per_channel(node.synaptic_bias, x), neuron["tau_s"])
        _, spikes, potential = lif_forward(current + _per_channel(node.bias, x), **neuron)
        return PopulationRun(potential if node.readout else spikes, current, potential)
    weight = torch.tensor(recurrent.weight, dtype=x.dtype)
    tau_s, step_input = neuron.pop("tau_s"), x[..., 0]
    decay = 1.0 - 1.0 / tau_s
    bias, synaptic_bias = (_per_channel(b, step_input) for b in (node.bias, node.synaptic_bias))
    filtered = membrane = spikes = torch.zeros_like(step_input)
    held = None
    steps: list[tuple[torch.Tensor, ...]] = []
    for t in range(x.shape[-1]):
        drive = x[..., t] + spikes @ weight.T + synaptic_bias
        filtered = decay * filtered + drive / tau_s
        potential, spikes, membrane = lif_step(filtered + bias, membrane, **neuron, held=held)
        held = refractory_mask(spikes, node.firing)
        steps.append((spikes, filtered, potential))
    return PopulationRun(*(torch.stack(series, -1) for series in zip(*steps, strict=True)))


def run_float(
    graph: Graph,
    images: np.ndarray,
    *,
    dtype: torch.dtype = torch.float32,
    batch_size: int = 500,
    workers: int = 1,
) -> FloatResult:
    """Spikes of every population and the predictions, for images (N, C, H, W), repeated over
    the graph's T steps, or per-step inputs (N, T, C, H, W); with workers > 1, shards of the
    samples in that many processes (`toolchain.parallel`)."""
    needed = memory_needed(graph, len(images), batch_size, torch.finfo(dtype).bits // 8)
    require_memory(needed, f"running {len(images)} samples of {graph.T} steps in float")
    parts = over_shards(
        lambda first, stop: _run_float(graph, images[first:stop], dtype, batch_size),
        len(images),
        workers,
    )
    spikes = {
        name: np.concatenate([part.spikes[name] for part in parts]) for name in parts[0].spikes
    }
    return FloatResult(spikes, np.concatenate([part.predictions for part in parts]))


def memory_needed(graph: Graph, samples: int, batch_size: int = 500, item: int = 4) -> int:
    """About the bytes `run_float` allocates: every population's spikes for all samples, and one
    batch's tensors (input, current, membrane, spikes and their copies) of the largest node."""
    sizes = [math.prod(shape) for shape in graph.shapes()]
    neurons = sum(sizes[graph.nodes.index(p)] for p in graph.populations)
    return graph.T * (samples * neurons + min(batch_size, samples) * max(sizes) * item * 8)


@torch.no_grad()
def _run_float(
    graph: Graph, images: np.ndarray, dtype: torch.dtype, batch_size: int
) -> FloatResult:
    """`run_float` in this process."""
    if not (graph.is_chain or graph.is_self_recurrent_chain):
        raise GraphError(
            f"graph {graph.name!r}: the float runner runs chains, with populations that may "
            "read their own previous spikes, only"
        )
    chunks: dict[str, list[np.ndarray]] = {p.name: [] for p in graph.populations}
    predictions = []
    for start in range(0, len(images), batch_size):
        x = graph_input(graph, images[start : start + batch_size], dtype)
        for node in graph.feed_forward_nodes[1:]:
            if isinstance(node, CubaLIF):
                x = run_population(node, x, graph.recurrent_synapse(node)).spikes
                chunks[node.name].append(x.to(spike_dtype(node, dtype)).numpy())
            else:
                x = apply_node(node, x)
        predictions.append(graph.predict(x.flatten(1, -2)))
    spikes = {name: np.concatenate(parts) for name, parts in chunks.items()}
    return FloatResult(spikes, np.concatenate(predictions))


def spike_dtype(node: CubaLIF, dtype: torch.dtype) -> torch.dtype:
    """The smallest dtype that holds the population's spikes or spike counts; a readout's
    membrane keeps the run's float `dtype`."""
    if node.readout:
        return dtype
    return torch.uint8 if node.max_spikes <= 255 else torch.int32


def graph_input(graph: Graph, images: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """What the first synapse sees, (N, C, H, W, T): static images (N, C, H, W) repeated over
    the graph's steps or per-step inputs (N, T, C, H, W) time last, with any constant plane."""
    inputs = torch.from_numpy(graph.input.feed(images)).to(dtype)
    return inputs.movedim(1, -1) if inputs.ndim == 5 else repeat_over_time(inputs, graph.T)
