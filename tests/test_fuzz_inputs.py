"""Mutated configs and ONNX graphs are accepted or refused with a clear error, never a crash.

Hypothesis changes values, types and keys of the shipped configs and of a saved fixed-point
ONNX model; the readers must either return or raise their own error type with a message.
"""

import copy
import math
import tomllib
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from toolchain.io import OnnxFormatError, load_onnx, save_onnx
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph, Input
from toolchain.train.config import Config, ConfigError

EXAMPLES = sorted(Path("examples").glob("*.toml"))
ODD_VALUES = [
    math.nan,
    math.inf,
    -1,
    0,
    1,
    20.5,
    -0.5,
    2**40,
    True,
    "x",
    "",
    [],
    [0, 1],
    {},
    {"type": "dense"},
    None,
]


def paths(tree, prefix=()):
    """Every (key path) in a nested dict/list structure."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return []
    found = []
    for key, value in items:
        found.append((*prefix, key))
        found += paths(value, (*prefix, key))
    return found


def mutated(tree, path, value):
    tree = copy.deepcopy(tree)
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return tree


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_configs_are_accepted_or_refused_clearly(data):
    source = data.draw(st.sampled_from(EXAMPLES))
    tree = tomllib.loads(source.read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(tree)))
        tree = mutated(tree, path, data.draw(st.sampled_from(ODD_VALUES)))
    try:
        Config.from_dict(tree)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    nodes = (
        Input("input", (1, 6, 6), 255),
        Conv2d(
            "conv",
            rng.normal(size=(3, 1, 3, 3)).astype(np.float32),
            1,
            1,
            rng.integers(-256, 255, (3, 1, 3, 3)).astype(np.int32),
        ),
        CubaLIF("lif1", 5.0, 3.0, 1.0, du=1364, dv=819, vth=300, scale=900.0),
        Dense(
            "fc",
            rng.normal(size=(4, 108)).astype(np.float32),
            rng.integers(-256, 255, (4, 108)).astype(np.int32),
            weight_exp=-2,
        ),
        CubaLIF("lif2", 5.0, 3.0, 1.0, du=1364, dv=819, vth=200, scale=700.0),
    )
    path = tmp_path_factory.mktemp("fuzz") / "model.onnx"
    save_onnx(Graph(nodes, T=4, name="fuzz"), path)
    return onnx.load(path)


def _attribute_value(attribute, value):
    if attribute.type != onnx.AttributeProto.FLOAT:
        value = max(-(2**40), min(2**40, value)) if math.isfinite(value) else -1
    if attribute.type == onnx.AttributeProto.INT:
        attribute.i = int(value)
    elif attribute.type == onnx.AttributeProto.FLOAT:
        attribute.f = float(value)
    elif attribute.type == onnx.AttributeProto.INTS:
        attribute.ints[:] = [int(value)] * max(1, len(attribute.ints))
    elif attribute.type == onnx.AttributeProto.TENSOR:
        attribute.t.CopyFrom(numpy_helper.from_array(np.array(float(value)), attribute.t.name))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_onnx_models_are_read_or_refused_clearly(saved_model, tmp_path_factory, data):
    model = copy.deepcopy(saved_model)
    kind = data.draw(st.sampled_from(["attribute", "initialiser", "drop", "metadata", "dims"]))
    if kind == "attribute":
        node = data.draw(st.sampled_from([n for n in model.graph.node if n.attribute]))
        attribute = data.draw(st.sampled_from(list(node.attribute)))
        value = data.draw(st.sampled_from([0, -1, 3, 2**20, 0.5, math.nan, -math.inf, 1e30]))
        _attribute_value(attribute, value)
    elif kind == "initialiser":
        tensor = data.draw(st.sampled_from(list(model.graph.initializer)))
        array = numpy_helper.to_array(tensor).copy()
        if array.size:
            flat = array.reshape(-1)
            flat[data.draw(st.integers(0, flat.size - 1))] = data.draw(
                st.sampled_from([1000, -1000, 255, 0])
                if array.dtype.kind in "iu"
                else st.sampled_from([math.nan, math.inf, 1e9, 0.0])
            )
        shape = data.draw(st.sampled_from([array.shape, array.reshape(-1).shape]))
        tensor.CopyFrom(numpy_helper.from_array(array.reshape(shape), tensor.name))
    elif kind == "drop":
        node = data.draw(st.sampled_from(list(model.graph.node)))
        model.graph.node.remove(node)
    elif kind == "metadata":
        prop = data.draw(st.sampled_from(list(model.metadata_props)))
        prop.value = data.draw(st.sampled_from(["", "-3", "abc", "0", "99999999"]))
    else:
        dim = model.graph.input[0].type.tensor_type.shape.dim[data.draw(st.integers(1, 3))]
        dim.dim_value = data.draw(st.sampled_from([0, 1, 7, 100]))
    path = tmp_path_factory.mktemp("fuzzed") / "model.onnx"
    onnx.save(model, path)
    try:
        load_onnx(path)
    except OnnxFormatError as err:
        assert "model.onnx" in str(err)
