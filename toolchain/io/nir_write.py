"""A Graph as a NIR file, in the specification's own reading.

NIR states neurons in continuous time; with forward Euler and a step of `DT` seconds our
discrete neuron is exactly NIR's (`toolchain.io.nir_read`, convention `nir`), time constants
in steps times DT:
- a population with a synaptic filter (tau_s > 1) is a `CubaLIF` with tau_syn = tau_s DT,
  tau_mem = tau_m DT, r = tau_m and w_in = 1 (so the filter is normalised and the membrane's gain
  is 1), v_leak = 0, v_reset = 0;
- one without (tau_s = 1) is a `LIF` (tau = tau_m DT, r = tau_m), or an `IF` (r = 1/DT) when
  it does not leak; its bias, a constant input to the membrane, is the bias of the `Affine` or
  `Conv2d` before it, as is a `synaptic_bias` (a bias into the membrane behind a synaptic
  filter has no NIR form and is refused);
- `Dense` is `Linear` (or `Affine`, after a `Flatten` where its input has several dimensions;
  an (n, 1, 1) input is the vector (n,)), `Conv2d` is `Conv2d`, `Flatten` is `Flatten`, and
  `SumPool2d` is `SumPool2d` followed by a `Scale` of its weight when that is not 1.
NIR has no reset rule beyond v_reset and no time step: the graph's metadata records them
(`METADATA_KEYS`), and `snn-deploy import` reads them back. A reset by subtraction is
recorded only where every population subtracts its threshold. DT is snnTorch's own step, so
its `import_from_nir` reads the LIF populations of such a file (reset to 0) exactly.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.atomic import atomic_path
from toolchain.data.encoding import ENCODING
from toolchain.errors import UserError
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, Input, Node, SumPool2d
from toolchain.ir.fields import says, set_fields, shown_value
from toolchain.ir.provenance import (
    INPUT_LEVELS,
    PREDICTION,
    PRODUCER,
    PRODUCER_KEY,
    TIME_STEPS,
)

DT = 1e-4  # snnTorch's step: its importer reads LIF files with it
METADATA_KEYS = (
    "producer",
    "time_steps",
    "dt",
    "reset",
    "encoding",
    "input_levels",
    "prediction",
)


class NirExportError(UserError, ValueError):
    """A Graph that NIR cannot state; the message names the node."""


def graph_to_nir(graph: Graph) -> Any:
    """The NIR graph of the float `graph`, with the metadata to read it back."""
    import nir

    if graph.is_fixed:
        raise NirExportError(
            f"graph {graph.name!r}: is fixed point, and NIR states float parameters only, so "
            "the integers the chip runs would be lost; export the float graph or checkpoint it "
            "was quantised from, or --format netx for lava-dl"
        )
    if graph.input.constant_plane:
        graph = without_constant_plane(graph)

    shapes = dict(zip((n.name for n in graph.nodes), graph.shapes(), strict=True))
    in_shapes = {n.name: shapes[graph.sources(n.name)[0]] for n in graph.nodes[1:]}
    nodes: dict[str, Any] = {}
    renamed: dict[str, str] = {}  # a Graph node -> the NIR node its output leaves from
    for node in graph.nodes:
        for key, value in _nir_nodes(node, graph, shapes, in_shapes):
            nodes[key] = value
            renamed[node.name] = key
    output = graph.nodes[-1].name
    nodes["output"] = nir.Output(output_type={"output": np.array(shapes[output])})
    entry = {
        n.name: f"{n.name}_flatten" if f"{n.name}_flatten" in nodes else n.name for n in graph.nodes
    }
    edges = [(renamed[a], entry[b]) for a, b in graph.edges]
    edges += [(k, f"{k}_scale") for k in nodes if f"{k}_scale" in nodes]
    edges += [(f"{k}_flatten", k) for k in nodes if f"{k}_flatten" in nodes]
    edges.append((renamed[output], "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=_metadata(graph))


def without_constant_plane(graph: Graph) -> Graph:
    """The same float network with an input normalisation's constant plane (`Input`) carried
    instead by the first population's synaptic bias: the plane's weights times 1, the same
    input every step. Exact for a Dense first synapse and a Conv2d without padding (padding
    would make the plane's sum differ at the border)."""
    first = next(n for n in graph.nodes[1:] if isinstance(n, Dense | Conv2d))
    population = graph.node(next(b for a, b in graph.edges if a == first.name))
    between = graph.nodes[1 : graph.nodes.index(first)]
    if not isinstance(population, CubaLIF) or any(not isinstance(n, Flatten) for n in between):
        raise NirExportError(
            f"node {first.name!r}: an input normalisation's plane is folded into the first "
            "synapse only where the input reaches it directly and it feeds neurons"
        )
    channels, height, width = graph.input.shape
    if isinstance(first, Conv2d):
        if any(first.padding):
            raise NirExportError(
                f"node {first.name!r}: the input normalisation's constant plane passes a padded "
                "convolution, whose border sums differ, so NIR cannot state it as a bias"
            )
        plane, kept = first.weight[:, -1].sum(axis=(1, 2)), first.weight[:, :-1]
        synapse: Node = Conv2d(first.name, kept, first.stride, first.padding)
    else:
        weight = first.weight.reshape(len(first.weight), channels, height * width)
        plane, kept = weight[:, -1].sum(axis=1), weight[:, :-1].reshape(len(weight), -1)
        synapse = Dense(first.name, kept)
    plane = plane.astype(np.float64)
    old = population.synaptic_bias
    bias = plane if old is None else old + plane
    nodes = []
    for node in graph.nodes:
        if node is graph.input:
            node = replace(node, shape=node.image_shape, constant_plane=False)
        elif node is first:
            node = synapse
        elif node is population:
            node = replace(node, synaptic_bias=bias)
        nodes.append(node)
    return graph.with_nodes(tuple(nodes), graph.edges)


def save_nir(graph: Graph, path: Path | str) -> Path:
    """Write `graph` as a NIR file at `path`, atomically."""
    import nir

    model = graph_to_nir(graph)
    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write(tmp, model)
    return path


def _metadata(graph: Graph) -> dict[str, Any]:
    resets = {_reset(p) for p in graph.populations}
    if len(resets) > 1:
        raise NirExportError(
            f"graph {graph.name!r}: some populations reset to 0 and others by subtraction; a "
            "NIR file records one reset for all"
        )
    return {
        PRODUCER_KEY: PRODUCER,
        TIME_STEPS: graph.T,
        "dt": DT,
        "reset": resets.pop(),
        "encoding": ENCODING,
        INPUT_LEVELS: graph.input.levels,
        PREDICTION: graph.prediction,
    }


# What NIR's neurons state (its fixed-point twins are not written: NIR holds the float model);
# any other field of a population set is refused.
NIR_FIELDS = frozenset(
    ("tau_m", "tau_s", "threshold", "reset_subtract", "bias", "synaptic_bias", "readout")
) | {"du", "dv", "vth", "scale", "reset_sub", "bias_mant", "bias_exp", "synaptic_bias_int"}


def _reset(population: CubaLIF) -> str:
    for name, _, _ in set_fields(population):
        if name not in NIR_FIELDS:
            raise NirExportError(
                f"node {population.name!r}: {says(population, name)}, which NIR has no way to "
                "state; export ONNX"
            )
    if population.reset_subtract is None:
        return "zero"
    if np.any(population.reset_subtract != population.threshold):
        raise NirExportError(
            f"node {population.name!r}: subtracts {shown_value(population.reset_subtract)} on a "
            f"spike, not its threshold {shown_value(population.threshold)}; NIR records no other "
            "amount"
        )
    return "subtract"


def _nir_nodes(
    node: Any, graph: Graph, shapes: dict[str, tuple], in_shapes: dict[str, tuple]
) -> list[tuple[str, Any]]:
    import nir

    name = node.name
    if isinstance(node, Input):
        return [(name, nir.Input(input_type={"input": np.array(_vector_or(node.shape))}))]
    if isinstance(node, Dense):
        if node.delay is not None:
            raise NirExportError(
                f"node {name!r}: has synaptic delays, which this NIR writer does not state yet "
                "(NIR's Delay delays a node's outputs); export ONNX or netx"
            )
        bias = _bias_before(graph, node, node.weight.shape[0])
        dense = nir.Linear(weight=node.weight)
        if bias is not None:
            dense = nir.Affine(weight=node.weight, bias=bias)
        if len(_vector_or(in_shapes[name])) == 1:
            return [(name, dense)]
        flat = nir.Flatten(input_type={"input": np.array(in_shapes[name])}, start_dim=0)
        return [(f"{name}_flatten", flat), (name, dense)]  # our Dense flattens its input
    if isinstance(node, Conv2d):
        bias = _bias_before(graph, node, node.weight.shape[0])
        conv = nir.Conv2d(
            input_shape=tuple(in_shapes[name][1:]),
            weight=node.weight,
            stride=np.array(node.stride),
            padding=np.array(node.padding),
            dilation=1,
            groups=1,
            bias=np.zeros(node.weight.shape[0]) if bias is None else bias,
        )
        return [(name, conv)]
    if isinstance(node, SumPool2d):
        k = np.array([node.size, node.size])
        pool = nir.SumPool2d(kernel_size=k, stride=k, padding=np.array([0, 0]))
        if node.weight == 1:
            return [(name, pool)]
        scale = nir.Scale(scale=np.full(shapes[name], node.weight))
        return [(name, pool), (f"{name}_scale", scale)]
    if isinstance(node, Flatten):
        return [(name, nir.Flatten(input_type={"input": np.array(in_shapes[name])}, start_dim=0))]
    if isinstance(node, CubaLIF):
        return [(name, _neuron(node, shapes[name]))]
    raise NirExportError(f"node {name!r}: {type(node).__name__} has no NIR form here")


def _vector_or(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(n,) for an (n, 1, 1) input (a vector), else the shape."""
    return shape[:1] if len(shape) == 3 and shape[1:] == (1, 1) else shape


def _bias_before(graph: Graph, synapse: Dense | Conv2d, size: int) -> np.ndarray | None:
    """The bias of the population this synapse feeds, which NIR puts on the synapse."""
    target = next(graph.node(b) for a, b in graph.edges if a == synapse.name)
    if not isinstance(target, CubaLIF):
        return None
    if target.bias is not None and np.any(target.tau_s != 1):
        raise NirExportError(
            f"node {target.name!r}: a bias into the membrane of a neuron with a synaptic "
            f"filter (tau_s = {shown_value(target.tau_s)}) has no NIR form"
        )
    biases = [b for b in (target.bias, target.synaptic_bias) if b is not None]
    if not biases:
        return None
    return np.broadcast_to(sum(biases), (size,)).astype(np.float64)


def _neuron(node: CubaLIF, shape: tuple[int, ...]) -> Any:
    import nir

    def full(value: float | np.ndarray) -> np.ndarray:
        """One value, or one per channel or neuron, over the population's shape."""
        per_channel = np.reshape(np.asarray(value, np.float64), (-1, *[1] * (len(shape) - 1)))
        return np.broadcast_to(per_channel, shape).copy()

    leaks = bool(np.all(np.isfinite(node.tau_m)))
    filtered = bool(np.any(node.tau_s != 1))
    if node.readout:
        if filtered or not leaks:
            raise NirExportError(
                f"node {node.name!r}: a readout is NIR's LI, which has no synaptic filter and "
                "leaks (tau_s must be 1, tau_m finite)"
            )
        return nir.LI(tau=full(node.tau_m * DT), r=full(node.tau_m), v_leak=full(0.0))
    if not filtered and not np.any(np.isfinite(node.tau_m)):
        return nir.IF(r=full(1.0 / DT), v_threshold=full(node.threshold), v_reset=full(0.0))
    if not leaks:
        raise NirExportError(
            f"node {node.name!r}: a neuron that does not leak behind a synaptic filter, or "
            "beside neurons that do, has no NIR form (tau_mem must be finite)"
        )
    membrane = {"r": full(node.tau_m), "v_leak": full(0.0), "v_threshold": full(node.threshold)}
    if not filtered:
        return nir.LIF(tau=full(node.tau_m * DT), v_reset=full(0.0), **membrane)
    return nir.CubaLIF(
        tau_syn=full(node.tau_s * DT),
        tau_mem=full(node.tau_m * DT),
        v_reset=full(0.0),
        w_in=full(1.0),
        **membrane,
    )
