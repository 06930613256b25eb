"""What a placed network does per inference, counted from the reference simulator's bit-exact
spikes (the chip's, to the spike): per layer the messages that reach its synapses, the synaptic
operations they cause, neuron updates, the spikes it sends and how many cores they reach.

A message is one source element's non-zero payload in one step (a spike, a spike count, or the
input's graded value); it reads every synapse the element has into the layer (the chip stores
zero weights too), `synaptic_ops`, of which `effective_synaptic_ops` have a non-zero weight
(NeuroBench's effective count); `dense_synaptic_ops` is every element in every step (NeuroBench's
dense count). Each population is updated once per step, T steps per inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from targets.loihi2.partition import Partition, Placement
from targets.loihi2.plan import Block
from targets.loihi2.stream import input_payload
from toolchain.ir import Conv2d, Graph

BATCH = 8  # samples recorded at once: a whole PilotNet's spikes stay within a few hundred MB


@dataclass(frozen=True)
class LayerActivity:
    """One layer's events per inference, averaged over the samples."""

    name: str
    input_messages: float
    synaptic_ops: float
    effective_synaptic_ops: float
    dense_synaptic_ops: float
    neuron_updates: int
    output_spikes: float
    messages_out: float  # output spikes times the cores of the next layer each one reaches


@dataclass(frozen=True)
class Activity:
    samples: int
    steps: int  # T
    layers: tuple[LayerActivity, ...]

    def total(self, field: str) -> float:
        return float(sum(getattr(layer, field) for layer in self.layers))


@dataclass(frozen=True)
class FanOut:
    """Per source element (graph order, flattened): synapses into the layer, non-zero ones."""

    synapses: np.ndarray
    nonzero: np.ndarray


def fan_out(block: Block) -> FanOut:
    """The synapses each element of the block's source has into it."""
    synapse = block.synapse
    weight = np.asarray(synapse.weight_int)
    if not isinstance(synapse, Conv2d):
        rows = weight.shape[0]
        return FanOut(np.full(weight.shape[1], rows), np.count_nonzero(weight, axis=0))
    channels, height, width = block.in_shape
    synapses = np.zeros((channels, height, width), np.int64)
    nonzero = np.zeros_like(synapses)
    out_channels = weight.shape[0]
    for ky, kx, rows, cols in _taps(synapse, block.shape[1:], (height, width)):
        synapses[:, rows, cols] += out_channels
        nonzero[:, rows, cols] += np.count_nonzero(weight[:, :, ky, kx], axis=0)[:, None, None]
    return FanOut(synapses.reshape(-1), nonzero.reshape(-1))


def _taps(conv: Conv2d, out_hw: tuple[int, int], in_hw: tuple[int, int]):
    """(ky, kx, input rows, input columns) for each kernel tap: the input positions that the
    output grid reads through it (strided slices)."""
    _, _, kh, kw = conv.weight_int.shape
    for ky in range(kh):
        rows = _reached(ky, conv.stride[0], conv.padding[0], out_hw[0], in_hw[0])
        for kx in range(kw):
            cols = _reached(kx, conv.stride[1], conv.padding[1], out_hw[1], in_hw[1])
            if rows is not None and cols is not None:
                yield ky, kx, rows, cols


def _reached(tap: int, stride: int, padding: int, outputs: int, inputs: int) -> slice | None:
    """Input indices o * stride - padding + tap for o in 0 .. outputs-1, within 0 .. inputs-1."""
    first = next((o for o in range(outputs) if o * stride - padding + tap >= 0), None)
    if first is None:
        return None
    start = first * stride - padding + tap
    last = max(o for o in range(outputs) if o * stride - padding + tap < inputs)
    if last < first:
        return None
    return slice(start, last * stride - padding + tap + 1, stride)


def destination_cores(block: Block, placed: Placement) -> np.ndarray:
    """Per source element (flattened): the cores of this layer its spikes reach."""
    source_elements = math.prod(block.in_shape)
    if placed.tile is None:
        return np.full(source_elements, placed.cores)
    conv: Conv2d = block.synapse  # type: ignore[assignment]
    channels, height, width = block.in_shape
    groups = placed.cores // math.ceil(block.shape[2] / placed.tile[0])
    reached = np.zeros(width, np.int64)
    kw = conv.weight_int.shape[-1]
    for first in range(0, block.shape[2], placed.tile[0]):
        last = min(first + placed.tile[0], block.shape[2]) - 1
        low = max(0, first * conv.stride[1] - conv.padding[1])
        high = min(width - 1, last * conv.stride[1] - conv.padding[1] + kw - 1)
        reached[low : high + 1] += groups
    return np.broadcast_to(reached, (channels, height, width)).reshape(-1)


def measure(placed: Partition, images: np.ndarray) -> Activity:
    """Run the reference simulator on `images` and count every layer's events per inference."""
    from targets.loihi2.simulator import simulate

    graph, blocks = placed.plan.graph, placed.plan.blocks
    totals = np.zeros((len(blocks), 5))  # messages in, ops, effective ops, spikes out, msgs out
    fans = [fan_out(b) for b in blocks]
    reach = [destination_cores(b, p) for b, p in zip(blocks, placed.layers, strict=True)]
    for first in range(0, len(images), BATCH):
        batch = images[first : first + BATCH]
        spikes = simulate(graph, batch, record=True).spikes
        assert spikes is not None
        source = _input_messages(graph, batch)
        for index, block in enumerate(blocks):
            own = _messages_sent(spikes[block.population.name][..., block.window], block)
            later = reach[index + 1] if index + 1 < len(blocks) else np.zeros_like(own)
            totals[index] += (
                source.sum(),
                source @ fans[index].synapses,
                source @ fans[index].nonzero,
                own.sum(),
                own @ later,
            )
            source = own
    samples = len(images)
    layers = tuple(
        LayerActivity(
            name=block.population.name,
            input_messages=totals[i, 0] / samples,
            synaptic_ops=totals[i, 1] / samples,
            effective_synaptic_ops=totals[i, 2] / samples,
            dense_synaptic_ops=float(fans[i].synapses.sum() * graph.T),
            neuron_updates=block.neurons * graph.T,
            output_spikes=totals[i, 3] / samples,
            messages_out=totals[i, 4] / samples,
        )
        for i, block in enumerate(blocks)
    )
    return Activity(samples, graph.T, layers)


def _messages_sent(recorded: np.ndarray, block: Block) -> np.ndarray:
    """Per element of the block's population, the steps it sent something (a read-out, whose
    membrane the host reads, sends nothing), summed over the batch."""
    sent = np.zeros(block.neurons, np.int64)
    if not block.population.readout:
        sent += (recorded != 0).reshape(len(recorded), block.neurons, -1).sum(axis=(0, 2))
    return sent


def _input_messages(graph: Graph, images: np.ndarray) -> np.ndarray:
    """Per input element (flattened, as the first synapse reads it), the non-zero payloads sent
    over a sample's T steps, summed over the batch."""
    sent = input_payload(graph, images)  # (N, C, H, W) every step, or (N, C, H, W, T)
    if sent.ndim == 4:
        return (sent != 0).reshape(len(images), -1).sum(axis=0) * graph.T
    return (sent != 0).reshape(len(images), -1, graph.T).sum(axis=(0, 2))
