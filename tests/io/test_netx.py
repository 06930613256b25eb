"""lava-dl netx hdf5 export: every key, dtype and value; refusals; atomic writes."""

import importlib.metadata
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from graphs import convnet, mlp, replace_node, weight_ints
from graphs import netx_conv as conv
from graphs import netx_dense as dense
from graphs import netx_integers as integers
from graphs import netx_lif as lif

import targets.loihi2.lava  # noqa: F401  (installs the compat finder before any lava import)
from toolchain.io import netx_write as netx_io
from toolchain.io.netx_weights import netx_dense_effective
from toolchain.io.netx_write import NetxExportError, read_netx, save_netx
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, GraphError, Input, SumPool2d

RNG = np.random.default_rng(7)
NEURON_KEYS = {"type", "iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike"}
DENSE_KEYS = {"type", "shape", "inFeatures", "outFeatures", "weight", "neuron", "attrs"}
CONV_KEYS = {
    "type",
    "shape",
    "inChannels",
    "outChannels",
    "kernelSize",
    "stride",
    "padding",
    "dilation",
    "groups",
    "weight",
    "neuron",
    "attrs",
}


def check_string(value, text: str) -> None:
    assert isinstance(value, np.ndarray)
    assert value.dtype == np.dtype("S10") and value.shape == (1,)
    assert value[0].decode("ascii") == text


def check_int(value, expected) -> None:
    value = np.asarray(value)
    assert value.dtype == np.int64
    assert value.shape == np.shape(expected)
    assert np.array_equal(value, expected)


def check_neuron(neuron: dict, population: CubaLIF) -> None:
    assert set(neuron) == NEURON_KEYS
    check_string(neuron["type"], "CUBA")
    check_int(neuron["iDecay"], population.du + 1)
    check_int(neuron["vDecay"], population.dv)
    check_int(neuron["vThMant"], population.vth)
    check_int(neuron["refDelay"], 1)
    assert isinstance(neuron["gradedSpike"], np.bool_) and not neuron["gradedSpike"]


def check_weight(value, expected: np.ndarray) -> None:
    assert value.dtype == np.float64 and value.shape == expected.shape
    assert np.array_equal(value, expected)
    assert np.array_equal(value.astype(int), expected)  # what netx's NetDict reads


def check_dense(layer: dict, synapse: Dense, population: CubaLIF, weight=None) -> None:
    assert set(layer) == DENSE_KEYS
    check_string(layer["type"], "dense")
    n_out, n_in = synapse.weight_int.shape
    check_int(layer["shape"], [n_out])
    check_int(layer["inFeatures"], n_in)
    check_int(layer["outFeatures"], n_out)
    check_weight(layer["weight"], synapse.weight_int if weight is None else weight)
    check_neuron(layer["neuron"], population)
    assert layer["attrs"] == {"synapse": synapse.name, "population": population.name}


def check_conv(layer: dict, synapse: Conv2d, population: CubaLIF, out_shape) -> None:
    assert set(layer) == CONV_KEYS
    check_string(layer["type"], "conv")
    out, cin, kh, kw = synapse.weight_int.shape
    check_int(layer["shape"], list(out_shape))
    check_int(layer["inChannels"], cin)
    check_int(layer["outChannels"], out)
    check_int(layer["kernelSize"], [kh, kw])
    check_int(layer["stride"], list(synapse.stride))
    check_int(layer["padding"], list(synapse.padding))
    check_int(layer["dilation"], [1, 1])
    check_int(layer["groups"], 1)
    check_weight(layer["weight"], synapse.weight_int)  # (out, in, kh, kw), as stored
    check_neuron(layer["neuron"], population)
    assert layer["attrs"] == {"synapse": synapse.name, "population": population.name}


def check_root(data: dict, graph: Graph) -> None:
    """The numeric attributes exactly; the words a netx user needs name the loading call's
    arguments (netx's defaults give wrong spikes), the payload layout and the output window."""
    attrs = dict(data["attrs"])
    T, L, bits = graph.T, len(graph.populations), graph.input.levels.bit_length()
    load = attrs.pop("load_with")
    assert load.startswith("netx.hdf5.Network(net_config='") and load.endswith(
        f"', input_message_bits={bits}, reset_interval={T}, reset_offset=1)"
    )
    c, h, w = graph.input.shape
    assert f"round(x * {graph.input.levels})" in attrs["input_payload"]
    layout = (
        f"(W, H, C) = ({w}, {h}, {c})"
        if isinstance(graph.nodes[1], Conv2d)
        else f"flattened in (C, H, W) order, {c * h * w} values"
    )
    assert layout in attrs.pop("input_payload")
    assert f"steps {T}s+{L + 1} .. {T}s+{L + T}" in attrs.pop("output_window")
    assert attrs == {
        "format": "lava-dl netx hdf5",
        "producer": "snn-deploy",
        "version": importlib.metadata.version("snn-deploy"),
        "graph_name": graph.name,
        "time_steps": graph.T,
        "input_levels": graph.input.levels,
        "input_message_bits": graph.input.levels.bit_length(),
        "prediction": graph.prediction,
    }


def check_input(layer: dict, graph: Graph) -> None:
    assert set(layer) == {"type", "shape", "attrs"}  # no neuron group: no Lava process
    check_string(layer["type"], "input")
    check_int(layer["shape"], list(graph.input.shape))
    assert layer["attrs"] == {"node": graph.input.name}


def test_mlp_every_key(tmp_path):
    graph = mlp()
    path = save_netx(graph, tmp_path / "mlp.net")
    assert path == tmp_path / "mlp.net"
    data = read_netx(path)
    assert set(data) == {"attrs", "layer"}
    check_root(data, graph)
    layers = data["layer"]
    assert len(layers) == 4
    check_input(layers[0], graph)
    nodes = graph.nodes
    for layer, index in zip(layers[1:], (1, 3, 5), strict=True):
        check_dense(layer, nodes[index], nodes[index + 1])
    assert not list(tmp_path.glob(".*.tmp"))


def test_conv_every_key_and_flatten(tmp_path):
    graph = convnet()
    data = read_netx(save_netx(graph, tmp_path / "conv.net"))
    check_root(data, graph)
    layers = data["layer"]
    assert [layer["type"][0] for layer in layers] == [
        b"input",
        b"conv",
        b"conv",
        b"conv",
        b"flatten",
        b"dense",
    ]
    check_input(layers[0], graph)
    shapes = graph.shapes()
    nodes = graph.nodes
    for layer, index in zip(layers[1:4], (1, 3, 5), strict=True):
        check_conv(layer, nodes[index], nodes[index + 1], shapes[index])
    assert [tuple(layer["shape"]) for layer in layers[1:4]] == [(4, 9, 8), (5, 5, 6), (3, 2, 3)]
    flatten = layers[4]
    assert set(flatten) == {"type", "shape", "attrs"}
    check_string(flatten["type"], "flatten")
    check_int(flatten["shape"], [18])
    assert flatten["attrs"] == {"node": "fc:flatten"}
    # the dense columns stay in (C, H, W) order: netx feeds transpose([2, 1, 0]) of (W, H, C)
    check_dense(layers[5], nodes[7], nodes[8])


def test_raw_h5py_layout(tmp_path):
    """What netx's NetDict sees: a `layer` group of numbered groups only, S10 type strings."""
    graph = convnet()
    path = save_netx(graph, tmp_path / "conv.net")
    with h5py.File(path, "r") as f:
        assert list(f.keys()) == ["layer"]
        assert sorted(f["layer"].keys(), key=int) == [str(i) for i in range(6)]
        conv1 = f["layer/1"]
        assert conv1["type"].shape == (1,) and conv1["type"].dtype == np.dtype("S10")
        assert conv1["type"][0].decode("ascii") == "conv"  # NetDict: value[0].decode('ascii')
        assert conv1["neuron/type"][0].decode("ascii") == "CUBA"
        assert conv1["neuron/iDecay"].shape == () and conv1["groups"].shape == ()
        assert conv1["weight"].dtype == np.float64
        assert conv1["weight"].shape == graph.nodes[1].weight_int.shape
        # netx reverses shape and geometry to (x, y, z) = (W, H, C)
        assert tuple(conv1["shape"][()][::-1]) == (8, 9, 4)


def lava_conv(x_xyz: np.ndarray, kernel_lava: np.ndarray, stride, padding, path: str):
    """Lava's own Conv arithmetic (`lava.proc.conv.utils`, its torch or its scipy path)."""
    from lava.proc.conv import utils as lava_conv_utils

    path = getattr(lava_conv_utils, path)
    kernel = tuple(kernel_lava.shape[1:3])
    return path(x_xyz, kernel_lava, kernel, tuple(stride), tuple(padding), (1, 1), 1)


@pytest.mark.parametrize("layer_index", [1, 2, 3])
def test_stored_conv_kernel_is_ours_after_netx(tmp_path, layer_index):
    """Replay netx's kernel handling (flip, transpose, reversed geometry), then run Lava's own
    conv (both its torch and scipy paths) on the stored values: the result is our Conv2d
    (PyTorch conv2d on (C, H, W)), for stride 1 and 2, padding 1 and 0, kernels 3x3 and 2x2."""
    graph = convnet()
    layer = read_netx(save_netx(graph, tmp_path / "conv.net"))["layer"][layer_index]
    node_index = 2 * layer_index - 1
    node = graph.nodes[node_index]
    stored = layer["weight"].astype(int)  # NetDict
    kernel_lava = stored[:, :, ::-1, ::-1]
    kernel_lava = kernel_lava.reshape(kernel_lava.shape[:4]).transpose((0, 3, 2, 1))
    stride, padding = layer["stride"][::-1], layer["padding"][::-1]  # netx's expand()
    x = RNG.integers(0, 2, size=graph.shapes()[node_index - 1])  # (C, H, W) input spikes
    x[0, 0, :] = 1  # an asymmetric input: a flipped kernel would not match
    ours = torch.nn.functional.conv2d(
        torch.from_numpy(x.astype(np.float64))[None],
        torch.from_numpy(node.weight_int.astype(np.float64)),
        stride=node.stride,
        padding=node.padding,
    )[0].numpy()
    x_xyz = x.transpose(2, 1, 0).astype(np.int32)
    kernel_lava = np.ascontiguousarray(kernel_lava).astype(np.int32)
    for path in ("conv", "conv_scipy"):
        lava = lava_conv(x_xyz, kernel_lava, stride, padding, path)
        assert tuple(lava.shape) == tuple(layer["shape"][::-1])  # netx's (W, H, C) check
        assert np.array_equal(lava.transpose(2, 1, 0), ours), path
    flipped = lava_conv(x_xyz, kernel_lava[:, ::-1].copy(), stride, padding, "conv")
    assert not np.array_equal(flipped.transpose(2, 1, 0), ours)


def replay_netx_dense(stored: np.ndarray) -> np.ndarray:
    """The per-synapse weight netx + Lava's fixed-point Dense apply for a stored matrix: netx's
    optimize_weight_bits (lava-dl, replayed here from its source, independently of
    toolchain.io.netx_write), then Lava's own Dense weight handling (`lava.utils.weightutils`: sign
    mode, clip, LSB truncation), then the arithmetic shift of the sum by weight_exp =
    -scale_bits (asserted exact)."""
    from lava.utils import weightutils

    weight = stored.astype(int)  # NetDict
    low, high = weight.min(), weight.max()
    netx_mixed = int(not high < 0 and not low >= 0)
    if high < 0:
        scale = -256 / low
    elif low >= 0:
        scale = 255 / high
    else:
        with np.errstate(divide="ignore"):
            scale = np.min([127 / np.float64(high), -128 / np.float64(low)])
    scale_bits = int(np.floor(np.log2(scale)) + netx_mixed)
    n = 8
    while n > 0 and np.sum(np.abs(weight / 2**n - np.round(weight / 2**n))) != 0:
        n -= 1
    num_weight_bits = 8 - scale_bits - (n - netx_mixed)
    shifted = np.left_shift(weight.astype(np.int32), scale_bits)
    sign_mode = weightutils.determine_sign_mode(shifted)  # what Lava's PyDenseModelBitAcc does
    assert 8 - num_weight_bits + int(sign_mode == weightutils.SignMode.MIXED) >= 0
    w = weightutils.clip_weights(shifted, sign_mode, num_bits=8)
    w = weightutils.truncate_weights(w, sign_mode, num_weight_bits)
    assert not np.any(w % (1 << scale_bits))  # the shift back of the sum is exact
    return w >> scale_bits


def one_dense(matrix: np.ndarray) -> Graph:
    n_out, n_in = matrix.shape
    nodes = (
        Input("image", (1, 1, n_in)),
        dense("fc", n_out, n_in, weight_int=matrix.astype(np.int32)),
        lif("out", 1, 1, 1),
    )
    return Graph(nodes, T=1)


@pytest.mark.parametrize(
    "matrix",
    [
        integers(7, 9),
        integers(3, 5) // 2 * 2,
        np.array([[-256, 254], [1, -1]]),
        np.array([[-256, 1], [0, 0]]),
        np.array([[1, 3], [5, 254]]),  # excitatory
        np.array([[0, 1], [0, 0]]),
        np.array([[64, 128], [0, 32]]),
        np.array([[-1, -3], [-255, -5]]),  # inhibitory, minimum not a power of two
        np.array([[-7, -3]]),
        np.array([[1, -1], [0, 1]]),
        np.array([[0, -6], [-12, 0]]),  # maximum 0, a case netx + Lava keep
    ],
)
def test_dense_weights_survive_netx(tmp_path, matrix):
    """Replaying netx's dense path on what we store gives back the stored integers exactly."""
    data = read_netx(save_netx(one_dense(matrix), tmp_path / "one.net"))
    stored = data["layer"][1]["weight"]
    assert np.array_equal(stored, matrix)
    assert np.array_equal(replay_netx_dense(stored), matrix)
    assert np.array_equal(netx_dense_effective(stored), matrix)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.array([[-1, -3], [-255, -256]]), "would apply -255 instead of -256"),
        (np.array([[-8, -1]]), "would apply -7 instead of -8"),
        (np.array([[0, -70, -215]]), "cannot keep them"),
        (np.array([[0, -32]]), "would apply"),
    ],
)
def test_refuses_dense_netx_would_change(tmp_path, matrix, message):
    with pytest.raises(NetxExportError, match=f"node 'fc': .*{message}.*positive weight"):
        save_netx(one_dense(matrix), tmp_path / "one.net")
    assert list(tmp_path.iterdir()) == []


def test_replay_agrees_on_random_matrices():
    for _ in range(300):
        matrix = weight_ints(RNG, 2, 3)
        expected = netx_dense_effective(matrix)
        if matrix.max() > 0:
            assert np.array_equal(expected, matrix)
        if expected is not None and np.array_equal(expected, matrix):
            assert np.array_equal(replay_netx_dense(matrix), matrix)


def test_dense_after_flatten_sees_chw_order(tmp_path):
    """netx feeds the dense layer after a flatten with transpose([2, 1, 0]).flatten() of the
    (W, H, C) conv output. Replaying that on a conv output that only one (c, h, w) position
    fires in, the stored dense matrix must pick the column of that position in our Dense."""
    graph = convnet()
    layers = read_netx(save_netx(graph, tmp_path / "conv.net"))["layer"]
    stored = layers[5]["weight"].astype(int)
    ours = graph.nodes[7].weight_int
    channels, height, width = graph.shapes()[6]
    for c, h, w in [(0, 0, 1), (2, 1, 0), (1, 1, 1)]:
        chw = np.zeros((channels, height, width), dtype=int)
        chw[c, h, w] = 1
        netx_input = chw.transpose(2, 1, 0).transpose([2, 1, 0]).flatten()  # (W, H, C) -> netx
        np.testing.assert_array_equal(stored @ netx_input, ours[:, (c * height + h) * width + w])


@pytest.mark.parametrize(
    ("tau_s", "tau_m", "i_decay", "v_decay"),
    [
        (3.0, 5.0, 1365, 819),  # the paper's: 4096 / 3 = 1365.33, 4096 / 5 = 819.2
        (6.0, 6.0, 683, 683),  # 682.67 rounds up
        (7.0, 2.5, 585, 1638),  # 585.14, 1638.4
    ],
)
def test_decays_are_the_fraction_lost_per_step(tmp_path, tau_s, tau_m, i_decay, v_decay):
    """netx's iDecay and vDecay are the 12-bit fractions of current and voltage lost per step,
    round(4096 / tau), whatever offset Lava's own du carries."""
    from targets.loihi2.formats import current_decay, voltage_decay

    du, dv = current_decay(tau_s), voltage_decay(tau_m)
    nodes = list(mlp().nodes)
    nodes[2] = lif("lif1", du=du, dv=dv, vth=200)
    graph = Graph(tuple(nodes), T=9)
    layer = read_netx(save_netx(graph, tmp_path / "d.net"))["layer"][1]
    assert (int(layer["neuron"]["iDecay"]), int(layer["neuron"]["vDecay"])) == (i_decay, v_decay)


@pytest.mark.parametrize(
    ("weight_exp", "factor"),
    [(1, 2), (-1, 0.5)],
)
def test_weight_exp_folded_when_exact(tmp_path, weight_exp, factor):
    graph = mlp(weight_exp=weight_exp)  # fc1 weights are even and within [-128, 126]
    fc1 = graph.nodes[1]
    data = read_netx(save_netx(graph, tmp_path / "mlp.net"))
    expected = (fc1.weight_int * factor).astype(np.int64)
    assert np.array_equal(expected * 2.0**-weight_exp, fc1.weight_int)
    check_dense(data["layer"][1], fc1, graph.nodes[2], weight=expected)


@pytest.mark.parametrize(
    ("weight_exp", "weight_int", "message"),
    [
        (1, np.full((6, 12), 200, dtype=np.int32), r"span \[400, 400\]"),
        (-1, np.full((6, 12), 3, dtype=np.int32), "not multiples of 2"),
        (-3, np.full((6, 12), 12, dtype=np.int32), "not multiples of 8"),
        (0, np.zeros((6, 12), dtype=np.int32), "all weights are zero"),
    ],
)
def test_refuses_unrepresentable_dense(tmp_path, weight_exp, weight_int, message):
    graph = replace_node(mlp(), 3, dense("fc2", 6, 12, weight_exp, weight_int))
    target = tmp_path / "mlp.net"
    with pytest.raises(NetxExportError, match=message) as info:
        save_netx(graph, target)
    assert "'fc2'" in str(info.value)
    assert isinstance(info.value, GraphError) and isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []


def test_refuses_float_graph(tmp_path):
    graph = mlp()
    fc2 = graph.nodes[3]
    graph = replace_node(graph, 3, Dense("fc2", fc2.weight))
    with pytest.raises(NetxExportError, match="node 'fc2': Dense has no weight_int.*fixed-point"):
        save_netx(graph, tmp_path / "x.net")
    graph = replace_node(mlp(), 4, CubaLIF("lif2", 5.0, 3.0, 0.3))
    with pytest.raises(NetxExportError, match="node 'lif2': CubaLIF has no du, dv, vth"):
        save_netx(graph, tmp_path / "x.net")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["pool", "flatten"])
def test_refuses_unlowered_graph(tmp_path, kind):
    extra = SumPool2d("pool", 2, 1.0) if kind == "pool" else Flatten("flatten")
    fc = dense("fc", 10, 4 * 2 * 2 if kind == "pool" else 4 * 4 * 4)
    nodes = (
        Input("image", (2, 4, 4)),
        conv("conv1", 4, 2, 3, stride=1, padding=1),
        lif("lif1", 10, 10, 10),
        extra,
        fc,
        lif("out", 10, 10, 10),
    )
    graph = Graph(nodes, T=3)
    with pytest.raises(NetxExportError, match=f"node '{extra.name}': .*lowered graphs only"):
        save_netx(graph, tmp_path / "x.net")
    assert list(tmp_path.iterdir()) == []


def test_refuses_synapse_without_population(tmp_path):
    nodes = (
        Input("image", (1, 2, 2)),
        dense("fc1", 3, 4),
        dense("fc2", 2, 3),
        lif("out", 10, 10, 10),
    )
    with pytest.raises(NetxExportError, match="node 'fc1': .*followed by a CubaLIF"):
        save_netx(Graph(nodes, T=2), tmp_path / "x.net")


def test_without_input_layer(tmp_path):
    graph = mlp()
    data = read_netx(save_netx(graph, tmp_path / "mlp.net", input_layer=False))
    assert [layer["type"][0] for layer in data["layer"]] == [b"dense"] * 3
    check_dense(data["layer"][0], graph.nodes[1], graph.nodes[2])


def test_atomic_write_keeps_existing_file(tmp_path, monkeypatch):
    target = tmp_path / "net.net"
    save_netx(mlp(), target)
    before = target.read_bytes()
    real_file = h5py.File
    opened: list[Path] = []

    def failing_file(name, mode="r", *args, **kwargs):
        handle = real_file(name, mode, *args, **kwargs)
        if mode == "w":
            opened.append(Path(name))
            handle.create_group("layer").create_group("0")  # a partial file on disk
            handle.close()
            raise OSError("disk full")
        return handle

    monkeypatch.setattr(netx_io.h5py, "File", failing_file)
    with pytest.raises(OSError, match="disk full"):
        save_netx(convnet(), target)
    monkeypatch.undo()
    assert opened and opened[0].parent == tmp_path and opened[0] != target
    assert not opened[0].exists()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.net"]
    check_root(read_netx(target), mlp())


def test_overwrite_replaces_file(tmp_path):
    target = tmp_path / "sub" / "net.net"
    save_netx(mlp(), target)
    save_netx(convnet(), target)
    assert read_netx(target)["attrs"]["graph_name"] == "tiny-conv"
    assert sorted(p.name for p in target.parent.iterdir()) == ["net.net"]


def test_read_netx_rejects_non_numbered_layers(tmp_path):
    path = tmp_path / "bad.net"
    with h5py.File(path, "w") as f:
        f.create_group("layer/0")
        f.create_group("layer/2")
    with pytest.raises(ValueError, match="numbered"):
        read_netx(path)
