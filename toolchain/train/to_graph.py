"""A trained network becomes a float Graph by walking its modules in order (dropout is
training only): each module states what it is, so the Graph cannot drift from the network."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolchain.data.datasets import INPUT_LEVELS
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, Input, Node, SumPool2d
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import InputConfig
from toolchain.train.loop import model_from_checkpoint
from toolchain.train.network import (
    SpikingConv2d,
    SpikingDense,
    SpikingLayer,
    SpikingNetwork,
    TimeConsistentDropout,
)
from toolchain.train.network import (
    SumPool2d as SumPoolModule,
)


def graph_from_checkpoint(checkpoint: Checkpoint | Path | str) -> Graph:
    """The float Graph of a trained network, with the trained weights."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint.load(checkpoint)
    return graph_from_model(model_from_checkpoint(checkpoint))


def graph_from_model(model: SpikingNetwork) -> Graph:
    """Nodes for the network's modules in order, with their current weights; an input
    normalisation is folded into the first synapse (`toolchain.ir.nodes.Input`)."""
    config = model.config
    norm = config.input
    channels, height, width = model.input_shape
    plane = norm.has_offset
    shape = (channels + int(plane), height, width)
    nodes: list[Node] = [Input("input", shape, INPUT_LEVELS[config.dataset], plane)]
    flat = False
    first = True
    for index, layer in enumerate(model.layers):
        if isinstance(layer, SpikingDense) and not flat:
            nodes.append(Flatten(f"flatten{index}"))
            flat = True
        if isinstance(layer, SpikingLayer):
            weight = layer.weight.detach().cpu().numpy()
            if first:
                weight = _normalisation_folded(weight, norm, model.input_shape)
                first = False
            nodes += _spiking(layer, weight, index)
        elif isinstance(layer, SumPoolModule):
            nodes.append(SumPool2d(f"pool{index}", 2, layer.weight))
        elif not isinstance(layer, TimeConsistentDropout):
            raise TypeError(f"layers[{index}]: no Graph node for {type(layer).__name__}")
    return Graph(tuple(nodes), T=config.neuron.T, name=config.name)


def _normalisation_folded(
    weight: np.ndarray, norm: InputConfig, input_shape: tuple[int, int, int]
) -> np.ndarray:
    """The first synapse's weight on raw images, w (x - m) / s = (w / s) x - (m / s) w 1: a
    weight divided by s and, with an offset, a constant plane's weight after the channels.
    Padding stays exact: the zeros padded around a normalised image are zeros around both."""
    if norm.is_identity:
        return weight
    per_channel = weight.reshape(weight.shape[0], input_shape[0], -1).astype(np.float64)
    parts = [per_channel / norm.std]
    if norm.has_offset:
        parts.append(-(norm.mean / norm.std) * per_channel.sum(axis=1, keepdims=True))
    folded = np.concatenate(parts, axis=1).astype(weight.dtype)
    return folded.reshape(weight.shape[0], -1, *weight.shape[2:])


def _spiking(layer: SpikingLayer, weight: np.ndarray, index: int) -> list[Node]:
    if isinstance(layer, SpikingConv2d):
        synapse: Node = Conv2d(f"conv{index}", weight, padding=layer.padding)
    else:
        synapse = Dense(f"dense{index}", weight)
    n = layer.neuron
    return [synapse, CubaLIF(f"lif{index}", n.tau_m, n.tau_s, n.threshold)]
