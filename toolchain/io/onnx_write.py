"""Writing a Graph as an ONNX model (layout: `toolchain.io.onnx_format`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from toolchain.atomic import atomic_path
from toolchain.io.onnx_format import DOMAIN, DOMAIN_VERSION, IMAGE, IR_VERSION, OPSET, PREVIOUS
from toolchain.ir import (
    SYNAPSES,
    Conv2d,
    CubaLIF,
    Dense,
    Flatten,
    Graph,
    GraphError,
    Input,
    Node,
    SumPool2d,
)
from toolchain.ir.fields import set_fields
from toolchain.ir.provenance import PRODUCER, graph_metadata, version

Shapes = tuple[tuple[int, ...], tuple[int, ...]]  # (input, output) of a node, per sample


@dataclass
class _Builder:
    fixed: bool
    act: int  # element type of the spikes between nodes
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[TensorProto] = field(default_factory=list)
    infos: list[onnx.ValueInfoProto] = field(default_factory=list)

    def add(
        self, op: str, inputs: list[str], output: str, dims: list[Any], elem: int, **attrs: Any
    ) -> str:
        name = attrs.pop("name", output)
        node = helper.make_node(op, inputs, [output], name=name, **attrs)
        self.nodes.append(node)
        self.infos.append(helper.make_tensor_value_info(output, elem, dims))
        return output

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def weights(self, node: Dense | Conv2d) -> str:
        """Stores both weights; returns the one the synapse consumes."""
        weight = self.init(f"{node.name}.weight", node.weight)
        if node.weight_int is None:
            return weight
        weight_int = self.init(f"{node.name}.weight_int", node.weight_int.astype(np.int32))
        return weight_int if self.fixed else weight


def _batch(shape: tuple[int, ...]) -> list[Any]:
    return ["N", *shape]


def _real(key: str, value: float) -> dict[str, Any]:
    exact = numpy_helper.from_array(np.array(value, np.float64), f"{key}_f64")
    return {key: float(value), f"{key}_f64": exact}


def _write_input(b: _Builder, node: Input, xs: list[str], shapes: Shapes) -> str:
    out = _batch(shapes[1])
    plane = {"constant_plane": 1} if node.constant_plane else {}
    return b.add("Input", xs, node.name, out, b.act, domain=DOMAIN, levels=node.levels, **plane)


def _write_dense(b: _Builder, node: Dense, xs: list[str], shapes: Shapes) -> str:
    (x,) = xs
    if len(shapes[0]) > 1:
        flat = b.init(f"{node.name}:flat_shape", np.array([0, -1], np.int64))
        dims = _batch((math.prod(shapes[0]),))
        x = b.add("Reshape", [x, flat], f"{node.name}:flat", dims, b.act)
    if node.weight_exp:
        b.init(f"{node.name}.weight_exp", np.array(node.weight_exp, np.int64))
    if node.delay is not None:  # read by our reader; a plain ONNX runtime ignores it
        b.init(f"{node.name}.delay", node.delay.astype(np.int32))
    return b.add("Gemm", [x, b.weights(node)], node.name, _batch(shapes[1]), b.act, transB=1)


def _write_conv(b: _Builder, node: Conv2d, xs: list[str], shapes: Shapes) -> str:
    (x,) = xs
    attrs = {
        "kernel_shape": list(node.weight.shape[2:]),
        "strides": list(node.stride),
        "pads": [*node.padding, *node.padding],
    }
    weight, out = b.weights(node), _batch(shapes[1])
    if not b.fixed:
        return b.add("Conv", [x, weight], node.name, out, b.act, **attrs)
    f32, name = TensorProto.FLOAT, node.name
    x = b.add("Cast", [x], f"{name}:x_float", _batch(shapes[0]), f32, to=f32)
    weight = b.add("Cast", [weight], f"{name}:weight_float", list(node.weight.shape), f32, to=f32)
    total = b.add("Conv", [x, weight], f"{name}:sum", out, f32, name=name, **attrs)
    return b.add("Cast", [total], name, out, b.act, name=f"{name}:to_int", to=b.act)


def _write_pool(b: _Builder, node: SumPool2d, xs: list[str], shapes: Shapes) -> str:
    attrs = {"size": node.size, **_real("weight", node.weight)}
    return b.add("SumPool2d", xs, node.name, _batch(shapes[1]), b.act, domain=DOMAIN, **attrs)


def _write_flatten(b: _Builder, node: Flatten, xs: list[str], shapes: Shapes) -> str:
    return b.add("Flatten", xs, node.name, _batch(shapes[1]), b.act, axis=1)


def _write_lif(b: _Builder, node: CubaLIF, xs: list[str], shapes: Shapes) -> str:
    """Every set field of the population (`ir.fields`): reals as exact attributes, integers and
    flags as INT attributes, arrays (per-neuron parameters too) as initialisers
    `<node>.<field>` (int32 where integer)."""
    attrs: dict[str, Any] = {}
    for name, kind, value in set_fields(node):
        if isinstance(value, np.ndarray):
            integer = np.issubdtype(value.dtype, np.integer)
            b.init(f"{node.name}.{name}", value.astype(np.int32) if integer else value)
        elif kind == "float":
            attrs.update(_real(name, value))
        else:
            attrs[name] = int(value)
    return b.add("CubaLIF", xs, node.name, _batch(shapes[1]), b.act, domain=DOMAIN, **attrs)


_WRITERS: dict[type[Node], Callable[..., str]] = {
    Input: _write_input,
    Dense: _write_dense,
    Conv2d: _write_conv,
    SumPool2d: _write_pool,
    Flatten: _write_flatten,
    CubaLIF: _write_lif,
}


def _float_type(graph: Graph) -> int:
    dtypes = {node.weight.dtype for node in graph.nodes if isinstance(node, SYNAPSES)}
    if len(dtypes) != 1:
        raise ValueError(f"graph {graph.name!r}: weights mix dtypes {sorted(map(str, dtypes))}")
    return helper.np_dtype_to_tensor_dtype(dtypes.pop())


def graph_to_onnx(graph: Graph) -> onnx.ModelProto:
    """The ONNX model of one time step of `graph` (layout in `onnx_format`), checked."""
    for node in graph.nodes:  # ONNX names each node's output after the node
        if node.name == IMAGE or node.name.endswith(PREVIOUS):
            raise GraphError(
                f"node {node.name!r}: ONNX files of snn-deploy reserve the name {IMAGE!r} and "
                f"names ending in {PREVIOUS!r}; rename the node"
            )
    fixed = graph.is_fixed
    b = _Builder(fixed, TensorProto.INT32 if fixed else _float_type(graph))
    shapes = dict(zip((node.name for node in graph.nodes), graph.shapes(), strict=True))
    image_type = TensorProto.FLOAT if fixed else b.act
    inputs = [helper.make_tensor_value_info(IMAGE, image_type, _batch(graph.input.shape))]
    recurrent = [(a, t) for a, t in graph.edges if graph.is_recurrent(a, t)]
    for source in dict.fromkeys(a for a, _ in recurrent):
        inputs.append(
            helper.make_tensor_value_info(source + PREVIOUS, b.act, _batch(shapes[source]))
        )
    for node in graph.nodes:
        sources = graph.sources(node.name)
        xs = [s + PREVIOUS if graph.is_recurrent(s, node.name) else s for s in sources] or [IMAGE]
        in_shape = shapes[sources[0]] if sources else shapes[node.name]
        _WRITERS[type(node)](b, node, xs, (in_shape, shapes[node.name]))
    outputs = [graph.nodes[-1].name, *(a for a, _ in recurrent if a != graph.nodes[-1].name)]
    infos = {info.name: info for info in b.infos}
    body = helper.make_graph(
        b.nodes,
        graph.name,
        inputs,
        [infos[name] for name in dict.fromkeys(outputs)],
        b.inits,
        value_info=[info for info in b.infos if info.name not in outputs],
    )
    model = helper.make_model(
        body,
        ir_version=IR_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        producer_name=PRODUCER,
        producer_version=version(),
        doc_string="One time step of a spiking network; see toolchain/io/onnx_format.py",
    )
    helper.set_model_props(model, graph_metadata(graph))
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(graph: Graph, path: Path | str) -> None:
    """Writes the model of `graph` to `path` atomically (an error leaves any old file intact)."""
    model = graph_to_onnx(graph)
    with atomic_path(path) as tmp:
        onnx.save(model, tmp, format="protobuf")
