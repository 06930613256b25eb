"""NIR files written by the real libraries' exporters import as Graphs whose float simulation
gives the library's own output spikes, and quantise and run on Lava spike for spike.

Each network is built in snnTorch, Norse or SpikingJelly (Sinabs and Rockpool, whose neurons
emit spike counts: test_nir_spike_counts.py), run on a static input (the same
vector every step, as our Input sends), exported with the library's `nir` exporter, imported
with that library's conventions and run by our float runner in float64.
"""

import json
import math
from dataclasses import replace
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from nir_networks import (
    SHARED,
    T,
    conv,
    dense,
    full,
    norse_export,
    norse_run,
    ours,
    snntorch_run_and_export,
    spikingjelly_run_and_export,
    static_input,
)

from quantize.scales import quantize_graph
from targets.loihi2.simulator import simulate
from targets.loihi2.timing import population_window
from toolchain.cli import main
from toolchain.io import load_onnx
from toolchain.io.nir_read import NirImportError, read_nir
from toolchain.ir import Graph, SumPool2d
from toolchain.ir.float_runner import apply_node, run_float
from toolchain.ir.lowering import lower

# ----------------------------------------------------------------------------------- snnTorch


def snntorch_leaky_net(reset: str = "zero"):
    import snntorch as snn

    def leaky(n, beta, threshold):
        return snn.Leaky(
            beta=full(beta, n),
            threshold=full(threshold, n),
            reset_mechanism=reset,
            init_hidden=True,
        )

    return torch.nn.Sequential(
        dense(6, 8, seed=1, gain=2.0),
        leaky(8, 0.8, 0.5),
        dense(8, 4, seed=2, gain=2.0),
        leaky(4, 0.9, 0.5),
    )


@pytest.mark.conformance("snnTorch", "LIF", "own spikes")
def test_snntorch_leaky_with_reset_to_zero(tmp_path):
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    net, x = snntorch_leaky_net(), static_input((6,))
    utils.reset(net)
    with torch.no_grad():
        theirs = torch.stack([net(torch.from_numpy(x)) for _ in range(T)])[:, 0].numpy()
    assert 0 < theirs.mean() < 1, "the output layer must fire, and not always"
    utils.reset(net)
    nir.write(tmp_path / "leaky.nir", export_to_nir(net, torch.from_numpy(x), ignore_dims=[0]))
    mine = ours(tmp_path / "leaky.nir", x, convention="snntorch", reset="zero")
    np.testing.assert_array_equal(mine, theirs)


def imports_exactly(net, x: np.ndarray, path: Path) -> tuple[Graph, np.ndarray]:
    """Exports `net` with snnTorch, checks that its output fires (but not always) and that our
    float runner gives its own spikes from the imported file; the imported graph and those
    spikes."""
    theirs = snntorch_run_and_export(net, x, path)
    assert 0.05 < theirs.mean() < 0.95, "the output layer must fire, and not always"
    np.testing.assert_array_equal(ours(path, x, convention="snntorch"), theirs)
    return read_nir(path, convention="snntorch"), theirs


def snntorch_synaptic_net():
    import snntorch as snn

    def synaptic(n, alpha, beta, threshold):
        return snn.Synaptic(
            alpha=full(alpha, n), beta=full(beta, n), threshold=full(threshold, n), init_hidden=True
        )

    return torch.nn.Sequential(
        dense(6, 8, seed=3, gain=2.0), synaptic(8, 0.6, 0.8, 2.0),
        dense(8, 4, seed=4, gain=2.0), synaptic(4, 0.5, 0.9, 2.0),
    )  # fmt: skip


@pytest.mark.conformance("snnTorch", "reset by subtraction", "own spikes")
@pytest.mark.conformance("snnTorch", {"make1": "synaptic current (CubaLIF)"}, "own spikes")
@pytest.mark.parametrize("make", [lambda: snntorch_leaky_net("subtract"), snntorch_synaptic_net])
def test_snntorch_default_subtractive_reset(tmp_path, make):
    """snnTorch subtracts the threshold one step after a spike: our neuron subtracts
    threshold / beta at once, the same voltage a step later. Read as a reset to zero, the
    same file gives other spikes (the reset matters here)."""
    x = static_input((6,), seed=2)
    graph, theirs = imports_exactly(make(), x, tmp_path / "net.nir")
    assert [p.reset_subtract for p in graph.populations] == pytest.approx([1 / 0.8, 1 / 0.9])
    zero = ours(tmp_path / "net.nir", x, convention="nir", dt=1e-4, reset="zero")
    assert not np.array_equal(zero, theirs)


@pytest.mark.conformance("snnTorch", "bias", "own spikes")
def test_snntorch_biases_into_leaky_neurons(tmp_path):
    """A Linear's bias is a constant input to the membrane of the Leaky after it: folded like
    the weights, it gives snnTorch's own spikes; into a Synaptic it enters the filtered
    current (a synaptic bias), and gives snnTorch's own spikes too."""
    import snntorch as snn

    def leaky(n, beta):
        return snn.Leaky(beta=full(beta, n), threshold=full(0.5, n), init_hidden=True)

    net = torch.nn.Sequential(
        dense(6, 8, seed=1, gain=1.5, shift=0.0, bias=True), leaky(8, 0.8),
        dense(8, 4, seed=2, gain=1.5, shift=0.0, bias=True), leaky(4, 0.9),
    )  # fmt: skip
    x = static_input((6,), seed=4)
    graph, _ = imports_exactly(net, x, tmp_path / "biased.nir")
    assert all(p.bias is not None and np.any(p.bias) for p in graph.populations)
    synaptic = torch.nn.Sequential(
        dense(6, 4, seed=1, bias=True),
        snn.Synaptic(
            alpha=full(0.5, 4), beta=full(0.8, 4), threshold=full(1.0, 4), init_hidden=True
        ),
    )
    graph, _ = imports_exactly(synaptic, x, tmp_path / "syn.nir")
    (population,) = graph.populations
    assert population.bias is None and np.any(population.synaptic_bias)


def snntorch_recurrent_net(kind: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Linear, an RLeaky or RSynaptic layer (its recurrent weights doubled, no bias), Linear,
    Leaky: the network and its recurrent layer."""
    import snntorch as snn

    params = {"beta": full(0.8, 8), "linear_features": 8, "init_hidden": True}
    if kind == "RLeaky":
        layer = snn.RLeaky(threshold=full(0.7, 8), **params)
    else:
        layer = snn.RSynaptic(alpha=full(0.5, 8), threshold=full(1.5, 8), **params)
    torch.manual_seed(0)
    with torch.no_grad():
        layer.recurrent.weight.mul_(2.0)
        layer.recurrent.bias.zero_()
    net = torch.nn.Sequential(
        dense(6, 8, seed=1, gain=1.5), layer, dense(8, 4, seed=2, gain=1.5),
        snn.Leaky(beta=full(0.9, 4), threshold=full(0.5, 4), init_hidden=True),
    )  # fmt: skip
    return net, layer


@pytest.mark.conformance("snnTorch", "recurrent layer", "own spikes")
@pytest.mark.parametrize("kind", ["RLeaky", "RSynaptic"])
def test_snntorch_recurrent_layers(tmp_path, kind):
    """A layer that reads its own spikes of the previous step (snnTorch writes `n.lif` and
    `n.w_rec` in a cycle) imports as a self-recurrent population: snnTorch's own spikes, and
    other spikes without the recurrent weights."""
    net, layer = snntorch_recurrent_net(kind)
    x = static_input((6,), seed=2)
    graph, theirs = imports_exactly(net, x, tmp_path / "rec.nir")
    assert graph.recurrent_synapse(graph.node("1.lif")).name == "1.w_rec"
    with torch.no_grad():
        layer.recurrent.weight.zero_()
    assert not np.array_equal(snntorch_run_and_export(net, x, tmp_path / "r0.nir"), theirs)


def test_a_recurrent_layer_nested_as_a_subgraph_imports_the_same(tmp_path):
    """NIR may nest a recurrent layer as a subgraph (its own Input, neuron, recurrent Linear
    and Output). No exporter installed here writes one, so snnTorch's flat export of an
    RSynaptic network is nested with the nir package's own classes and written by `nir.write`:
    it imports to snnTorch's own spikes, as the flat file does."""
    net, _ = snntorch_recurrent_net("RSynaptic")
    x = static_input((6,), seed=2)
    theirs = snntorch_run_and_export(net, x, tmp_path / "flat.nir")
    flat = nir.read(tmp_path / "flat.nir")
    port = {"input": np.array([8])}
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=port),
            "lif": flat.nodes["1.lif"],
            "w_rec": flat.nodes["1.w_rec"],
            "output": nir.Output(output_type={"output": np.array([8])}),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    outer = {k: n for k, n in flat.nodes.items() if not k.startswith("1.")}
    edges = [(a, b) for a, b in flat.edges if not (a.startswith("1.") or b.startswith("1."))]
    nested = nir.NIRGraph(nodes={**outer, "1": inner}, edges=[*edges, ("0", "1"), ("1", "2")])
    nir.write(tmp_path / "nested.nir", nested)
    assert "1" in nir.read(tmp_path / "nested.nir").nodes
    np.testing.assert_array_equal(ours(tmp_path / "nested.nir", x, convention="snntorch"), theirs)
    graph = read_nir(tmp_path / "nested.nir", convention="snntorch")
    assert graph.recurrent_synapse(graph.node("1.lif")).name == "1.w_rec"


@pytest.mark.conformance("snnTorch", "refractory step", "own spikes")
def test_snntorch_synaptic_neurons_resetting_to_zero_with_biases(tmp_path):
    """snnTorch's Synaptic and RSynaptic neurons resetting to zero zero the whole next step's
    membrane (a refractory step), with biases on the input and the recurrent Linear entering
    the synaptic current: snnTorch's own spikes; without the refractory step, other spikes."""
    import snntorch as snn

    zero = {"reset_mechanism": "zero", "init_hidden": True}
    layer = snn.RSynaptic(
        alpha=full(0.5, 8), beta=full(0.8, 8), threshold=full(1.0, 8), linear_features=8, **zero
    )
    torch.manual_seed(0)
    with torch.no_grad():
        layer.recurrent.weight.mul_(2.0)
    net = torch.nn.Sequential(
        dense(6, 8, seed=1, gain=1.5, bias=True), layer,
        dense(8, 4, seed=2, gain=1.5, bias=True),
        snn.Synaptic(alpha=full(0.6, 4), beta=full(0.9, 4), threshold=full(1.0, 4), **zero),
    )  # fmt: skip
    x = static_input((6,), seed=2)
    theirs = snntorch_run_and_export(net, x, tmp_path / "zero.nir")
    assert 0.05 < theirs.mean() < 0.95
    mine = ours(tmp_path / "zero.nir", x, convention="snntorch", reset="zero")
    np.testing.assert_array_equal(mine, theirs)
    graph = read_nir(tmp_path / "zero.nir", convention="snntorch", reset="zero")
    assert [p.refractory for p in graph.populations] == [1, 1]
    assert all(np.any(p.synaptic_bias) for p in graph.populations)
    nodes = tuple(replace(n, refractory=0) if n in graph.populations else n for n in graph.nodes)
    no_hold = Graph(nodes, T=T, edges=graph.edges)
    image = x.reshape(1, 6, 1, 1).astype(np.float64)
    spikes = run_float(no_hold, image, dtype=torch.float64).spikes[nodes[-1].name]
    assert not np.array_equal(np.moveaxis(spikes[0], -1, 0), theirs)


@pytest.mark.conformance("NIR", "recurrent layer", "quantises", "Lava bit-exact")
@pytest.mark.conformance(
    "NIR",
    {
        "braille_noDelay_noBias_subtract.nir": "reset by subtraction",
        "braille_noDelay_bias_zero.nir": "bias",
    },
    "quantises",
    "Lava bit-exact",
)
@pytest.mark.parametrize(
    "name, reset",
    [("braille_noDelay_noBias_subtract.nir", None), ("braille_noDelay_bias_zero.nir", "zero")],
)
def test_the_paper_braille_networks_run_on_lava_with_their_recurrence(name, reset):
    """The NIR paper's Braille networks (snnTorch, recurrent CubaLIF; one with subtractive
    reset, one resetting to zero with biases into the synaptic currents, a refractory step and
    synaptic biases on Lava): imported, quantised, simulated bit-accurately and streamed through
    Lava spike for spike; float and fixed point agree on random inputs (measured on the output
    neurons' steps: 97.1 % and 91.6 %, every prediction)."""
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    graph = read_nir(SHARED / name, convention="snntorch", reset=reset)
    assert graph.recurrent_synapse(graph.node("lif1.lif")) is not None
    x = np.random.default_rng(0).random((50, *graph.input.shape)).astype(np.float32)
    fixed, report = quantize_graph(graph, x)
    assert fixed.node("lif1.w_rec").weight_int is not None
    reference = simulate(fixed, x)
    floating = run_float(graph, x)
    name = graph.populations[-1].name
    agreement = (reference.output_window_spikes == floating.spikes[name]).mean()
    assert agreement > 0.9 and (reference.predictions == floating.predictions).mean() > 0.9
    assert not report.overflowing_layers
    lava = run_on_lava(fixed, x[:8])
    assert lava.output_spikes.any()
    np.testing.assert_array_equal(lava.output_spikes, reference.output_window_spikes[:8])


@pytest.mark.conformance("snnTorch", "reset by subtraction", "quantises", "Lava bit-exact")
def test_subtractive_reset_quantises_and_runs_on_lava(tmp_path):
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    theirs = snntorch_run_and_export(
        snntorch_leaky_net("subtract"), static_input((6,)), tmp_path / "s.nir"
    )
    assert theirs.any()
    graph = lower(read_nir(tmp_path / "s.nir", convention="snntorch", steps=T))
    images = np.random.default_rng(5).random((8, 6, 1, 1)).astype(np.float32)
    fixed, _ = quantize_graph(graph, images)
    assert all(p.reset_sub > p.vth * 64 for p in fixed.populations)  # 1 / beta > 1 threshold
    lava = run_on_lava(fixed, images)
    reference = simulate(fixed, images)
    assert lava.output_spikes.sum() > 0
    np.testing.assert_array_equal(lava.output_spikes, reference.output_window_spikes)
    floating = run_float(graph, images).spikes[graph.populations[-1].name]
    assert (floating == reference.output_window_spikes).mean() > 0.9


# -------------------------------------------------------------------------------------- Norse


@pytest.mark.conformance(
    "Norse",
    {"LIFBoxCell": "LIF", "LIFCell": "synaptic current (CubaLIF)", "IAFCell": "IF (no leak)"},
    "own spikes",
)
@pytest.mark.parametrize("cell", ["LIFBoxCell", "LIFCell", "IAFCell"])
def test_norse_cells(tmp_path, cell):
    import norse.torch as norse

    n = 8

    def make(size, threshold):
        zero = torch.zeros(size)
        if cell == "LIFBoxCell":
            p = norse.LIFBoxParameters(
                tau_mem_inv=full(250, size), v_th=full(threshold, size), v_leak=zero
            )
            return norse.LIFBoxCell(p, dt=1e-3)
        if cell == "LIFCell":
            p = norse.LIFParameters(
                tau_mem_inv=full(200, size),
                tau_syn_inv=full(300, size),
                v_th=full(threshold, size),
                v_leak=zero,
            )
            return norse.LIFCell(p, dt=1e-3)
        return norse.IAFCell(norse.IAFParameters(v_th=full(threshold, size)))

    gain, shift = (1.0, 0.0) if cell == "IAFCell" else (3.0, 0.2)
    net = norse.SequentialState(
        dense(6, n, 3, gain, shift), make(n, 0.4), dense(n, 4, 4, gain, shift), make(4, 0.3)
    )
    x = static_input((6,), seed=1)
    theirs = norse_run(net, torch.from_numpy(x), T)[:, 0].numpy()
    assert 0 < theirs.mean() < 1
    norse_export(net, x, tmp_path / "net.nir")
    np.testing.assert_array_equal(ours(tmp_path / "net.nir", x, convention="norse"), theirs)


@pytest.mark.conformance("Norse", "convolution", "own spikes", "Lava bit-exact")
def test_norse_convolutional_network_runs_on_lava(tmp_path):
    """Conv2d into LIFBoxCell twice (Norse 1.1 exports no Flatten or pooling): Norse's own
    spikes of every output neuron, then quantised and run on Lava equal to the reference."""
    import norse.torch as norse

    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    def cell(*shape: int):
        p = norse.LIFBoxParameters(
            tau_mem_inv=full(250, *shape), v_th=full(0.3, *shape), v_leak=torch.zeros(shape)
        )
        return norse.LIFBoxCell(p, dt=1e-3)

    net = norse.SequentialState(
        conv(2, 4, seed=7, gain=1.0), cell(4, 8, 8), conv(4, 3, seed=8, gain=1.0), cell(3, 8, 8)
    )
    x = static_input((2, 8, 8), seed=3)
    theirs = norse_run(net, torch.from_numpy(x), T)[:, 0].numpy()
    assert 0.05 < theirs.mean() < 0.95
    norse_export(net, x, tmp_path / "conv.nir")
    np.testing.assert_array_equal(ours(tmp_path / "conv.nir", x, convention="norse"), theirs)
    graph = read_nir(tmp_path / "conv.nir", convention="norse", steps=T)
    images = np.random.default_rng(4).random((3, 2, 8, 8)).astype(np.float32)
    fixed, _ = quantize_graph(graph, images)
    lava = run_on_lava(fixed, images)
    assert lava.output_spikes.any()
    np.testing.assert_array_equal(lava.output_spikes, simulate(fixed, images).output_window_spikes)


@pytest.mark.conformance("Norse", "read-out (membrane out)", "quantises", "Lava bit-exact")
def test_norse_leaky_integrator_readout_runs_on_lava(tmp_path):
    """A LIBoxCell read-out (NIR's LI): its membrane is the output. Ours follows Norse's
    voltages (to float32 rounding) and prediction; quantised, Lava sends the integer membrane
    every step, equal to the reference simulator's, and the predictions agree with the float
    graph's on most inputs."""
    import norse.torch as norse

    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    lif = norse.LIFBoxParameters(tau_mem_inv=full(250, 8), v_th=full(0.4, 8), v_leak=torch.zeros(8))
    li = norse.LIBoxParameters(tau_mem_inv=full(200, 4), v_leak=torch.zeros(4))
    net = norse.SequentialState(
        dense(6, 8, 3, 3.0, 0.2), norse.LIFBoxCell(lif, dt=1e-3),
        dense(8, 4, 4, 1.0, 0.0), norse.LIBoxCell(li, dt=1e-3),
    )  # fmt: skip
    x = static_input((6,), seed=1)
    theirs = norse_run(net, torch.from_numpy(x), T)[:, 0].numpy()
    norse_export(net, x, tmp_path / "li.nir")
    graph = read_nir(tmp_path / "li.nir", convention="norse", steps=T)
    assert [p.readout for p in graph.populations] == [False, True]
    run = run_float(graph, x.reshape(1, 6, 1, 1).astype(np.float64), dtype=torch.float64)
    mine = np.moveaxis(run.spikes[graph.populations[-1].name][0], -1, 0)
    np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert graph.prediction == "max"  # as Norse's tutorials: the read-out membrane's peak
    assert run.predictions[0] == theirs.max(0).argmax()

    images = np.random.default_rng(4).random((12, 6, 1, 1)).astype(np.float32)
    fixed, _ = quantize_graph(graph, images)
    reference = simulate(fixed, images)
    assert reference.output_spikes.dtype == np.int64 and np.abs(reference.output_spikes).max() > 0
    lava = run_on_lava(fixed, images[:4])
    np.testing.assert_array_equal(lava.output_spikes, reference.output_window_spikes[:4])
    np.testing.assert_array_equal(lava.predictions, reference.predictions[:4])
    floating = run_float(graph, images).predictions
    assert (floating == reference.predictions).mean() >= 0.75


# ------------------------------------------------------------------------------- SpikingJelly


@pytest.mark.conformance(
    "SpikingJelly",
    {"LIFNode": "LIF", "IFNode": "IF (no leak)", "CUBALIFNode": "synaptic current (CubaLIF)"},
    "own spikes",
)
@pytest.mark.parametrize("kind", ["LIFNode", "IFNode", "CUBALIFNode"])
def test_spikingjelly_dense(tmp_path, kind):
    from spikingjelly.activation_based import layer, neuron

    def make(threshold):
        if kind == "LIFNode":
            return neuron.LIFNode(tau=2.5, v_threshold=threshold)
        if kind == "IFNode":
            return neuron.IFNode(v_threshold=threshold)
        return neuron.CUBALIFNode(c_decay=0.5, v_decay=0.75, v_threshold=threshold)

    gain, shift = (1.5, 0.2) if kind == "LIFNode" else (1.0, 0.0)
    net = torch.nn.Sequential(
        dense(6, 8, 5, gain, shift),
        make(0.4),
        layer.Flatten(),
        dense(8, 4, 6, gain, shift),
        make(0.3),
    )
    x = static_input((6,), seed=2)
    theirs = spikingjelly_run_and_export(net, x, tmp_path / "net.nir")
    assert 0 < theirs.mean() < 1
    np.testing.assert_array_equal(ours(tmp_path / "net.nir", x, convention="spikingjelly"), theirs)


def spikingjelly_cnn(pool: str, bias: bool = False):
    from spikingjelly.activation_based import layer, neuron

    pooling = layer.AvgPool2d(2) if pool == "avg" else torch.nn.LPPool2d(1, 2)
    return torch.nn.Sequential(
        conv(2, 4, seed=7, gain=1.0, layer=layer.Conv2d, bias=bias),
        neuron.IFNode(v_threshold=0.3),
        pooling,
        layer.Flatten(),
        dense(4 * 4 * 4, 5, seed=8, gain=1.0, shift=0.0, layer=layer.Linear, bias=bias),
        neuron.IFNode(v_threshold=0.3),
    )


@pytest.mark.conformance("SpikingJelly", "convolution", "own spikes", "Lava bit-exact")
@pytest.mark.conformance("SpikingJelly", "pooling", "own spikes", "Lava bit-exact")
@pytest.mark.conformance("SpikingJelly", {"True": "bias"}, "own spikes", "Lava bit-exact")
@pytest.mark.parametrize("bias", [False, True])
def test_spikingjelly_conv_with_average_pooling_on_lava(tmp_path, bias):
    """With biases too: per channel of the convolution, per neuron of the dense layer."""
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    net, x = spikingjelly_cnn("avg", bias), static_input((2, 8, 8), seed=3)
    theirs = spikingjelly_run_and_export(net, x, tmp_path / "cnn.nir")
    assert 0 < theirs.mean() < 1
    mine = ours(tmp_path / "cnn.nir", x, convention="spikingjelly")
    np.testing.assert_array_equal(mine, theirs)
    graph = lower(read_nir(tmp_path / "cnn.nir", convention="spikingjelly", steps=T))
    assert all((p.bias is not None) == bias for p in graph.populations)
    images = np.random.default_rng(4).random((6, 2, 8, 8)).astype(np.float32)
    fixed, _ = quantize_graph(graph, images)
    lava = run_on_lava(fixed, images)
    assert lava.output_spikes.sum() > 0
    np.testing.assert_array_equal(lava.output_spikes, simulate(fixed, images).output_window_spikes)


# ------------------------------------------------------------------------ refusals and the CLI


def test_what_does_not_import_yet_is_refused_by_name(tmp_path):
    nobias = SHARED / "braille_noDelay_noBias_subtract.nir"
    with pytest.raises(NirImportError, match="NIR files do not record their time step; give --dt"):
        read_nir(nobias)
    junk = tmp_path / "junk.nir"
    junk.write_text("not hdf5")
    with pytest.raises(NirImportError, match="junk.nir: not a readable NIR file"):
        read_nir(junk, dt=1.0)


def test_the_paper_cnn_imports_with_the_spec_reading_and_reset_to_zero(tmp_path, capsys):
    """cnn_sinabs.nir read as NIR states it (forward Euler, reset to v_reset = 0, dt 1)."""
    out = tmp_path / "cnn.onnx"
    args = ["import", str(SHARED / "cnn_sinabs.nir"), "--out", str(out), "--dt", "1"]
    assert main([*args, "--steps", "8", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["populations"] == 5 and result["T"] == 8
    graph = load_onnx(out)
    assert [p.tau_m for p in graph.populations] == [math.inf] * 5, "IF neurons do not leak"
    assert [n.weight for n in graph.nodes if isinstance(n, SumPool2d)] == [1.0, 1.0]


@pytest.mark.conformance("NIR", "convolution", "quantises", "Lava bit-exact")
@pytest.mark.conformance("NIR", "pooling", "quantises", "Lava bit-exact")
def test_the_paper_cnn_runs_on_lava_bit_exactly():
    """cnn_sinabs.nir, lowered and quantised on random inputs, streams through Lava spike for
    spike equal to the reference simulator. Float against fixed point, spike agreement per
    layer on these inputs (measured): 0.93, 0.80, 0.83, 0.73, 0.28 (the sparse output)."""
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    graph = lower(read_nir(SHARED / "cnn_sinabs.nir", dt=1.0, steps=8))
    x = np.random.default_rng(0).random((12, *graph.input.shape)).astype(np.float32)
    fixed, _ = quantize_graph(graph, x)
    reference = simulate(fixed, x)
    lava = run_on_lava(fixed, x[:3])
    assert lava.output_spikes.any()
    np.testing.assert_array_equal(lava.output_spikes, reference.output_window_spikes[:3])
    first = graph.populations[0].name
    floating = run_float(graph, x).spikes[first].astype(bool)
    fixed_first = simulate(fixed, x, record=True).spikes[first][..., population_window(fixed, 0)]
    both = (floating & fixed_first.astype(bool)).sum()
    assert 2 * both / (floating.sum() + fixed_first.sum()) > 0.9


def test_from_snntorch_to_lava_in_commands(tmp_path, capsys):
    """The README's path, command by command: a recurrent snnTorch network with its default
    reset, exported by snnTorch, imported, quantised on the user's inputs, compared float
    against fixed point per layer, and run on Lava equal to the reference simulator."""
    import snntorch as snn

    from toolchain.cli import main

    torch.manual_seed(0)
    layer = snn.RLeaky(
        beta=full(0.8, 8), threshold=full(0.7, 8), linear_features=8, init_hidden=True
    )
    with torch.no_grad():
        layer.recurrent.bias.zero_()
    net = torch.nn.Sequential(
        dense(6, 8, seed=1, gain=1.5), layer, dense(8, 4, seed=2, gain=1.5),
        snn.Leaky(beta=full(0.9, 4), threshold=full(0.5, 4), init_hidden=True),
    )  # fmt: skip
    snntorch_run_and_export(net, static_input((6,)), tmp_path / "net.nir")
    rng = np.random.default_rng(9)
    np.save(tmp_path / "x.npy", rng.random((40, 6)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 4, 40))
    data = ["--inputs", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")]

    def run(*args: str) -> dict:
        assert main([*args, "--json", "--quiet"]) == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    floating, fixed = str(tmp_path / "float.onnx"), str(tmp_path / "fixed.onnx")
    run(
        "import",
        str(tmp_path / "net.nir"),
        "--from",
        "snntorch",
        "--steps",
        "12",
        "--out",
        floating,
    )
    quantized = run("quantize", floating, *data, "--out", fixed)
    report = run("compare", floating, fixed, *data, "--out", str(tmp_path / "cmp"))
    assert report["float_accuracy"] == quantized["float_accuracy"]
    assert report["fixed_accuracy"] == quantized["fixed_accuracy"]
    assert [layer["name"] for layer in report["layers"]] == ["1.lif", "3"]
    assert all(0.8 < layer["agreement"] <= 1 for layer in report["layers"])
    deployed = run("deploy", fixed, *data[:2], "--limit", "10", "--out", str(tmp_path / "l.npz"))
    assert deployed["matches_reference"] is True and deployed["samples"] == 10


def small_nir(tmp_path: Path, *middle, name: str = "g.nir") -> Path:
    """Input (3,) -> the given nodes, chained -> Output; written with nir."""
    nodes = {"input": nir.Input(input_type={"input": np.array([3])})}
    nodes.update({f"n{i}": node for i, node in enumerate(middle)})
    nodes["output"] = nir.Output(output_type={"output": np.array([2])})
    keys = list(nodes)
    edges = list(zip(keys, keys[1:], strict=False))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    nir.write(tmp_path / name, graph)
    return tmp_path / name


def lif_node(beta: float, size: int = 2):
    """A NIR LIF whose snnTorch reading has this beta (dt 1e-4, r = tau / dt)."""
    tau = np.full(size, 1e-4 / (1 - beta)) if beta < 1 else np.full(size, np.inf)
    return nir.LIF(tau, tau / 1e-4, np.zeros(size), np.ones(size), np.zeros(size))


def test_importer_refusals_name_the_node(tmp_path):
    scale_first = small_nir(
        tmp_path, nir.Scale(np.ones(3)), nir.Linear(np.ones((2, 3))), lif_node(0.5)
    )
    with pytest.raises(NirImportError, match="node 'n0': a Scale must follow pooling or a synapse"):
        read_nir(scale_first, convention="snntorch")
    no_memory = small_nir(tmp_path, nir.Linear(np.ones((2, 3))), lif_node(0.0), name="b.nir")
    with pytest.raises(NirImportError, match="node 'n1': a late subtraction with no memory"):
        read_nir(no_memory, convention="snntorch")
    assert read_nir(no_memory, convention="snntorch", reset="zero").populations[0].tau_m == 1


def test_a_conv_with_unequal_stride_and_padding_keeps_height_and_width_apart(tmp_path):
    """stride (2, 1), padding (1, 0) on a 7 x 5 image: the imported Conv2d computes what torch's
    conv2d does, (4, 3) per channel; (h, w) swapped would give 5 x 3 from other pixels."""
    rng = np.random.default_rng(3)
    weight = rng.normal(size=(2, 1, 3, 3))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 7, 5])}),
        "conv": nir.Conv2d((7, 5), weight, (2, 1), (1, 0), 1, 1, np.zeros(2)),
        "lif": lif_node(0.5, size=(2, 4, 3)),
        "output": nir.Output(output_type={"output": np.array([2, 4, 3])}),
    }
    keys = list(nodes)
    edges = list(zip(keys, keys[1:], strict=False))
    nir.write(tmp_path / "conv.nir", nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    imported = read_nir(tmp_path / "conv.nir", convention="snntorch", steps=2)
    conv_node = next(node for node in imported.nodes if node.name == "conv")
    assert imported.shapes()[imported.nodes.index(conv_node)] == (2, 4, 3)
    x = torch.from_numpy(rng.random((3, 1, 7, 5)))
    ours = apply_node(conv_node, x.unsqueeze(-1))[..., 0]
    kernel = torch.from_numpy(weight)
    expected = torch.nn.functional.conv2d(x, kernel, stride=(2, 1), padding=(1, 0))
    torch.testing.assert_close(ours, expected)


@pytest.mark.conformance("snnTorch", "convolution", "own spikes", "Lava bit-exact")
@pytest.mark.conformance("snnTorch", "pooling", "own spikes", "Lava bit-exact")
def test_snntorch_tutorial_order_conv_pool_leaky(tmp_path):
    """snnTorch's tutorials pool between a convolution and its neurons: the pool is folded into
    the convolution (kernel (p-1)s + k, stride p s), biases and padding included, and the file
    gives snnTorch's own spikes, through the float runner and, quantised, on Lava as on the
    reference simulator."""
    import snntorch as snn

    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    def leaky(shape, beta, threshold):
        return snn.Leaky(
            beta=full(beta, *shape), threshold=full(threshold, *shape), init_hidden=True
        )

    net = torch.nn.Sequential(
        conv(2, 4, seed=5, gain=1.0, bias=True), torch.nn.AvgPool2d(2), leaky((4, 4, 4), 0.8, 1.5),
        torch.nn.Flatten(), dense(64, 5, seed=6, gain=0.5), leaky((5,), 0.9, 4.0),
    )  # fmt: skip
    x = static_input((2, 8, 8), seed=3)
    graph, _ = imports_exactly(net, x, tmp_path / "tutorial.nir")
    first = graph.nodes[1]
    assert first.weight.shape[2:] == (4, 4) and first.stride == (2, 2)  # 3x3 conv, 2x2 pool
    images = np.random.default_rng(5).random((6, 2, 8, 8)).astype(np.float32)
    fixed, _ = quantize_graph(lower(graph), images)
    reference = simulate(fixed, images)
    assert reference.output_spikes.sum() > 0
    lava = run_on_lava(fixed, images[:3])
    np.testing.assert_array_equal(lava.output_spikes, reference.output_window_spikes[:3])
