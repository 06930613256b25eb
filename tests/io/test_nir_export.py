"""NIR export (`snn-deploy export --format nir`): files that `nir.read` accepts with type
checking, that record T, dt, the reset and the encoding, and that read back to the same spikes."""

import json

import nir
import numpy as np
import pytest
import torch
from nir_networks import norse_run

from toolchain.cli import main
from toolchain.io.nir_read import read_nir
from toolchain.io.nir_write import DT, NirExportError, save_nir
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, Input, SumPool2d
from toolchain.ir.float_runner import run_float
from toolchain.train.to_graph import graph_from_checkpoint

RNG = np.random.default_rng(0)


def weights(*shape: int, shift: float = 0.15) -> np.ndarray:
    return RNG.normal(shift, 0.5, size=shape)


def cnn(reset_subtract: bool = False, bias: bool = False) -> Graph:
    """Conv, pooling at 1.1, flatten, dense; CubaLIF (filter), LIF (no filter) and IF; with
    `bias`, one into the CubaLIF's synaptic filter and one into the LIF's membrane."""
    sub = {"reset_subtract": 1.0} if reset_subtract else {}
    nodes = (
        Input("input", (2, 8, 8), 255),
        Conv2d("conv", weights(4, 2, 3, 3), padding=1),
        CubaLIF("lif0", 5.0, 3.0, 1.0, synaptic_bias=weights(4) * 0.3 if bias else None, **sub),
        SumPool2d("pool", 2, 1.1),
        Flatten("flat"),
        Dense("fc1", weights(12, 64)),
        CubaLIF("lif1", 4.0, 1.0, 1.0, bias=weights(12) * 0.3 if bias else None, **sub),
        Dense("fc2", weights(5, 12)),
        CubaLIF("lif2", float("inf"), 1.0, 1.0, **sub),
    )
    return Graph(nodes, T=9, name="cnn")


@pytest.mark.conformance(
    "NIR",
    {"variant0": "LIF", "variant1": "reset by subtraction", "variant2": "bias"},
    "round trip",
)
@pytest.mark.parametrize("variant", [{}, {"reset_subtract": True}, {"bias": True}])
def test_a_graph_reads_back_to_the_same_spikes(tmp_path, variant):
    graph = cnn(**variant)
    save_nir(graph, tmp_path / "cnn.nir")
    model = nir.read(tmp_path / "cnn.nir")  # with type checking
    assert {type(n).__name__ for n in model.nodes.values()} >= {"CubaLIF", "LIF", "IF", "Scale"}
    assert model.metadata["time_steps"] == 9 and model.metadata["dt"] == DT
    assert model.metadata["reset"] == ("subtract" if variant.get("reset_subtract") else "zero")
    back = read_nir(tmp_path / "cnn.nir")  # dt, reset, steps and levels from the file
    assert back.T == 9 and back.input.levels == 255
    x = RNG.random((40, 2, 8, 8))
    ours = run_float(graph, x, dtype=torch.float64).spikes
    theirs = run_float(back, x, dtype=torch.float64).spikes
    for population in graph.populations:
        np.testing.assert_array_equal(theirs[population.name], ours[population.name])
        assert 0 < ours[population.name].mean() < 1, population.name


def test_the_trained_digits_network_exports(tmp_path, digits_checkpoint, digits, capsys):
    out = tmp_path / "digits.nir"
    assert main(["export", str(tmp_path / "missing.pt"), "--format", "nir", "--out", str(out)]) == 2
    capsys.readouterr()
    checkpoint = tmp_path / "model.pt"
    digits_checkpoint.save(checkpoint)
    args = ["export", str(checkpoint), "--format", "nir", "--out", str(out), "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(out)
    graph = graph_from_checkpoint(digits_checkpoint)
    expected = run_float(graph, digits.test.images, dtype=torch.float64).predictions
    back = run_float(read_nir(out), digits.test.images, dtype=torch.float64).predictions
    np.testing.assert_array_equal(back, expected)


def test_a_fixed_point_graph_is_refused_not_written_as_floats(tmp_path, capsys):
    from conftest import ROOT

    fixed = ROOT / "examples" / "pretrained" / "mnist_cnn" / "fixed.onnx"
    out = tmp_path / "cnn.nir"
    assert main(["export", str(fixed), "--format", "nir", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "is fixed point, and NIR states float parameters only" in error
    assert "Traceback" not in error and not out.exists()


@pytest.mark.conformance(
    "NIR",
    "refractory step",
    refused="NIR's neurons have no refractory step; export ONNX (import reads snnTorch's "
    "Synaptic reset to zero as one)",
)
def test_what_nir_cannot_state_is_refused_by_name(tmp_path):
    nodes = list(cnn().nodes)
    nodes[2] = CubaLIF("lif0", 5.0, 3.0, 1.0, reset_subtract=2.0)
    with pytest.raises(NirExportError, match="node 'lif0': subtracts 2.0 on a spike, not its"):
        save_nir(Graph(tuple(nodes), T=9), tmp_path / "x.nir")
    nodes[2] = CubaLIF("lif0", 5.0, 3.0, 1.0, reset_subtract=1.0)
    with pytest.raises(NirExportError, match="some populations reset to 0 and others"):
        save_nir(Graph(tuple(nodes), T=9), tmp_path / "x.nir")
    nodes[2] = CubaLIF("lif0", 5.0, 3.0, 1.0, bias=np.ones(4))
    with pytest.raises(NirExportError, match="node 'lif0': a bias into the membrane of a"):
        save_nir(Graph(tuple(nodes), T=9), tmp_path / "x.nir")
    nodes[2] = CubaLIF("lif0", 5.0, 3.0, 1.0, refractory=1)
    with pytest.raises(NirExportError, match="node 'lif0': holds its membrane at 0"):
        save_nir(Graph(tuple(nodes), T=9), tmp_path / "x.nir")
    nodes[2] = CubaLIF("lif0", float("inf"), 3.0, 1.0)
    with pytest.raises(NirExportError, match="node 'lif0': a neuron that does not leak behind"):
        save_nir(Graph(tuple(nodes), T=9), tmp_path / "x.nir")
    assert list(tmp_path.iterdir()) == []


def dense_graph(rng: np.random.Generator, output: CubaLIF) -> Graph:
    """6 inputs, 8 LIF neurons without a synaptic filter, 4 `output` neurons; T = 12."""
    nodes = (
        Input("in", (6, 1, 1)),
        Dense("fc1", rng.normal(0.1, 0.6, (8, 6))),
        CubaLIF("lif1", 4.0, 1.0, 0.8),
        Dense("fc2", rng.normal(0.1, 0.6, (4, 8))),
        output,
    )
    return Graph(nodes, T=12)


@pytest.mark.conformance("snnTorch", "LIF", "round trip")
def test_snntorch_loads_a_dense_lif_network_to_our_spikes(tmp_path):
    """LIF populations without a synaptic filter, reset to 0: what snnTorch's importer reads
    (its Leaky, at its own step, which is the file's)."""
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    rng = np.random.default_rng(3)
    graph = dense_graph(rng, CubaLIF("lif2", 5.0, 1.0, 0.6))
    save_nir(graph, tmp_path / "dense.nir")
    net = import_from_nir(nir.read(tmp_path / "dense.nir"))
    x = rng.random((5, 6)).astype(np.float32)
    utils.reset(net)
    with torch.no_grad():
        theirs = torch.stack([net(torch.from_numpy(x))[0] for _ in range(graph.T)], -1)
    ours = run_float(graph, x.reshape(5, 6, 1, 1), dtype=torch.float64).spikes["lif2"]
    np.testing.assert_array_equal(theirs.numpy(), ours)
    assert 0.1 < ours.mean() < 0.9


@pytest.mark.conformance("Norse", "LIF", "round trip")
def test_norse_loads_the_trained_digits_network_to_our_spikes(tmp_path, digits_checkpoint, digits):
    """TSSL-BP's filtered neurons (CubaLIF, reset to 0) as Norse's importer reads them at the
    file's step: every output spike on 100 digits test images. (Norse reads NIR's Flatten of
    the image as flattening the batch too: one sample at a time.)"""
    import norse.torch as norse

    graph = graph_from_checkpoint(digits_checkpoint)
    save_nir(graph, tmp_path / "digits.nir")
    model = nir.read(tmp_path / "digits.nir")
    net = norse.from_nir(model, dt=float(model.metadata["dt"]))
    images = digits.test.images[:100].astype(np.float32)
    runs = [norse_run(net, torch.from_numpy(image), graph.T) for image in images]
    theirs = np.stack([run.movedim(0, -1).numpy() for run in runs])  # (N, n_out, T)
    ours = run_float(graph, images, dtype=torch.float32).spikes[graph.populations[-1].name]
    np.testing.assert_array_equal(theirs, ours)
    assert 0 < ours.mean() < 1


def test_the_shipped_mnist_cnn_exports_with_its_normalisation(tmp_path):
    """The paper's CNN, trained with (x - 0.1307) / 0.3081: its constant plane becomes the
    first convolution's bias (no padding there), and the NIR file gives every spike of every
    population back, on 100 MNIST test images."""
    from conftest import MNIST_DIR, ROOT

    from toolchain.data.datasets import load_mnist
    from toolchain.train.checkpoint import Checkpoint

    model = ROOT / "examples" / "pretrained" / "mnist_cnn" / "model.pt"
    graph = graph_from_checkpoint(Checkpoint.load(model))
    assert graph.input.constant_plane
    save_nir(graph, tmp_path / "mnist_cnn.nir")
    nir.read(tmp_path / "mnist_cnn.nir")  # with type checking
    back = read_nir(tmp_path / "mnist_cnn.nir")
    images = load_mnist(MNIST_DIR).test.images[:100]
    ours = run_float(graph, images, dtype=torch.float64)
    theirs = run_float(back, images, dtype=torch.float64)
    for name, spikes in ours.spikes.items():
        np.testing.assert_array_equal(theirs.spikes[name], spikes)
    np.testing.assert_array_equal(theirs.predictions, ours.predictions)


@pytest.mark.conformance("NIR", "read-out (membrane out)", "round trip")
def test_a_readout_exports_as_nir_li_and_reads_back(tmp_path):
    rng = np.random.default_rng(5)
    graph = dense_graph(rng, CubaLIF("out", 5.0, 1.0, 1.0, readout=True))
    save_nir(graph, tmp_path / "li.nir")
    assert type(nir.read(tmp_path / "li.nir").nodes["out"]).__name__ == "LI"
    back = read_nir(tmp_path / "li.nir")
    x = rng.random((20, 6, 1, 1))
    ours = run_float(graph, x, dtype=torch.float64)
    theirs = run_float(back, x, dtype=torch.float64)
    np.testing.assert_allclose(theirs.spikes["out"], ours.spikes["out"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(theirs.predictions, ours.predictions)
    filtered = dense_graph(rng, CubaLIF("out", 5.0, 2.0, 1.0, readout=True))
    with pytest.raises(NirExportError, match="node 'out': a readout is NIR's LI, which has no"):
        save_nir(filtered, tmp_path / "filtered.nir")
    assert not (tmp_path / "filtered.nir").exists()
