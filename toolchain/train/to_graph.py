"""A trained network becomes a float Graph by walking its modules in order (dropout is
training only): each module states what it is, so the Graph cannot drift from the network."""

from __future__ import annotations

from pathlib import Path

from toolchain.data.datasets import INPUT_LEVELS
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, Input, Node, SumPool2d
from toolchain.train.checkpoint import Checkpoint
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
    """Nodes for the network's modules in order, with their current weights."""
    config = model.config
    nodes: list[Node] = [Input("input", model.input_shape, INPUT_LEVELS[config.dataset])]
    flat = False
    for index, layer in enumerate(model.layers):
        if isinstance(layer, SpikingDense) and not flat:
            nodes.append(Flatten(f"flatten{index}"))
            flat = True
        if isinstance(layer, SpikingLayer):
            nodes += _spiking(layer, index)
        elif isinstance(layer, SumPoolModule):
            nodes.append(SumPool2d(f"pool{index}", 2, layer.weight))
        elif not isinstance(layer, TimeConsistentDropout):
            raise TypeError(f"layers[{index}]: no Graph node for {type(layer).__name__}")
    return Graph(tuple(nodes), T=config.neuron.T, name=config.name)


def _spiking(layer: SpikingLayer, index: int) -> list[Node]:
    weight = layer.weight.detach().cpu().numpy()
    if isinstance(layer, SpikingConv2d):
        synapse: Node = Conv2d(f"conv{index}", weight, padding=layer.padding)
    else:
        synapse = Dense(f"dense{index}", weight)
    n = layer.neuron
    return [synapse, CubaLIF(f"lif{index}", n.tau_m, n.tau_s, n.threshold)]
