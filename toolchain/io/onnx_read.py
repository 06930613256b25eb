"""Reading a Graph back from an ONNX model written by `toolchain.io.onnx_write`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto, helper, numpy_helper
from onnx.checker import ValidationError
from onnx.shape_inference import InferenceError

from toolchain.io.onnx_format import (
    DOMAIN,
    FIXED_KEYS,
    IMAGE,
    PLUMBING,
    PREVIOUS,
    READABLE_VERSIONS,
    OnnxFormatError,
)
from toolchain.ir import (
    Conv2d,
    CubaLIF,
    Dense,
    Edge,
    Flatten,
    Graph,
    Input,
    Node,
    SumPool2d,
)
from toolchain.ir.fields import kinds
from toolchain.ir.fields import required as required_fields
from toolchain.ir.provenance import DEFAULT_PREDICTION, PREDICTION

_MISSING = object()


class _Reader:
    """Rebuilds the Graph nodes from the principal ONNX nodes, in order, and their edges from
    the node inputs; plumbing is skipped."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.inits = {tensor.name: tensor for tensor in model.graph.initializer}
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.producer: dict[str, str] = {}  # tensor -> principal node, through the plumbing

    def read(self) -> tuple[list[Node], list[Edge]]:
        for proto in self.model.graph.node:
            op = _op_name(proto)
            if op in PLUMBING:
                self.producer[proto.output[0]] = self.source(proto.input[0])
            elif op in _READERS:
                node = _READERS[op](self, proto)
                self.nodes.append(node)
                self.producer[proto.output[0]] = node.name
                data = proto.input if isinstance(node, CubaLIF) else proto.input[:1]
                self.edges += [(self.source(x), node.name) for x in data if x != IMAGE]
            else:
                accepted = ", ".join([*_READERS, *PLUMBING])
                raise OnnxFormatError(
                    f"node {proto.name!r}: unknown operator {op}; accepted: {accepted}"
                )
        return self.nodes, self.edges

    def source(self, tensor: str) -> str:
        """The node whose output a tensor is (a recurrent input names its source)."""
        if tensor.endswith(PREVIOUS):
            return tensor.removesuffix(PREVIOUS)
        if tensor in self.producer:
            return self.producer[tensor]
        return tensor  # an initialiser: the reader of that node reports it

    def input(self, proto: onnx.NodeProto) -> Input:
        image = [x for x in self.model.graph.input if x.name == IMAGE]
        if not image:
            raise OnnxFormatError(f"the model has no graph input {IMAGE!r}")
        dims = image[0].type.tensor_type.shape.dim
        shape = tuple(dim.dim_value for dim in dims[1:])
        plane = bool(_int(proto, "constant_plane", 0))
        return Input(proto.name, shape, _int(proto, "levels"), plane)  # type: ignore[arg-type]

    def dense(self, proto: onnx.NodeProto) -> Dense:
        if _int(proto, "transB", 0) != 1 or _int(proto, "transA", 0) or len(proto.input) > 2:
            raise OnnxFormatError(f"node {proto.name!r}: Gemm must be x @ weight.T (transB=1)")
        exp = self.inits.get(f"{proto.name}.weight_exp")
        weight_exp = 0 if exp is None else numpy_helper.to_array(exp)
        if exp is not None and (weight_exp.shape or weight_exp.dtype.kind not in "iu"):
            raise OnnxFormatError(
                f"node {proto.name!r}: initialiser {exp.name!r} must be an integer scalar"
            )
        delay = self.inits.get(f"{proto.name}.delay")  # steps per synapse, (out, in)
        return Dense(
            proto.name,
            *self.weights(proto),
            weight_exp=int(weight_exp),
            delay=None if delay is None else numpy_helper.to_array(delay),
        )

    def conv(self, proto: onnx.NodeProto) -> Conv2d:
        strides = _ints(proto, "strides", [1, 1])
        pads = _ints(proto, "pads", [0, 0, 0, 0])
        if len(strides) != 2 or len(pads) != 4 or pads[:2] != pads[2:]:
            raise OnnxFormatError(
                f"node {proto.name!r}: strides {strides} and pads {pads} must be 2-D, with the "
                "same padding before and after"
            )
        weight, weight_int = self.weights(proto)
        return Conv2d(proto.name, weight, tuple(strides), tuple(pads[:2]), weight_int)

    def pool(self, proto: onnx.NodeProto) -> SumPool2d:
        return SumPool2d(proto.name, _int(proto, "size"), _float(proto, "weight"))

    def flatten(self, proto: onnx.NodeProto) -> Flatten:
        return Flatten(proto.name)

    def lif(self, proto: onnx.NodeProto) -> CubaLIF:
        """A population of every field the node states (`ir.fields`); absent ones default,
        except the fields without a default and, where one is there, all of FIXED_KEYS."""
        keys = {attribute.name for attribute in proto.attribute}
        if "weight_exp" in keys:  # domain version 1: the exponent of the Dense before it
            self.set_weight_exp(proto, _int(proto, "weight_exp"))
        required = set(required_fields(CubaLIF)) | (
            set(FIXED_KEYS) if keys & set(FIXED_KEYS) else set()
        )
        values: dict[str, Any] = {}
        for name, kind in kinds(CubaLIF).items():
            stated = name in keys or f"{name}_f64" in keys or name in required
            if f"{proto.name}.{name}" in self.inits:  # an array, or per-neuron values
                values[name] = numpy_helper.to_array(self.inits[f"{proto.name}.{name}"])
            elif kind == "float" and stated:
                values[name] = _float(proto, name, infinite=True)  # the node checks the range
            elif kind in ("int", "bool") and stated:
                number = _int(proto, name)
                values[name] = bool(number) if kind == "bool" else number
        return CubaLIF(proto.name, **values)

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


def _float(proto: onnx.NodeProto, key: str, infinite: bool = False) -> float:
    """The exact `<key>_f64` where present (checked against `<key>`), else the float32 `<key>`;
    finite unless `infinite` allows +inf."""
    exact = _attribute(proto, f"{key}_f64", AttributeProto.TENSOR, None)
    rounded = _attribute(proto, key, AttributeProto.FLOAT, _MISSING if exact is None else None)
    value = float(rounded if exact is None else numpy_helper.to_array(exact))
    if not (np.isfinite(value) or (infinite and value == np.inf)):
        raise OnnxFormatError(f"node {proto.name!r}: attribute {key}={value} is not finite")
    if exact is None:
        return value
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
    versions = [o.version for o in model.opset_import if o.domain == DOMAIN]
    if versions and versions[0] not in READABLE_VERSIONS:
        raise OnnxFormatError(
            f"operator domain {DOMAIN} version {versions[0]}; this release reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    nodes, edges = _Reader(model).read()
    rule = meta.get(PREDICTION, DEFAULT_PREDICTION)
    return Graph(tuple(nodes), int(meta["time_steps"]), meta["graph_name"], tuple(edges), rule)


def load_onnx(path: Path | str) -> Graph:
    """The Graph of a model written by `save_onnx`; OnnxFormatError names the file and the fault."""
    path = Path(path)
    model = _parse(path)
    try:
        graph = _read_model(model)
        onnx.checker.check_model(model, full_check=True)
    except (ValueError, ValidationError, InferenceError) as err:  # GraphError, the checker's
        raise OnnxFormatError(f"{path}: {err}") from err
    return graph
