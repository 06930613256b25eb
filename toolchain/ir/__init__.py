"""The intermediate representation every stage reads or writes: nodes, edges, the Graph."""

from toolchain.ir.graph import Edge, Graph, chain_edges
from toolchain.ir.nodes import (
    SYNAPSES,
    Conv2d,
    CubaLIF,
    Dense,
    Flatten,
    GraphError,
    Input,
    Node,
    SumPool2d,
)

__all__ = [
    "SYNAPSES",
    "Conv2d",
    "CubaLIF",
    "Dense",
    "Edge",
    "Flatten",
    "Graph",
    "GraphError",
    "Input",
    "Node",
    "SumPool2d",
    "chain_edges",
]
