"""A Graph as an ONNX model, and back: the exchange format read by `snn-deploy inspect` and tools.

One call of the model is ONE time step of the network: the graph input `image` is the image
(N, C, H, W) for this step (batch N symbolic), the graph output is the output population's spikes
for this step. The neuron nodes hold their state (synaptic current, membrane voltage) from call to
call, starting at zero; run T = metadata `time_steps` calls with the same image for one inference.

Layout. Every Graph node becomes one principal ONNX node named like it, whose output tensor has
the same name; a few plumbing nodes (`Cast`, `Reshape`) named `<node>:<role>` adapt types and
shapes. Standard operators (opset 17, IR version 8, for tools and runtimes of the last years):
- `Dense` -> `Gemm(x, <node>.weight, transB=1)`, the weight initialiser in the Graph's (out, in)
  layout; a `Reshape(x, [0, -1])` first flattens an input of more than one dimension.
- `Conv2d` -> `Conv(x, <node>.weight)` with `kernel_shape`, `strides` [s, s], `pads` [p, p, p, p].
- `Flatten` -> `Flatten(axis=1)`.
Custom operators, domain `snn_deploy` version 1 (real values are FLOAT attributes, rounded to
float32 for tools, each with a `<key>_f64` attribute, a double scalar TENSOR holding the exact
value that reading back uses; a file without `<key>_f64` is read from `<key>`):
- `snn_deploy.Input(image) -> spikes`, INT `levels`: the direct encoding; `spikes = image` in a
  float model, `round(image * levels)` (int32, a graded spike) in a fixed-point model.
- `snn_deploy.SumPool2d(x) -> y`, INT `size`, real `weight`: `weight` times the sum of every
  size x size window, stride `size`.
- `snn_deploy.CubaLIF(x) -> spikes` (0/1, same shape as x), stateful, one neuron per element:
  real `tau_m`, `tau_s`, `threshold` (the float dynamics of `toolchain.graph`); in a fixed-point
  model also INT `du`, `dv`, `vth` and real `scale` (Loihi 2's CUBA LIF, see `toolchain.graph`),
  and, when a Dense feeds it, INT `weight_exp`: that Dense's weight exponent, kept here as
  standard Gemm has no room for it (the integer sum is shifted, << e or arithmetic >> -e, as it
  enters the neurons; absent means 0).
The custom nodes have no schema that ONNX knows, so the model declares the type and shape of every
intermediate tensor in `value_info` (checked against the standard nodes by strict inference).

Types. A float model is float end to end, in the one dtype of its weights (float32 from training;
mixed dtypes are refused). A fixed-point model (`Graph.is_fixed`: every node quantised, no
SumPool2d) is int32 between nodes; its synapses consume the int32 initialiser `<node>.weight_int`:
`Gemm` runs on int32; `Conv`, which ONNX defines for floats only, gets `Cast` to float32 inputs
and a `Cast` of its sum back to int32 (exact while |sum| < 2**24; Loihi wraps convolution sums to
24 bits). The image stays float32.
Each synapse also keeps its float weight as initialiser `<node>.weight` (unused by the nodes of a
fixed-point model) and any integer weight as `<node>.weight_int`, so reading back is lossless
(a partly quantised Graph is a float model carrying its integers the same way).

Reading (`load_onnx`) rebuilds one Graph node per principal node, in order, taking weights from
the initialisers named after the node and skipping the plumbing, then runs the full ONNX check.

Metadata (`metadata_props`): `time_steps`, `encoding`, `producer`, `version`, `graph_name`,
`fixed_point` ("true"/"false").
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto, helper, numpy_helper
from onnx.checker import ValidationError
from onnx.shape_inference import InferenceError

from toolchain.atomic import atomic_path
from toolchain.graph import (
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

DOMAIN = "snn_deploy"
DOMAIN_VERSION = 1
OPSET = 17
IR_VERSION = 8
IMAGE = "image"
ENCODING = "direct: analog image every step as a graded spike of round(x*levels)"
PLUMBING = ("Cast", "Reshape")
FIXED_KEYS = ("du", "dv", "vth", "scale")
Shapes = tuple[tuple[int, ...], tuple[int, ...]]  # (input, output) of a node, per sample


class OnnxFormatError(ValueError):
    """A file is not a readable snn-deploy ONNX model; the message names the file."""


def metadata(graph: Graph) -> dict[str, str]:
    """The `metadata_props` of the model of `graph`."""
    version = importlib.metadata.version("snn-deploy")
    return {
        "time_steps": str(graph.T),
        "encoding": ENCODING,
        "producer": "snn-deploy",
        "version": version,
        "graph_name": graph.name,
        "fixed_point": str(graph.is_fixed).lower(),
    }


# ---------------------------------------------------------------------------------------- writing


@dataclass
class _Builder:
    fixed: bool
    act: int  # element type of the spikes between nodes
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[TensorProto] = field(default_factory=list)
    infos: list[onnx.ValueInfoProto] = field(default_factory=list)
    weight_exp: dict[str, int] = field(default_factory=dict)  # per CubaLIF fed by a Dense

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


def _write_input(b: _Builder, node: Input, x: str, shapes: Shapes) -> str:
    out = _batch(shapes[1])
    return b.add("Input", [x], node.name, out, b.act, domain=DOMAIN, levels=node.levels)


def _write_dense(b: _Builder, node: Dense, x: str, shapes: Shapes) -> str:
    if len(shapes[0]) > 1:
        flat = b.init(f"{node.name}:flat_shape", np.array([0, -1], np.int64))
        dims = _batch((math.prod(shapes[0]),))
        x = b.add("Reshape", [x, flat], f"{node.name}:flat", dims, b.act)
    return b.add("Gemm", [x, b.weights(node)], node.name, _batch(shapes[1]), b.act, transB=1)


def _write_conv(b: _Builder, node: Conv2d, x: str, shapes: Shapes) -> str:
    attrs = {
        "kernel_shape": list(node.weight.shape[2:]),
        "strides": [node.stride] * 2,
        "pads": [node.padding] * 4,
    }
    weight, out = b.weights(node), _batch(shapes[1])
    if not b.fixed:
        return b.add("Conv", [x, weight], node.name, out, b.act, **attrs)
    f32, name = TensorProto.FLOAT, node.name
    x = b.add("Cast", [x], f"{name}:x_float", _batch(shapes[0]), f32, to=f32)
    weight = b.add("Cast", [weight], f"{name}:weight_float", list(node.weight.shape), f32, to=f32)
    total = b.add("Conv", [x, weight], f"{name}:sum", out, f32, name=name, **attrs)
    return b.add("Cast", [total], name, out, b.act, name=f"{name}:to_int", to=b.act)


def _write_pool(b: _Builder, node: SumPool2d, x: str, shapes: Shapes) -> str:
    attrs = {"size": node.size, **_real("weight", node.weight)}
    return b.add("SumPool2d", [x], node.name, _batch(shapes[1]), b.act, domain=DOMAIN, **attrs)


def _write_flatten(b: _Builder, node: Flatten, x: str, shapes: Shapes) -> str:
    return b.add("Flatten", [x], node.name, _batch(shapes[1]), b.act, axis=1)


def _write_lif(b: _Builder, node: CubaLIF, x: str, shapes: Shapes) -> str:
    attrs = {
        **_real("tau_m", node.tau_m),
        **_real("tau_s", node.tau_s),
        **_real("threshold", node.threshold),
    }
    if node.is_fixed:
        attrs.update(
            du=int(node.du), dv=int(node.dv), vth=int(node.vth), **_real("scale", node.scale)
        )
    if node.name in b.weight_exp:
        attrs["weight_exp"] = b.weight_exp[node.name]
    return b.add("CubaLIF", [x], node.name, _batch(shapes[1]), b.act, domain=DOMAIN, **attrs)


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


def _weight_exps(graph: Graph) -> dict[str, int]:
    """The weight exponent of each Dense, keyed by the CubaLIF after it that carries it."""
    exps = {}
    for node, after in zip(graph.nodes, graph.nodes[1:], strict=False):
        if isinstance(node, Dense) and isinstance(after, CubaLIF):
            exps[after.name] = int(node.weight_exp)
        elif isinstance(node, Dense) and node.weight_exp:
            raise ValueError(f"node {node.name!r}: weight_exp needs a CubaLIF after the Dense")
    return exps


def graph_to_onnx(graph: Graph) -> onnx.ModelProto:
    """The ONNX model of one time step of `graph` (layout in the module docstring), checked."""
    fixed = graph.is_fixed
    act = TensorProto.INT32 if fixed else _float_type(graph)
    b = _Builder(fixed, act, weight_exp=_weight_exps(graph))
    shapes = graph.shapes()
    image_type = TensorProto.FLOAT if fixed else b.act
    image = helper.make_tensor_value_info(IMAGE, image_type, _batch(graph.input.shape))
    x = IMAGE
    for node, before, after in zip(graph.nodes, [shapes[0], *shapes], shapes, strict=False):
        x = _WRITERS[type(node)](b, node, x, (before, after))
    output = b.infos.pop()
    body = helper.make_graph(b.nodes, graph.name, [image], [output], b.inits, value_info=b.infos)
    model = helper.make_model(
        body,
        ir_version=IR_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        producer_name="snn-deploy",
        producer_version=importlib.metadata.version("snn-deploy"),
        doc_string="One time step of a spiking network; see toolchain/onnx_io.py",
    )
    helper.set_model_props(model, metadata(graph))
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(graph: Graph, path: Path | str) -> None:
    """Writes the model of `graph` to `path` atomically (an error leaves any old file intact)."""
    model = graph_to_onnx(graph)
    with atomic_path(path) as tmp:
        onnx.save(model, tmp, format="protobuf")


# ---------------------------------------------------------------------------------------- reading


class _Reader:
    """Rebuilds the Graph nodes from the principal ONNX nodes, in order; plumbing is skipped."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.inits = {tensor.name: tensor for tensor in model.graph.initializer}
        self.nodes: list[Node] = []

    def read(self) -> list[Node]:
        for proto in self.model.graph.node:
            op = _op_name(proto)
            if op in _READERS:
                self.nodes.append(_READERS[op](self, proto))
            elif op not in PLUMBING:
                accepted = ", ".join([*_READERS, *PLUMBING])
                raise OnnxFormatError(
                    f"node {proto.name!r}: unknown operator {op}; accepted: {accepted}"
                )
        return self.nodes

    def input(self, proto: onnx.NodeProto) -> Input:
        if not self.model.graph.input:
            raise OnnxFormatError("the model has no graph input")
        dims = self.model.graph.input[0].type.tensor_type.shape.dim
        shape = tuple(dim.dim_value for dim in dims[1:])
        return Input(proto.name, shape, _int(proto, "levels"))  # type: ignore[arg-type]

    def dense(self, proto: onnx.NodeProto) -> Dense:
        if _int(proto, "transB", 0) != 1 or _int(proto, "transA", 0) or len(proto.input) > 2:
            raise OnnxFormatError(f"node {proto.name!r}: Gemm must be x @ weight.T (transB=1)")
        return Dense(proto.name, *self.weights(proto))

    def conv(self, proto: onnx.NodeProto) -> Conv2d:
        strides = _ints(proto, "strides", [1, 1])
        pads = _ints(proto, "pads", [0, 0, 0, 0])
        if len(set(strides)) != 1 or len(set(pads)) != 1:
            raise OnnxFormatError(
                f"node {proto.name!r}: strides {strides} and pads {pads} must be uniform"
            )
        weight, weight_int = self.weights(proto)
        return Conv2d(proto.name, weight, strides[0], pads[0], weight_int)

    def pool(self, proto: onnx.NodeProto) -> SumPool2d:
        return SumPool2d(proto.name, _int(proto, "size"), _float(proto, "weight"))

    def flatten(self, proto: onnx.NodeProto) -> Flatten:
        return Flatten(proto.name)

    def lif(self, proto: onnx.NodeProto) -> CubaLIF:
        keys = {attribute.name for attribute in proto.attribute}
        fixed: dict[str, Any] = {}
        if keys.intersection(FIXED_KEYS):
            fixed = {key: _int(proto, key) for key in ("du", "dv", "vth")}
            fixed["scale"] = _float(proto, "scale")
        if "weight_exp" in keys:
            self.set_weight_exp(proto, _int(proto, "weight_exp"))
        floats = [_float(proto, key) for key in ("tau_m", "tau_s", "threshold")]
        return CubaLIF(proto.name, *floats, **fixed)

    def set_weight_exp(self, proto: onnx.NodeProto, weight_exp: int) -> None:
        if not self.nodes or not isinstance(self.nodes[-1], Dense):
            raise OnnxFormatError(f"node {proto.name!r}: weight_exp but no Dense before it")
        self.nodes[-1] = replace(self.nodes[-1], weight_exp=weight_exp)

    def weights(self, proto: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray | None]:
        weight_int = self.inits.get(f"{proto.name}.weight_int")
        return (
            numpy_helper.to_array(self.initialiser(proto, f"{proto.name}.weight")),
            None if weight_int is None else numpy_helper.to_array(weight_int),
        )

    def initialiser(self, proto: onnx.NodeProto, name: str) -> TensorProto:
        if name not in self.inits:
            raise OnnxFormatError(f"node {proto.name!r}: initialiser {name!r} is missing")
        return self.inits[name]


_READERS: dict[str, Callable[[_Reader, onnx.NodeProto], Node]] = {
    f"{DOMAIN}.Input": _Reader.input,
    "Gemm": _Reader.dense,
    "Conv": _Reader.conv,
    f"{DOMAIN}.SumPool2d": _Reader.pool,
    "Flatten": _Reader.flatten,
    f"{DOMAIN}.CubaLIF": _Reader.lif,
}


def _op_name(proto: onnx.NodeProto) -> str:
    domain = "" if proto.domain in ("", "ai.onnx") else proto.domain
    return f"{domain}.{proto.op_type}" if domain else proto.op_type


_MISSING = object()


def _attribute(proto: onnx.NodeProto, key: str, kind: int, default: Any = _MISSING) -> Any:
    for attribute in proto.attribute:
        if attribute.name == key:
            if attribute.type != kind:
                kind_name = AttributeProto.AttributeType.Name(kind)
                raise OnnxFormatError(f"node {proto.name!r}: attribute {key!r} is not {kind_name}")
            return helper.get_attribute_value(attribute)
    if default is _MISSING:
        raise OnnxFormatError(f"node {proto.name!r} ({_op_name(proto)}) lacks attribute {key!r}")
    return default


def _int(proto: onnx.NodeProto, key: str, default: Any = _MISSING) -> int:
    return _attribute(proto, key, AttributeProto.INT, default)


def _ints(proto: onnx.NodeProto, key: str, default: list[int]) -> list[int]:
    return list(_attribute(proto, key, AttributeProto.INTS, default))


def _float(proto: onnx.NodeProto, key: str) -> float:
    """The exact `<key>_f64` where present (checked against `<key>`), else the float32 `<key>`."""
    exact = _attribute(proto, f"{key}_f64", AttributeProto.TENSOR, None)
    rounded = _attribute(proto, key, AttributeProto.FLOAT, _MISSING if exact is None else None)
    if exact is None:
        return float(rounded)
    value = float(numpy_helper.to_array(exact))
    if rounded is not None and np.float32(value) != np.float32(rounded):
        raise OnnxFormatError(
            f"node {proto.name!r}: attribute {key}={rounded} disagrees with {key}_f64={value}"
        )
    return value


def _parse(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load_model_from_string(path.read_bytes(), format="protobuf")
    except DecodeError as err:
        raise OnnxFormatError(f"{path}: not an ONNX model, or a truncated one ({err})") from err


def _read_model(model: onnx.ModelProto) -> Graph:
    meta = {prop.key: prop.value for prop in model.metadata_props}
    missing = [key for key in ("time_steps", "graph_name") if key not in meta]
    if missing:
        raise OnnxFormatError(f"not a snn-deploy ONNX model: metadata lacks {missing}")
    if not meta["time_steps"].isdigit():
        raise OnnxFormatError(f"metadata time_steps={meta['time_steps']!r} is not a count")
    nodes = _Reader(model).read()
    return Graph(tuple(nodes), T=int(meta["time_steps"]), name=meta["graph_name"])


def load_onnx(path: Path | str) -> Graph:
    """The Graph of a model written by `save_onnx`; OnnxFormatError names the file and the fault."""
    path = Path(path)
    model = _parse(path)
    try:
        graph = _read_model(model)
        onnx.checker.check_model(model, full_check=True)
    except (OnnxFormatError, GraphError, ValidationError, InferenceError) as err:
        raise OnnxFormatError(f"{path}: {err}") from err
    return graph


# --------------------------------------------------------------------------------------- describe


def _weights(node: Dense | Conv2d) -> str:
    text = f"weight [{node.weight.min():.4g}, {node.weight.max():.4g}]"
    if node.weight_int is not None:
        text += f", weight_int [{node.weight_int.min()}, {node.weight_int.max()}]"
    return text


def _parameters(node: Node) -> str:
    match node:
        case Input():
            return f"levels {node.levels}"
        case Dense() if node.weight_int is not None:
            return f"{_weights(node)}, weight_exp {node.weight_exp}"
        case Dense():
            return _weights(node)
        case Conv2d():
            return f"{_weights(node)}, stride {node.stride}, padding {node.padding}"
        case SumPool2d():
            return f"size {node.size}, weight {node.weight:.4g}"
        case CubaLIF() if node.is_fixed:
            fixed = f"du {node.du}, dv {node.dv}, vth {node.vth}, scale {node.scale:.6g}"
            return f"{_neuron(node)}, {fixed}"
        case CubaLIF():
            return _neuron(node)
        case _:
            return ""


def _neuron(node: CubaLIF) -> str:
    return f"tau_m {node.tau_m:.4g}, tau_s {node.tau_s:.4g}, threshold {node.threshold:.4g}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell; the last column is left ragged."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    padded = ([cell.ljust(width) for cell, width in zip(row, widths, strict=False)] for row in rows)
    return ["  ".join([*cells, row[-1]]).rstrip() for cells, row in zip(padded, rows, strict=True)]


def describe(graph: Graph) -> str:
    """A header line (name, T, float or fixed point, lowering, ONNX metadata) over a node table."""
    kind = "fixed point" if graph.is_fixed else "float"
    lowered = "lowered" if graph.is_lowered else "not lowered"
    meta = ", ".join(f"{key}={value}" for key, value in metadata(graph).items())
    header = f"graph {graph.name!r}: T={graph.T}, {kind}, {lowered}; ONNX metadata: {meta}"
    rows = [("name", "type", "output shape", "parameters")]
    for node, shape in zip(graph.nodes, graph.shapes(), strict=True):
        rows.append((node.name, type(node).__name__, "x".join(map(str, shape)), _parameters(node)))
    return "\n".join([header, *_table(rows)])
