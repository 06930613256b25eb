"""ONNX export and import of Graphs: checked models, lossless round trips, clear errors."""

import functools
import importlib.metadata
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from graphs import fixed_lif as shared_fixed_lif
from graphs import float_lif, float_weights, weight_ints
from onnx import numpy_helper

from toolchain.io import OnnxFormatError, graph_to_onnx, load_onnx, save_onnx
from toolchain.io.onnx_format import DOMAIN, DOMAIN_VERSION
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, Input, SumPool2d
from toolchain.ir.describe import describe

RNG = np.random.default_rng(0)
weights = functools.partial(float_weights, RNG, scale=0.3)
integers = functools.partial(weight_ints, RNG)
lif = functools.partial(float_lif, threshold=0.3)


def fixed_lif(name: str, vth: int) -> CubaLIF:
    return shared_fixed_lif(
        name, 1365, 819, vth, tau_m=5.0, tau_s=3.0, threshold=0.3, scale=1234.567
    )


def float_mlp() -> Graph:
    nodes = (
        Input("input", (1, 8, 8), 16),
        Flatten("flatten"),
        Dense("fc1", weights(32, 64)),
        lif("lif1"),
        Dense("fc2", weights(10, 32)),
        lif("lif2", threshold=1.1),
    )
    return Graph(nodes, T=8, name="mlp")


def float_cnn() -> Graph:
    nodes = (
        Input("input", (1, 12, 12), 255),
        Conv2d("conv1", weights(4, 1, 3, 3), padding=1),
        lif("lif1"),
        SumPool2d("pool1", 2, 1.1),
        Conv2d("conv2", weights(8, 4, 3, 3), padding=1),
        lif("lif2"),
        SumPool2d("pool2", 3, 0.7),
        Flatten("flatten"),
        Dense("fc", weights(10, 32)),
        lif("lif3"),
    )
    return Graph(nodes, T=6, name="cnn")


def fixed_mlp() -> Graph:
    nodes = (
        Input("input", (1, 8, 8), 16),
        Dense("fc1", weights(32, 64), integers(32, 64), weight_exp=-2),
        fixed_lif("lif1", 700),
        Dense("fc2", weights(10, 32), integers(10, 32), weight_exp=3),
        fixed_lif("lif2", 900),
    )
    return Graph(nodes, T=8, name="mlp-fixed")


def fixed_cnn() -> Graph:
    nodes = (
        Input("input", (1, 12, 12), 255),
        Conv2d("conv1", weights(4, 1, 3, 3), stride=2, padding=1, weight_int=integers(4, 1, 3, 3)),
        fixed_lif("lif1", 500),
        Conv2d("conv2", weights(8, 4, 3, 3), stride=2, padding=0, weight_int=integers(8, 4, 3, 3)),
        fixed_lif("lif2", 600),
        Dense("fc", weights(10, 32), integers(10, 32), weight_exp=1),
        fixed_lif("lif3", 800),
    )
    return Graph(nodes, T=6, name="cnn-fixed")


def subtracting_mlp() -> Graph:
    """fixed_mlp whose first population resets by subtraction (an exact-real amount)."""
    nodes = list(fixed_mlp().nodes)
    lif1 = nodes[2]
    nodes[2] = CubaLIF(
        "lif1", 5.0, 3.0, 0.3, du=1365, dv=819, vth=700, scale=lif1.scale,
        reset_subtract=1 / 0.9, reset_sub=round(lif1.scale / 0.9),
    )  # fmt: skip
    return Graph(tuple(nodes), T=8, name="mlp-subtract")


def biased_cnn() -> Graph:
    """fixed_cnn with a bias per channel on lif1 and per neuron on lif3 (float and integers)."""
    nodes = list(fixed_cnn().nodes)
    mant1, mant3 = integers(4) * 8, integers(10) * 16
    for index, mant, exp in ((2, mant1, 3), (6, mant3, 0)):
        bias = mant * 2.0**exp / nodes[index].scale
        nodes[index] = replace(nodes[index], bias=bias, bias_mant=mant, bias_exp=exp)
    return Graph(tuple(nodes), T=6, name="cnn-biased")


def float_biased_mlp() -> Graph:
    nodes = list(float_mlp().nodes)
    nodes[3] = replace(nodes[3], bias=weights(32).astype(np.float64))
    return Graph(tuple(nodes), T=8, name="mlp-biased")


GRAPHS = {"float_mlp": float_mlp, "float_cnn": float_cnn, "fixed_mlp": fixed_mlp}
GRAPHS["biased_cnn"] = biased_cnn
GRAPHS["float_biased_mlp"] = float_biased_mlp
GRAPHS["fixed_cnn"] = fixed_cnn
GRAPHS["subtracting_mlp"] = subtracting_mlp
FIXED = ("fixed_mlp", "fixed_cnn")


@pytest.fixture(params=sorted(GRAPHS))
def graph(request: pytest.FixtureRequest) -> Graph:
    return GRAPHS[request.param]()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "cnn.onnx"
    save_onnx(fixed_cnn(), path)
    return path


def initialisers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def test_fixture_graphs_are_what_they_claim():
    assert not float_mlp().is_fixed and not float_cnn().is_lowered
    assert fixed_mlp().is_fixed and fixed_cnn().is_fixed and fixed_cnn().is_lowered


def test_model_passes_the_full_onnx_check(graph: Graph):
    model = graph_to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    assert {(o.domain, o.version) for o in model.opset_import} >= {(DOMAIN, DOMAIN_VERSION)}


@pytest.mark.conformance(
    "ONNX",
    {
        "float_mlp": "LIF",
        "fixed_mlp": "LIF",
        "float_biased_mlp": "bias",
        "float_cnn": "pooling",
        "fixed_cnn": "convolution",
        "biased_cnn": "bias",
        "subtracting_mlp": "reset by subtraction",
    },
    "round trip",
)
def test_round_trip_gives_an_equal_graph(graph: Graph, tmp_path: Path):
    path = tmp_path / "model.onnx"
    save_onnx(graph, path)
    assert load_onnx(path) == graph


def test_round_trip_keeps_float64_weights_and_exact_reals(tmp_path: Path):
    nodes = (
        Input("input", (2, 4, 4), 7),
        Conv2d("conv", weights(3, 2, 2, 2).astype(np.float64), stride=2),
        CubaLIF("lif", 4.7, 2.3, 0.1 + 0.2),
    )
    graph = Graph(nodes, T=3, name="f64")
    save_onnx(graph, tmp_path / "f64.onnx")
    assert load_onnx(tmp_path / "f64.onnx") == graph


def test_metadata(graph: Graph):
    meta = {p.key: p.value for p in graph_to_onnx(graph).metadata_props}
    assert meta == {
        "time_steps": str(graph.T),
        "encoding": "direct: analog image every step as a graded spike of round(x*levels)",
        "producer": "snn-deploy",
        "version": importlib.metadata.version("snn-deploy"),
        "graph_name": graph.name,
        "fixed_point": "true" if graph.is_fixed else "false",
        "prediction": "psp",
    }


def test_one_step_in_and_out_with_a_symbolic_batch(graph: Graph):
    model = graph_to_onnx(graph)
    (image,), (output,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims == ["N", *graph.input.shape]
    assert output.name == graph.nodes[-1].name
    out_dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
    assert out_dims == ["N", *graph.shapes()[-1]]


def test_float_synapses_are_standard_float_ops():
    graph = float_cnn()
    model = graph_to_onnx(graph)
    ops = [(n.domain, n.op_type) for n in model.graph.node]
    assert ops.count(("", "Conv")) == 2 and ("", "Flatten") in ops and ("", "Gemm") in ops
    assert ops.count((DOMAIN, "CubaLIF")) == 3 and ops.count((DOMAIN, "SumPool2d")) == 2
    conv = node(model, "conv1")
    assert conv.input[1] == "conv1.weight"
    inits = initialisers(model)
    assert inits["conv1.weight"].dtype == np.float32
    assert np.array_equal(inits["conv1.weight"], graph.node("conv1").weight)


@pytest.mark.parametrize("name", FIXED)
def test_fixed_synapses_consume_int32_weights(name: str):
    graph = GRAPHS[name]()
    model = graph_to_onnx(graph)
    inits = initialisers(model)
    producers = {n.output[0]: n for n in model.graph.node}
    for synapse in graph.nodes:
        if not isinstance(synapse, Dense | Conv2d):
            continue
        weight_int = inits[f"{synapse.name}.weight_int"]
        assert weight_int.dtype == np.int32 and np.array_equal(weight_int, synapse.weight_int)
        assert np.array_equal(inits[f"{synapse.name}.weight"], synapse.weight)
        op = node(model, synapse.name)
        consumed = op.input[1]
        if op.op_type == "Conv":  # ONNX Conv is float only: the int32 weights are cast for it
            assert producers[consumed].op_type == "Cast"
            consumed = producers[consumed].input[0]
        assert consumed == f"{synapse.name}.weight_int"
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    for population in graph.populations:
        assert types.get(population.name, onnx.TensorProto.INT32) == onnx.TensorProto.INT32


def test_conv_attributes():
    conv = node(graph_to_onnx(fixed_cnn()), "conv1")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs == {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}


def test_neuron_attributes():
    model = graph_to_onnx(fixed_mlp())
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node(model, "lif1").attribute}
    assert (attrs["du"], attrs["dv"], attrs["vth"]) == (1365, 819, 700)
    assert initialisers(model)["fc1.weight_exp"] == -2 and "weight_exp" not in attrs
    assert attrs["threshold"] == pytest.approx(0.3) and attrs["scale"] == pytest.approx(1234.567)
    assert numpy_helper.to_array(attrs["threshold_f64"]) == 0.3
    levels = node(model, "input").attribute[0]
    assert (levels.name, levels.i) == ("levels", 16)


def test_version_1_files_with_weight_exp_on_the_population_are_read(saved: Path):
    """Domain version 1 kept a Dense's exponent as the next CubaLIF's attribute."""

    def to_version_1(model: onnx.ModelProto) -> None:
        inits = model.graph.initializer
        inits.remove(next(t for t in inits if t.name == "fc.weight_exp"))
        node(model, "lif3").attribute.append(onnx.helper.make_attribute("weight_exp", 1))
        next(o for o in model.opset_import if o.domain == DOMAIN).version = 1

    original = load_onnx(saved)
    assert original.node("fc").weight_exp == 1
    assert load_onnx(edit(saved, to_version_1)) == original


def test_an_unknown_domain_version_is_refused(saved: Path):
    def bump(model: onnx.ModelProto) -> None:
        next(o for o in model.opset_import if o.domain == DOMAIN).version = 9

    with pytest.raises(OnnxFormatError, match="cnn.onnx.*version 9; this release reads 1, 2"):
        load_onnx(edit(saved, bump))


def recurrent() -> Graph:
    """input -> fc -> lif, with lif's spikes fed back through rec (a Dense) into lif."""
    nodes = (
        Input("input", (1, 2, 2), 4),
        Dense("fc", weights(3, 4), integers(3, 4), weight_exp=1),
        Dense("rec", weights(3, 3), integers(3, 3)),
        fixed_lif("lif", 300),
    )
    edges = (("input", "fc"), ("lif", "rec"), ("fc", "lif"), ("rec", "lif"))
    return Graph(nodes, T=4, name="recurrent", edges=edges)


@pytest.mark.conformance("ONNX", "recurrent layer", "round trip")
def test_recurrent_edges_round_trip_through_a_previous_step_input(tmp_path: Path):
    graph = recurrent()
    model = graph_to_onnx(graph)
    assert [i.name for i in model.graph.input] == ["image", "lif:previous"]
    assert [o.name for o in model.graph.output] == ["lif"]
    assert list(node(model, "rec").input) == ["lif:previous", "rec.weight_int"]
    assert list(node(model, "lif").input) == ["fc", "rec"]
    save_onnx(graph, tmp_path / "rec.onnx")
    back = load_onnx(tmp_path / "rec.onnx")
    assert back == graph and back.edges == graph.edges and not back.is_chain
    assert "edges: input -> fc, lif -> rec (previous step), fc -> lif, rec -> lif" in describe(back)


def test_describe_lists_every_node_and_t(graph: Graph):
    text = describe(graph)
    header, *rows = text.splitlines()
    assert f"T={graph.T}" in header and graph.name in header
    assert ("fixed point" if graph.is_fixed else "float") in header
    assert "encoding=direct" in header
    assert len(rows) == len(graph.nodes) + 1
    for node_, row in zip(graph.nodes, rows[1:], strict=True):
        assert row.split()[:2] == [node_.name, type(node_).__name__]


def test_describe_shows_the_integers_of_a_fixed_graph():
    text = describe(fixed_mlp())
    assert "weight_int [" in text and "weight_exp -2" in text and "vth 700" in text
    assert "lowered" in text.splitlines()[0]


@pytest.mark.parametrize("content", [b"this is a text file\nnot a model\n", bytes(range(256)) * 4])
def test_a_file_that_is_not_onnx(tmp_path: Path, content: bytes):
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    with pytest.raises(OnnxFormatError, match="junk.onnx"):
        load_onnx(path)


def test_a_truncated_file(saved: Path):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxFormatError, match="cnn.onnx"):
        load_onnx(saved)


def test_a_valid_onnx_model_of_another_producer(tmp_path: Path):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [x])
    path = tmp_path / "other.onnx"
    onnx.save(onnx.helper.make_model(graph), path)
    with pytest.raises(OnnxFormatError, match="other.onnx.*not a snn-deploy ONNX model"):
        load_onnx(path)


def edit(saved: Path, change) -> Path:
    model = onnx.load(saved)
    change(model)
    onnx.save(model, saved)
    return saved


def test_an_unknown_operator(saved: Path):
    def rename(model: onnx.ModelProto) -> None:
        node(model, "lif2").op_type = "Izhikevich"

    edit(saved, rename)
    message = r"cnn.onnx.*'lif2'.*snn_deploy.Izhikevich.*accepted: .*snn_deploy.CubaLIF"
    with pytest.raises(OnnxFormatError, match=message):
        load_onnx(saved)


def test_a_missing_initialiser(saved: Path):
    def drop(model: onnx.ModelProto) -> None:
        inits = model.graph.initializer
        inits.remove(next(t for t in inits if t.name == "fc.weight"))

    edit(saved, drop)
    with pytest.raises(OnnxFormatError, match=r"cnn.onnx.*'fc.weight' is missing"):
        load_onnx(saved)


@pytest.mark.parametrize(
    "name,keys", [("lif1", ("tau_m", "tau_m_f64")), ("lif2", ("vth",)), ("input", ("levels",))]
)
def test_a_missing_attribute(saved: Path, name: str, keys: tuple[str, ...]):
    def drop(model: onnx.ModelProto) -> None:
        attrs = node(model, name).attribute
        for attr in [a for a in attrs if a.name in keys]:
            attrs.remove(attr)

    edit(saved, drop)
    with pytest.raises(OnnxFormatError, match=rf"cnn.onnx.*'{name}'.*lacks attribute '{keys[0]}'"):
        load_onnx(saved)


def test_a_float_attribute_edited_apart_from_its_exact_value(saved: Path):
    def change(model: onnx.ModelProto) -> None:
        next(a for a in node(model, "lif1").attribute if a.name == "tau_m").f = 9.0

    edit(saved, change)
    with pytest.raises(OnnxFormatError, match=r"cnn.onnx.*tau_m=9.0 disagrees"):
        load_onnx(saved)


def test_float_attributes_alone_are_read(saved: Path):
    def strip(model: onnx.ModelProto) -> None:
        attrs = node(model, "lif3").attribute
        for attr in [a for a in attrs if a.name.endswith("_f64")]:
            attrs.remove(attr)

    edit(saved, strip)
    lif3 = load_onnx(saved).node("lif3")
    assert lif3.tau_m == 5.0 and lif3.threshold == pytest.approx(0.3)


def test_save_is_atomic(saved: Path, monkeypatch: pytest.MonkeyPatch):
    before = saved.read_bytes()

    def failing_save(model: onnx.ModelProto, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_onnx(float_mlp(), saved)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_a_node_named_as_the_onnx_graph_input_is_refused(tmp_path):
    from dataclasses import replace

    from graphs import mlp

    from toolchain.ir import GraphError

    graph = mlp()
    renamed = graph.with_nodes((replace(graph.input, name="image"), *graph.nodes[1:]))
    with pytest.raises(GraphError, match="node 'image': ONNX files of snn-deploy reserve"):
        save_onnx(renamed, tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()
