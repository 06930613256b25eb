"""A trained checkpoint becomes a float Graph, layer for layer (dropout is training only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolchain.checkpoint import Checkpoint
from toolchain.config import Config, ConvSpec, DenseSpec, PoolSpec
from toolchain.graph import Conv2d, CubaLIF, Dense, Flatten, Graph, Input, Node, SumPool2d
from toolchain.network import SpikingLayer
from toolchain.train import model_from_checkpoint

INPUT_LEVELS = {"digits": 16, "mnist": 255}  # the data sets' own integer pixel ranges


def graph_from_checkpoint(checkpoint: Checkpoint | Path | str) -> Graph:
    """The float Graph of a trained network, with the trained weights."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint.load(checkpoint)
    model = model_from_checkpoint(checkpoint)
    weights = [
        layer.weight.detach().cpu().numpy()
        for layer in model.layers
        if isinstance(layer, SpikingLayer)
    ]
    return graph_from_config(checkpoint.config, checkpoint.input_shape, weights)


def graph_from_config(
    config: Config, input_shape: tuple[int, int, int], weights: list[np.ndarray]
) -> Graph:
    """Nodes for `config.layers` in order; `weights` holds one array per dense or conv layer."""
    n = config.neuron
    nodes: list[Node] = [Input("input", input_shape, INPUT_LEVELS[config.dataset])]
    remaining = iter(weights)
    flat = False
    for index, spec in enumerate(config.layers):
        if isinstance(spec, DenseSpec):
            if not flat:
                nodes.append(Flatten(f"flatten{index}"))
                flat = True
            nodes.append(Dense(f"dense{index}", next(remaining)))
        elif isinstance(spec, ConvSpec):
            nodes.append(Conv2d(f"conv{index}", next(remaining), padding=spec.padding))
        elif isinstance(spec, PoolSpec):
            nodes.append(SumPool2d(f"pool{index}", 2, spec.weight))
            continue
        else:
            continue  # dropout: training only
        nodes.append(CubaLIF(f"lif{index}", n.tau_m, n.tau_s, n.threshold))
    return Graph(tuple(nodes), T=n.T, name=config.name)
