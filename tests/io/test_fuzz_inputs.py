"""Mutated configs, ONNX, NIR and netx graphs and .npy inputs are accepted or refused with a
clear error, never a crash, and never a multi-gigabyte allocation.

Hypothesis changes values, types, keys and sizes (toward the huge) of the shipped configs, a
saved fixed-point ONNX model, a NIR file, lava-dl's tiny netx file and a .npy header; the
readers must either return or raise a `UserError` with a one-line message, and what they accept
must pass or fail the memory estimate of the work it asks for (`toolchain.resources`).
"""

import copy
import math
import shutil
import tomllib
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from targets.loihi2.simulator import memory_needed
from toolchain.errors import ResourceError, UserError
from toolchain.io import OnnxFormatError, load_onnx, save_onnx
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph, Input
from toolchain.resources import require_memory
from toolchain.train.config import Config, ConfigError
from toolchain.train.loop import check_memory

EXAMPLES = sorted(Path("examples").glob("*.toml"))
TINY_NET = ROOT / "tests/fixtures/lava_dl/tiny.net"
NIR_FILE = ROOT.parent / "shared/reference/nir-paper/lif_norse.nir"
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
    10**5,
    10**8,
    10**12,
    2**63,
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
        check_memory(Config.from_dict(tree))  # what training it asks for fits, or is refused
    except (ConfigError, ResourceError) as err:
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
        huge = ["100000", "100000000", "1000000000000"]
        prop.value = data.draw(st.sampled_from(["", "-3", "abc", "0", "99999999", *huge]))
    else:
        dim = model.graph.input[0].type.tensor_type.shape.dim[data.draw(st.integers(1, 3))]
        dim.dim_value = data.draw(st.sampled_from([0, 1, 7, 100, 10**5, 10**9]))
    path = tmp_path_factory.mktemp("fuzzed") / "model.onnx"
    onnx.save(model, path)
    try:
        graph = load_onnx(path)
    except OnnxFormatError as err:
        assert "model.onnx" in str(err)
        return
    fits_or_refused(graph)


def fits_or_refused(graph: Graph, samples: int = 1000) -> None:
    """The simulation of `samples` samples fits this machine's memory or is refused."""
    try:
        require_memory(memory_needed(graph, samples, False), "simulating")
    except ResourceError as err:
        assert "needs about" in str(err)


def mutated_dataset(data, value: np.ndarray) -> np.ndarray:
    """A dataset's value changed as a damaged or hostile file might have it."""
    kind = data.draw(st.sampled_from(["value", "shape", "dtype", "huge"]))
    if kind == "value" and value.size and value.dtype.kind in "biuf":
        value = value.astype(np.float64).copy()
        flat = value.reshape(-1)
        flat[data.draw(st.integers(0, flat.size - 1))] = data.draw(
            st.sampled_from([math.nan, -math.inf, 1e30, -1.0, 0.0, 2**40])
        )
        return value
    if kind == "shape":
        return value.reshape(-1) if value.ndim != 1 else value.reshape(1, -1)
    if kind == "dtype":
        return np.array([b"text"] * max(1, value.size))
    return np.full(data.draw(st.sampled_from([(10**5,), (3, 10**3)])), 1.0)


def rewritten(data, source: Path, folder: Path) -> Path:
    """A copy of an HDF5 file with one dataset replaced by `mutated_dataset`."""
    import h5py

    path = Path(shutil.copy(source, folder / source.name))
    with h5py.File(path, "a") as f:
        names = []  # a visit goes on while the callback returns None
        f.visititems(lambda key, item: names.append((key, isinstance(item, h5py.Dataset))))
        name = data.draw(st.sampled_from(sorted(key for key, dataset in names if dataset)))
        value = mutated_dataset(data, np.asarray(f[name][()]))
        del f[name]
        f[name] = value
    return path


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_netx_files_are_read_or_refused_clearly(tmp_path_factory, data):
    from toolchain.io.netx_read import read_netx_graph

    path = rewritten(data, TINY_NET, tmp_path_factory.mktemp("netx"))
    try:
        graph = read_netx_graph(path)
    except UserError as err:
        assert str(err) and "\n" not in str(err)
        return
    fits_or_refused(graph)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_nir_files_are_read_or_refused_clearly(tmp_path_factory, data):
    from toolchain.io.nir_read import read_nir

    path = rewritten(data, NIR_FILE, tmp_path_factory.mktemp("nir"))
    try:
        graph = read_nir(path, convention="norse")
    except UserError as err:
        assert str(err) and "\n" not in str(err)
        return
    fits_or_refused(graph)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_npy_headers_of_any_size_are_read_or_refused_clearly(tmp_path_factory, data):
    from toolchain.data.inputs import load_inputs

    count = data.draw(st.sampled_from([0, 1, 3, 10**6, 10**10, 2**62]))
    dtype = data.draw(st.sampled_from(["<f4", "<f8", "|u1", "|O", "<c8"]))
    shape = (count, 1, 8, 8)
    held = data.draw(st.sampled_from([0, 64, 256 * 3]))  # bytes after the header
    path = tmp_path_factory.mktemp("npy") / "x.npy"
    with path.open("wb") as handle:
        header = {"descr": dtype, "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(bytes(held))
    try:
        inputs = load_inputs(path, (1, 8, 8), 5)
    except UserError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert inputs.nbytes <= held * 8
