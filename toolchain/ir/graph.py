"""The Graph: nodes (`toolchain.ir.nodes`) and the edges between them, run for T steps.

Every stage reads or writes a Graph: training builds a float one, quantisation adds the integers
in Loihi's formats, the simulators and exporters read it.

Edges are (source, target) node names. Nodes are listed in execution order: an edge whose
source comes before its target carries the source's output of the same step; an edge whose
source comes at or after its target is recurrent and carries the source's output of the
previous step (zeros at the first). Rules, checked on construction:
- one `Input`, the first node, with no incoming edge; the last node is the output population;
- every other node but a `CubaLIF` reads exactly one source; a `CubaLIF` sums one or more
  synapses (`Dense` or `Conv2d`), all of its shape;
- recurrent edges lead into a `Dense` (so every cycle passes through a synapse, whose delay
  breaks it);
- shapes agree along every edge.
`Graph.chain` (the default when no edges are given) connects each node to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

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
from toolchain.ir.provenance import DEFAULT_PREDICTION
from toolchain.neuron import PREDICTIONS, predict

Edge = tuple[str, str]


# Time steps per sample at most: a sample beyond it (100 s at 1 ms) would take hours to run
# step by step, whatever memory the machine has.
STEPS_MAX = 100_000


def chain_edges(nodes: tuple[Node, ...]) -> tuple[Edge, ...]:
    """Each node feeding the next: today's feed-forward networks."""
    return tuple((a.name, b.name) for a, b in zip(nodes, nodes[1:], strict=False))


@dataclass(frozen=True, eq=False)
class Graph:
    """Nodes in execution order from one Input to a CubaLIF output population, and edges."""

    nodes: tuple[Node, ...]
    T: int
    name: str = "network"
    edges: tuple[Edge, ...] | None = None  # None: a chain
    prediction: str = DEFAULT_PREDICTION  # how the outputs name a class (`neuron.PREDICTIONS`)

    def __post_init__(self) -> None:
        if self.edges is None:
            object.__setattr__(self, "edges", chain_edges(self.nodes))
        object.__setattr__(self, "edges", tuple(tuple(edge) for edge in self.edges))
        if not self.nodes or not isinstance(self.nodes[0], Input):
            raise GraphError("a graph starts with an Input node")
        if not isinstance(self.nodes[-1], CubaLIF):
            raise GraphError(f"the last node {self.nodes[-1].name!r} must be a CubaLIF population")
        if not isinstance(self.T, int) or isinstance(self.T, bool) or not 1 <= self.T <= STEPS_MAX:
            raise GraphError(f"T={self.T!r} must be an int in 1 .. {STEPS_MAX}")
        if self.prediction not in PREDICTIONS:
            raise GraphError(f"prediction={self.prediction!r}; accepted: {', '.join(PREDICTIONS)}")
        names = [node.name for node in self.nodes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise GraphError(f"node names must be unique, repeated: {duplicates}")
        self._check_edges()
        readouts = [n.name for n in self.nodes if isinstance(n, CubaLIF) and n.readout]
        sources = {source for source, _ in self.edges}
        if readouts and (readouts != [self.nodes[-1].name] or readouts[0] in sources):
            raise GraphError(
                f"node {readouts[0]!r}: only the last population can be a readout, feeding nothing"
            )
        self.shapes()  # validates every node against its inputs

    def _check_edges(self) -> None:
        position = {node.name: index for index, node in enumerate(self.nodes)}
        for source, target in self.edges:
            for end in (source, target):
                if end not in position:
                    raise GraphError(f"edge {source!r} -> {target!r}: no node named {end!r}")
            if position[source] >= position[target] and not isinstance(self.node(target), Dense):
                raise GraphError(
                    f"edge {source!r} -> {target!r} is recurrent (it goes back in node order)"
                    " and must lead into a Dense synapse, whose delay breaks the cycle"
                )
        for index, node in enumerate(self.nodes):
            sources = self.sources(node.name)
            if isinstance(node, Input):
                if index or sources:
                    raise GraphError(f"node {node.name!r}: only the first node is an Input")
            elif isinstance(node, CubaLIF):
                if not sources or not all(isinstance(self.node(s), SYNAPSES) for s in sources):
                    raise GraphError(
                        f"node {node.name!r}: a CubaLIF population must follow one or more"
                        f" Dense or Conv2d synapses, its sources are {sources}"
                    )
            elif len(sources) != 1:
                raise GraphError(f"node {node.name!r}: needs exactly one source, has {sources}")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Graph)
            and self.T == other.T
            and self.name == other.name
            and self.edges == other.edges
            and self.prediction == other.prediction
            and len(self.nodes) == len(other.nodes)
            and all(a == b for a, b in zip(self.nodes, other.nodes, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]

    def sources(self, name: str) -> list[str]:
        """The nodes feeding `name`, in edge order."""
        return [source for source, target in self.edges if target == name]

    def is_recurrent(self, source: str, target: str) -> bool:
        names = [node.name for node in self.nodes]
        return names.index(source) >= names.index(target)

    @property
    def is_chain(self) -> bool:
        """Each node feeds exactly the next one: no recurrence, no branches."""
        return self.edges == chain_edges(self.nodes)

    def shapes(self) -> list[tuple[int, ...]]:
        """The output shape of every node, in node order."""
        shapes: dict[str, tuple[int, ...]] = {}
        deferred: list[tuple[Dense, str]] = []
        for node in self.nodes:
            if isinstance(node, Input):
                shapes[node.name] = tuple(node.shape)
                continue
            incoming = []
            for source in self.sources(node.name):
                if source in shapes:
                    incoming.append(shapes[source])
                else:  # a recurrent source, computed later
                    deferred.append((node, source))  # type: ignore[arg-type]
            if isinstance(node, Dense) and not incoming:
                shapes[node.name] = (node.weight.shape[0],)
                continue
            if len(set(incoming)) > 1:
                raise GraphError(f"node {node.name!r}: its inputs have different shapes {incoming}")
            shapes[node.name] = node.output_shape(incoming[0])
        for dense, source in deferred:
            dense.output_shape(shapes[source])
        return [shapes[node.name] for node in self.nodes]

    @property
    def input(self) -> Input:
        return self.nodes[0]  # type: ignore[return-value]

    @property
    def populations(self) -> list[CubaLIF]:
        return [node for node in self.nodes if isinstance(node, CubaLIF)]

    def with_nodes(self, nodes: tuple[Node, ...], edges: tuple[Edge, ...] | None = None) -> Graph:
        """The same graph (steps, name, prediction) of other nodes; `edges` None: a chain."""
        return replace(self, nodes=tuple(nodes), edges=edges)

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """The classes the output population's outputs (N, n_out, T) name, by the graph's rule."""
        return predict(outputs, self.prediction, self.output_filter)

    @property
    def output_filter(self) -> float:
        """The synaptic time constant through which the prediction reads the output: the last
        population's tau_s for its spikes, 1 (none) for a readout's membrane."""
        last = self.populations[-1]
        return 1.0 if last.readout else last.tau_s

    @property
    def is_lowered(self) -> bool:
        """Every synapse connects one population (or the input) directly to the next."""
        return not any(isinstance(node, SumPool2d | Flatten) for node in self.nodes)

    @property
    def is_fixed(self) -> bool:
        return all(node.is_fixed for node in self.nodes)

    def recurrent_synapse(self, population: CubaLIF) -> Dense | None:
        """The Dense that feeds `population` its own spikes of the previous step, if any."""
        for source in self.sources(population.name):
            node = self.node(source)
            if isinstance(node, Dense) and self.sources(source) == [population.name]:
                return node
        return None

    @property
    def feed_forward_nodes(self) -> tuple[Node, ...]:
        """The nodes without the recurrent synapses of self-recurrent populations."""
        recurrent = {r.name for p in self.populations if (r := self.recurrent_synapse(p))}
        return tuple(node for node in self.nodes if node.name not in recurrent)

    @property
    def is_self_recurrent_chain(self) -> bool:
        """A chain once each population's recurrent synapse (population -> Dense -> the same
        population) is set aside: what the float runner, the reference simulator and the
        quantiser run."""
        loops = {(r.name, p.name) for p in self.populations if (r := self.recurrent_synapse(p))}
        loops |= {(p, r) for r, p in loops}
        return set(self.edges) - loops == set(chain_edges(self.feed_forward_nodes))

    def layers(self, *, recurrent: bool = False) -> list[tuple[Dense | Conv2d, CubaLIF]]:
        """The (synapse, population) pairs of a lowered feed-forward graph, in order.

        Refuses a graph that is not lowered, naming the pooling or flatten node to fold, and a
        graph with recurrent or branching edges; with `recurrent`, a caller that handles
        `recurrent_synapse` itself also gets self-recurrent chains.
        """
        if not (self.is_chain or (recurrent and self.is_self_recurrent_chain)):
            runs = "self-recurrent chains" if recurrent else "feed-forward chains"
            raise GraphError(
                f"graph {self.name!r} has recurrent or branching edges that this stage does not"
                f" run: it runs {runs} only"
            )
        nodes = self.feed_forward_nodes
        for before, node in zip(nodes, nodes[1:], strict=False):
            if isinstance(node, SumPool2d | Flatten):
                raise GraphError(
                    f"graph is not lowered: node {node.name!r} ({type(node).__name__}) must be"
                    " folded into the next synapse first"
                )
            if isinstance(node, SYNAPSES) and isinstance(before, SYNAPSES):
                raise GraphError(
                    f"graph is not lowered: node {node.name!r} ({type(node).__name__}) follows"
                    f" node {before.name!r}; every synapse must feed a CubaLIF population"
                )
        return [(nodes[i - 1], node) for i, node in enumerate(nodes) if isinstance(node, CubaLIF)]  # type: ignore[misc]

    def deployable_layers(self, *, recurrent: bool = False) -> list[tuple[Dense | Conv2d, CubaLIF]]:
        """`layers()` of a lowered fixed-point graph; names the first node without integers."""
        layers = self.layers(recurrent=recurrent)
        for node in self.nodes:
            if not node.is_fixed:
                missing = "du/dv/vth/scale" if isinstance(node, CubaLIF) else "weight_int"
                raise GraphError(
                    f"graph is not fixed-point: node {node.name!r} ({type(node).__name__}) has"
                    f" no {missing}; quantise it first"
                )
        return layers

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise GraphError(f"no node named {name!r}; nodes: {[n.name for n in self.nodes]}")
