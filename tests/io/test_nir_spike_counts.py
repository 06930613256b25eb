"""Sinabs and Rockpool neurons emit spike counts (several spikes per step, as many thresholds
subtracted). Networks built in those libraries and exported by their own exporters import
with `max_spikes`, give the library's own counts in our float runner, and quantise and run on
Lava (`LIFVariant`, graded spikes) spike count for spike count equal to the reference
simulator."""

from dataclasses import replace

import nir
import numpy as np
import pytest
import torch
from nir_networks import (
    SHARED,
    T,
    conv,
    dense,
    ours,
    rockpool_linear,
    sinabs_run_and_export,
    static_input,
)

from quantize.scales import quantize_graph
from targets.loihi2.simulator import simulate
from targets.loihi2.timing import population_window
from toolchain.cli import main
from toolchain.io import load_onnx, save_onnx
from toolchain.io.nir_fixups import writable
from toolchain.io.nir_read import UNBOUNDED, read_nir
from toolchain.io.nir_write import NirExportError, save_nir
from toolchain.ir import CubaLIF, Dense, Graph, Input
from toolchain.ir.float_runner import run_float
from toolchain.ir.lowering import lower


def on_lava(fixed: Graph, images: np.ndarray) -> np.ndarray:
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    return run_on_lava(fixed, images).output_spikes


# ------------------------------------------------------------------------------------- Sinabs


@pytest.mark.conformance("Sinabs", "spike counts", "own spikes")
@pytest.mark.conformance("Sinabs", "IF (no leak)", "own spikes")
def test_sinabs_dense_lif_and_iaf_counts(tmp_path):
    import sinabs.layers as sl

    net = torch.nn.Sequential(
        dense(6, 8, seed=1, gain=4.0, shift=1.5),
        sl.LIFSqueeze(tau_mem=4.0, batch_size=1),
        dense(8, 4, seed=2, gain=1.0, shift=0.3),
        sl.IAFSqueeze(batch_size=1),
    )
    x = static_input((6,))
    theirs = sinabs_run_and_export(net, x, tmp_path / "net.nir")
    assert theirs.max() >= 2, "the network must emit counts for the test to mean anything"
    mine = ours(tmp_path / "net.nir", x, convention="sinabs")
    np.testing.assert_array_equal(mine, theirs)
    graph = read_nir(tmp_path / "net.nir", convention="sinabs")
    assert [p.max_spikes for p in graph.populations] == [UNBOUNDED] * 2


def test_sinabs_exp_leak_readout(tmp_path):
    """Sinabs' ExpLeak (NIR's LI, its input not normalised) as the read-out after counting LIF
    neurons: Sinabs' own membrane, to float32 rounding, and its prediction."""
    import sinabs.layers as sl

    net = torch.nn.Sequential(
        dense(6, 8, seed=1, gain=4.0, shift=1.5),
        sl.LIFSqueeze(tau_mem=4.0, batch_size=1),
        dense(8, 4, seed=2, gain=1.0, shift=0.3),
        sl.ExpLeakSqueeze(tau_mem=5.0, batch_size=1),
    )
    x = static_input((6,))
    theirs = sinabs_run_and_export(net, x, tmp_path / "net.nir")
    graph = read_nir(tmp_path / "net.nir", convention="sinabs", steps=T)
    assert graph.populations[-1].readout
    run = run_float(graph, x.reshape(1, 6, 1, 1).astype(np.float64), dtype=torch.float64)
    mine = np.moveaxis(run.spikes[graph.populations[-1].name][0], -1, 0)
    np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5)
    assert run.predictions[0] == theirs.sum(0).argmax()


@pytest.mark.conformance("Sinabs", "one spike per step (Sinabs SingleSpike)", "own spikes")
def test_sinabs_single_spike_with_max_spikes_one(tmp_path):
    import sinabs.layers as sl
    from sinabs.activation import SingleSpike

    net = torch.nn.Sequential(
        dense(6, 8, seed=1, gain=4.0, shift=1.5),
        sl.LIFSqueeze(tau_mem=4.0, batch_size=1, spike_fn=SingleSpike),
        dense(8, 4, seed=2, gain=1.0, shift=0.3),
        sl.IAFSqueeze(batch_size=1, spike_fn=SingleSpike),
    )
    x = static_input((6,))
    theirs = sinabs_run_and_export(net, x, tmp_path / "net.nir")
    assert theirs.max() == 1 and theirs.any()
    mine = ours(tmp_path / "net.nir", x, convention="sinabs", max_spikes=1)
    np.testing.assert_array_equal(mine, theirs)
    assert ours(tmp_path / "net.nir", x, convention="sinabs").max() > 1


@pytest.mark.conformance("Sinabs", "one spike per step (Sinabs SingleSpike)", "own spikes")
def test_sinabs_single_spike_cnn_with_max_spikes_one(tmp_path):
    """Issue 25's conv variant: Sinabs' IAF convolutions with SingleSpike (their NIR files do not
    record the spike function), imported with --max-spikes 1, give every Sinabs spike."""
    import sinabs.layers as sl
    from sinabs.activation import MembraneSubtract, SingleSpike

    def iaf():
        return sl.IAFSqueeze(batch_size=1, spike_fn=SingleSpike, reset_fn=MembraneSubtract())

    net = torch.nn.Sequential(
        conv(2, 4, seed=7, gain=1.5, bias=True), iaf(), sl.SumPool2d(2), torch.nn.Flatten(),
        dense(4 * 4 * 4, 5, seed=8, gain=1.5, shift=0.05, bias=True), iaf(),
    )  # fmt: skip
    x = (np.random.default_rng(3).random((1, 2, 8, 8)) < 0.3).astype(np.float32)
    theirs = sinabs_run_and_export(net, x, tmp_path / "cnn.nir")
    assert theirs.max() == 1 and 0.05 < theirs.mean() < 0.95
    mine = ours(tmp_path / "cnn.nir", x, convention="sinabs", max_spikes=1)
    np.testing.assert_array_equal(mine, theirs)


@pytest.mark.conformance("Sinabs", "convolution", "own spikes", "Lava bit-exact")
@pytest.mark.conformance("Sinabs", "pooling", "own spikes", "Lava bit-exact")
def test_sinabs_cnn_with_sum_pooling_runs_on_lava(tmp_path):
    """Sinabs exports SumPool2d (its nn.AvgPool2d has no NIR form there)."""
    import sinabs.layers as sl

    net = torch.nn.Sequential(
        conv(2, 4, seed=7, gain=2.0),
        sl.IAFSqueeze(batch_size=1),
        sl.SumPool2d(2),
        torch.nn.Flatten(),
        dense(4 * 4 * 4, 5, seed=8, gain=0.5, shift=0.05),
        sl.IAFSqueeze(batch_size=1),
    )
    x = static_input((2, 8, 8), seed=3)
    theirs = sinabs_run_and_export(net, x, tmp_path / "cnn.nir")
    assert theirs.max() >= 2
    np.testing.assert_array_equal(ours(tmp_path / "cnn.nir", x, convention="sinabs"), theirs)

    graph = lower(read_nir(tmp_path / "cnn.nir", convention="sinabs", steps=T))
    images = np.random.default_rng(4).random((4, 2, 8, 8)).astype(np.float32)
    fixed, report = quantize_graph(graph, images)
    assert [layer.max_spikes for layer in report.layers] == [255, 255]
    reference = simulate(fixed, images)
    assert reference.output_spikes.max() >= 2
    np.testing.assert_array_equal(on_lava(fixed, images), reference.output_window_spikes)


def test_the_paper_cnn_with_sinabs_conventions_on_lava(capsys):
    """cnn_sinabs.nir read as Sinabs runs it (IAF neurons emitting spike counts, subtractive
    reset), quantised on random inputs: Lava equals the reference simulator on every output
    count. Float against fixed point, the first layer's counts agree on most neurons."""
    graph = lower(read_nir(SHARED / "cnn_sinabs.nir", convention="sinabs", steps=8))
    x = np.random.default_rng(0).random((8, *graph.input.shape)).astype(np.float32)
    fixed, _ = quantize_graph(graph, x)
    reference = simulate(fixed, x, record=True)
    first = graph.populations[0].name
    assert reference.spikes[first].max() >= 2
    np.testing.assert_array_equal(on_lava(fixed, x[:2]), reference.output_window_spikes[:2])
    floating = run_float(graph, x).spikes[first].astype(np.int64)
    fixed_first = reference.spikes[first][..., population_window(fixed, 0)].astype(np.int64)
    assert (floating == fixed_first).mean() > 0.9


# ----------------------------------------------------------------------------------- Rockpool


def rockpool_net(kind: str):
    """LIFTorch (a CubaLIF in NIR) or LIFNeuronTorch (a LIF) layers."""
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFNeuronTorch, LIFTorch

    def neurons(n: int, tau_mem: float, tau_syn: float):
        if kind == "LIFTorch":
            return LIFTorch(n, tau_mem=tau_mem, tau_syn=tau_syn)
        return LIFNeuronTorch(n, tau_mem=tau_mem)

    return Sequential(
        rockpool_linear(6, 8, seed=1, gain=1.0, shift=0.3),
        neurons(8, 0.02, 0.005),
        rockpool_linear(8, 4, seed=2, gain=0.5, shift=0.15),
        neurons(4, 0.01, 0.004),
    )


@pytest.mark.conformance("Rockpool", "spike counts", "own spikes", "Lava bit-exact")
@pytest.mark.conformance(
    "Rockpool",
    {"LIFTorch": "synaptic current (CubaLIF)", "LIFNeuronTorch": "LIF"},
    "own spikes",
    "Lava bit-exact",
)
@pytest.mark.parametrize("kind", ["LIFTorch", "LIFNeuronTorch"])
def test_rockpool_counts_run_on_lava(tmp_path, kind):
    from rockpool.nn.modules import to_nir

    net = rockpool_net(kind)
    x = static_input((6,))
    with torch.no_grad():
        out, _, _ = net(torch.from_numpy(np.repeat(x[:, None], T, axis=1)))
    theirs = out[0].numpy()
    assert theirs.max() >= 2
    nir.write(tmp_path / "net.nir", to_nir(net))
    np.testing.assert_array_equal(ours(tmp_path / "net.nir", x, convention="rockpool"), theirs)

    graph = lower(read_nir(tmp_path / "net.nir", convention="rockpool", steps=T))
    assert [p.max_spikes for p in graph.populations] == [2**16] * 2
    images = np.random.default_rng(6).random((6, 6, 1, 1)).astype(np.float32)
    fixed, _ = quantize_graph(graph, images)
    reference = simulate(fixed, images)
    assert reference.output_spikes.max() >= 2
    np.testing.assert_array_equal(on_lava(fixed, images), reference.output_window_spikes)


# ------------------------------------------------------------- the chip's side, files and CLI


def recurrent_counting_graph() -> Graph:
    """A dense population that emits counts, reads its own counts back and resets to zero,
    then one that subtracts: the Lava paths of `LIFVariant` the libraries do not reach."""
    rng = np.random.default_rng(9)
    nodes = (
        Input("in", (5, 1, 1)),
        Dense("fc1", rng.normal(1.5, 1.0, (7, 5))),
        Dense("rec", rng.normal(0.0, 0.4, (7, 7))),
        CubaLIF("lif1", 4.0, 2.0, 0.3, max_spikes=3),
        Dense("fc2", rng.normal(0.4, 0.5, (3, 7))),
        CubaLIF("lif2", 8.0, 1.5, 0.5, reset_subtract=0.5, max_spikes=2),
    )
    edges = (("in", "fc1"), ("fc1", "lif1"), ("rec", "lif1"), ("lif1", "rec"))
    edges += (("lif1", "fc2"), ("fc2", "lif2"))
    return Graph(nodes, T=10, edges=edges)


def test_counts_with_a_recurrence_and_reset_to_zero_on_lava():
    graph = recurrent_counting_graph()
    images = np.random.default_rng(10).random((5, 5, 1, 1)).astype(np.float32)
    fixed, _ = quantize_graph(graph, images)
    reference = simulate(fixed, images, record=True)
    assert reference.spikes["lif1"].max() == 3, "the bound must be reached"
    assert reference.output_spikes.max() == 2
    np.testing.assert_array_equal(on_lava(fixed, images), reference.output_window_spikes)


@pytest.mark.conformance("ONNX", "spike counts", "round trip")
@pytest.mark.conformance("ONNX", "refractory step", "round trip")
@pytest.mark.conformance("ONNX", "read-out (membrane out)", "round trip")
@pytest.mark.conformance(
    "NIR",
    "spike counts",
    refused="NIR's neurons emit one spike per step; export ONNX, which states the bound",
)
@pytest.mark.conformance(
    "lava-dl netx",
    "spike counts",
    refused="netx's CUBA neuron sends one spike per step; on Lava it runs as LIFVariant",
)
def test_variants_survive_onnx_and_are_refused_by_nir_and_netx(tmp_path):
    """Spike counts, a synaptic bias and a refractory step, float and fixed point, read back
    from ONNX to the same nodes and the same simulation; NIR and netx cannot state them."""
    from toolchain.io.netx_write import NetxExportError, save_netx

    graph = recurrent_counting_graph()
    lif1 = replace(graph.node("lif1"), synaptic_bias=np.linspace(-0.2, 0.3, 7), refractory=1)
    nodes = tuple(lif1 if n.name == "lif1" else n for n in graph.nodes)
    graph = Graph(nodes, T=graph.T, edges=graph.edges)
    images = np.random.default_rng(11).random((4, 5, 1, 1)).astype(np.float32)
    fixed, _ = quantize_graph(graph, images)
    for original in (graph, fixed):
        save_onnx(original, tmp_path / "g.onnx")
        back = load_onnx(tmp_path / "g.onnx")
        for before, after in zip(original.populations, back.populations, strict=True):
            assert (after.max_spikes, after.refractory) == (before.max_spikes, before.refractory)
            for key in ("synaptic_bias", "synaptic_bias_int"):
                np.testing.assert_array_equal(getattr(after, key), getattr(before, key))
    assert np.any(back.node("lif1").synaptic_bias_int)
    np.testing.assert_array_equal(
        simulate(back, images).output_spikes, simulate(fixed, images).output_spikes
    )
    with pytest.raises(NirExportError, match="'lif1': emits spike counts .*NIR has no way"):
        save_nir(graph, tmp_path / "g.nir")
    readout = replace(fixed.node("lif2"), reset_subtract=None, reset_sub=None, max_spikes=1)
    readout = replace(readout, readout=True)
    with_readout = Graph((*fixed.nodes[:-1], readout), T=fixed.T, edges=fixed.edges)
    save_onnx(with_readout, tmp_path / "r.onnx")
    assert load_onnx(tmp_path / "r.onnx").node("lif2").readout
    with pytest.raises(NetxExportError, match="'lif1': emits spike counts .*netx's CUBA neuron"):
        save_netx(fixed, tmp_path / "g.net")


def test_import_max_spikes_option(tmp_path, capsys):
    out = tmp_path / "cnn.onnx"
    args = ["import", str(SHARED / "cnn_sinabs.nir"), "--from", "sinabs", "--out", str(out)]
    assert main([*args, "--max-spikes", "4", "--quiet"]) == 0
    assert {p.max_spikes for p in load_onnx(out).populations} == {4}
    assert main([*args, "--max-spikes", "0", "--quiet"]) == 2
    assert "--max-spikes" in capsys.readouterr().err


def test_sinabs_single_spike_iaf_with_max_spikes_one(tmp_path):
    """Issue 25's Sinabs MLP: IAFSqueeze with SingleSpike and MembraneSubtract, biased Linear
    layers with weights times 1.5, Bernoulli(0.3) inputs, T = 25. Sinabs' NIR file does not say
    which spike function its layers use: read as counts (Sinabs' default, MultiSpike) a hidden
    neuron sends 2 where SingleSpike sent 1, and the output fires early; with max_spikes 1 every
    spike is Sinabs' own."""
    import sinabs
    import sinabs.layers as sl
    from sinabs.activation import MembraneSubtract, SingleSpike

    steps = 25
    torch.manual_seed(0)

    def linear(n_in: int, n_out: int) -> torch.nn.Linear:
        synapse = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            synapse.weight.mul_(1.5)
        return synapse

    def iaf() -> torch.nn.Module:
        return sl.IAFSqueeze(batch_size=1, spike_fn=SingleSpike, reset_fn=MembraneSubtract())

    net = torch.nn.Sequential(linear(20, 30), iaf(), linear(30, 10), iaf())
    x = (torch.rand(steps, 20) < 0.3).float()
    with torch.no_grad():
        theirs = net(x).numpy()
    sinabs.reset_states(net)
    nir.write(tmp_path / "iaf.nir", writable(sinabs.to_nir(net, x[:1])))
    inputs = x.numpy().reshape(1, steps, 20, 1, 1).astype(np.float64)

    def output(max_spikes: int | None) -> np.ndarray:
        graph = read_nir(
            tmp_path / "iaf.nir", convention="sinabs", steps=steps, max_spikes=max_spikes
        )
        spikes = run_float(graph, inputs, dtype=torch.float64).spikes[graph.populations[-1].name]
        return np.moveaxis(spikes[0], -1, 0)

    assert theirs.sum() > 5
    np.testing.assert_array_equal(output(1), theirs)
    assert np.any(output(None) != theirs)
