"""What some exporters write that `nir.write` refuses, made writable without changing a value:
Sinabs 3.1 writes 0-d parameters (given as 1-element arrays) and neurons without shapes (given
the shape of the node before them, in a chain). Used as `nir.write(path, writable(graph))`."""

from __future__ import annotations

from typing import Any

import numpy as np


def writable(graph: Any) -> Any:
    """`graph` (a `nir.NIRGraph`, changed in place and returned) as `nir.write` accepts it."""
    for node in graph.nodes.values():
        for key, value in vars(node).items():
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().numpy()
            if isinstance(value, np.ndarray) and value.ndim == 0:
                setattr(node, key, value.reshape(-1))
            elif isinstance(value, np.ndarray):
                setattr(node, key, value)
    source = {target: origin for origin, target in graph.edges}
    for key in _chain_order(graph):
        node = graph.nodes[key]
        if key in source and any(np.size(v) == 0 for v in node.input_type.values()):
            shape = next(iter(graph.nodes[source[key]].output_type.values()))
            node.input_type = {"input": np.array(shape)}
            node.output_type = {"output": np.array(shape)}
    graph.infer_types()
    return graph


def _chain_order(graph: Any) -> list[str]:
    following = dict(graph.edges)
    order = ["input"]
    while order[-1] in following and following[order[-1]] not in order:
        order.append(following[order[-1]])
    return order
