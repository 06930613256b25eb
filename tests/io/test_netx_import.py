"""Reading netx files (`toolchain.io.netx_read`): a file we export reads back to a graph that
spikes the same, every command takes it, lava-dl's own tiny.net spikes as netx's ground truth
says, and what is not supported is refused by layer and field."""

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from graphs import LAVA_DL, convnet, mlp, netx_lif, replace_node, tiny_sample, unpacked
from lava_checks import assert_matches_reference

from targets.loihi2.simulator import simulate
from toolchain.cli import main
from toolchain.io import read_graph
from toolchain.io.netx_read import NetxImportError, read_netx_graph
from toolchain.io.netx_write import save_netx


def test_a_stride_is_read_in_hs_and_ws_order(tmp_path):
    graph = read_netx_graph(save_netx(convnet(), tmp_path / "net.net"))
    conv2 = graph.node("conv2")
    assert conv2.stride == (2, 1) and conv2.padding == (1, 0)

    def three_values(layers):
        del layers["1"]["stride"]
        layers["1"].create_dataset("stride", data=np.array([2, 1, 1]))

    path = edit(save_netx(convnet(), tmp_path / "bad.net"), three_values)
    with pytest.raises(NetxImportError, match=r"layer 1: stride \[2, 1, 1\]; accepted: \[h, w\]"):
        read_netx_graph(path)


@pytest.mark.conformance("lava-dl netx", {"mlp": "LIF", "convnet": "convolution"}, "round trip")
@pytest.mark.parametrize("make", [mlp, convnet])
def test_an_exported_file_reads_back_to_the_same_spikes(tmp_path, make):
    graph = make()
    save_netx(graph, tmp_path / "net.net")
    back = read_graph(tmp_path / "net.net")  # by suffix: netx
    assert back.T == graph.T and back.input.levels == graph.input.levels
    assert [n.name for n in back.nodes[1:]] == [n.name for n in graph.nodes[1:]]
    images = np.random.default_rng(0).random((20, *graph.input.shape))
    ours, theirs = simulate(graph, images, record=True), simulate(back, images, record=True)
    for population in graph.populations:
        np.testing.assert_array_equal(theirs.spikes[population.name], ours.spikes[population.name])
    assert ours.spikes[graph.populations[0].name].any()


def test_commands_take_a_netx_file(tmp_path, capsys):
    save_netx(mlp(), tmp_path / "net.net")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).random((5, 1, 4, 5)))
    assert main(["inspect", str(tmp_path / "net.net")]) == 0
    args = ["simulate", str(tmp_path / "net.net"), "--inputs", str(tmp_path / "x.npy"), "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["kind"] == "fixed-point"
    out = tmp_path / "net.onnx"
    assert main(["import", str(tmp_path / "net.net"), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["populations"] == 3
    assert read_graph(out) == read_netx_graph(tmp_path / "net.net")


def edit(path: Path, change) -> Path:
    with h5py.File(path, "r+") as f:
        change(f["layer"])
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda layers: layers["0"].create_group("neuron").create_dataset("iDecay", data=1024),
            "layer 0: input neurons with iDecay 1024; accepted: 4096",
        ),
        (
            lambda layers: layers["1"].create_dataset("delay", data=np.full(12, 70)),
            "layer 1: delays 70 .. 70; accepted: 0 .. 62 (netx clamps longer ones)",
        ),
        (
            lambda layers: layers["1"].create_dataset("delay", data=np.ones(7)),
            "layer 1: delays of shape (7,); accepted: one, one per output (12) or input (20), "
            "or (12, 20)",
        ),
        (
            lambda layers: (
                layers["3"].pop("neuron"),
                layers["3"].create_dataset("bias", data=np.ones(3)),
            ),
            "layer 3: a dense layer without neurons and with a bias; accepted: the last",
        ),
        (
            lambda layers: layers["3"]["neuron"]["refDelay"].write_direct(np.array(2)),
            "layer 3: refDelay 2; accepted: 1",
        ),
        (
            lambda layers: layers["2"]["neuron"]["iDecay"].write_direct(np.array(0)),
            "layer 2: iDecay 0; accepted: 1 .. 4096",
        ),
        pytest.param(
            lambda layers: layers["1"]["neuron"]["gradedSpike"].write_direct(np.array(True)),
            "layer 1: graded spikes are not supported",
            marks=pytest.mark.conformance(
                "lava-dl netx",
                "graded spikes",
                refused="a graded-spike (SDNN) layer's payload semantics are not modelled",
            ),
        ),
        (
            lambda layers: layers["1"]["type"].write_direct(np.array([b"pool"], "S10")),
            "layer 1: type 'pool' is not supported; accepted: input, dense, conv, flatten",
        ),
        (
            lambda layers: layers["3"]["neuron"]["type"].write_direct(np.array([b"SDNN"], "S10")),
            "layer 3: neuron type 'SDNN'; accepted: CUBA, LOIHI",
        ),
        (
            lambda layers: layers["2"].pop("neuron"),
            "layer 2: a dense layer without neurons; accepted: the last, dense, without a bias",
        ),
        (
            lambda layers: layers["1"]["neuron"]["vThMant"].write_direct(np.array(262143)),
            "layer 1: vThMant 262143; accepted: 1 .. 131071",
        ),
        (
            lambda layers: (
                layers["1"]["neuron"].pop("iDecay"),
                layers["1"]["neuron"].create_dataset("iDecay", data=np.arange(1000, 1013)),
            ),
            "layer 1: iDecay has 13 values; accepted: one, or one per output neuron or channel "
            "(12)",
        ),
        (
            lambda layers: layers["1"].create_dataset("bias", data=np.full(12, 5000.0)),
            "layer 1: biases beyond 13 bits are not supported",
        ),
        (
            lambda layers: layers["0"]["type"].write_direct(np.array([b"conv"], "S10")),
            "layer 0: a conv layer with no input layer before it",
        ),
    ],
)
def test_what_is_not_supported_is_refused_by_layer(tmp_path, change, message):
    path = edit(save_netx(mlp(), tmp_path / "net.net"), change)
    with pytest.raises(NetxImportError, match=f"net.net: {re.escape(message)}"):
        read_netx_graph(path)
    assert main(["inspect", str(path)]) == 2


def per_neuron(layers) -> None:
    """SLAYER without shared_param: a decay and threshold per neuron of layer 1, per channel
    of nothing else (the mlp is dense)."""
    neuron = layers["1"]["neuron"]
    for key, values in (
        ("iDecay", np.arange(1000, 1012) * 3),
        ("vDecay", np.arange(12) * 300),
        ("vThMant", np.arange(12) * 20 + 60),
    ):
        neuron.pop(key)
        neuron.create_dataset(key, data=values)


@pytest.mark.conformance("lava-dl netx", "per-neuron parameters", "Lava bit-exact", "round trip")
@pytest.mark.conformance("lava-dl netx", "synaptic delays", "Lava bit-exact", "round trip")
def test_delays_per_output_neuron_read_run_on_lava_and_write_back(tmp_path):
    """SLAYER's axonal delays, one per output neuron of a dense layer (netx spreads them over
    each neuron's synapses), and a whole matrix on the next: the Dense's delays; streamed on
    Lava (SampleDelayDense) equal to the reference in every u and v, written back the same."""
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    rng = np.random.default_rng(6)

    def delays(layers) -> None:
        layers["1"].create_dataset("delay", data=rng.integers(0, 6, 12))
        layers["3"].create_dataset("delay", data=rng.integers(0, 4, (3, 6)))

    spiking = replace_node(mlp(), 4, netx_lif("lif2", du=4095, dv=0, vth=50))
    graph = read_netx_graph(edit(save_netx(spiking, tmp_path / "net.net"), delays))
    first, last = graph.nodes[1], graph.nodes[5]
    assert (first.delay == first.delay[:, :1]).all() and first.delay.any() and last.delay.any()
    images = np.random.default_rng(3).random((4, 1, 4, 5))
    assert simulate(graph, images).output_window_spikes.any()
    probes = [p.name for p in graph.populations]
    assert_matches_reference(graph, images, run_on_lava(graph, images, probe=probes))
    assert read_netx_graph(save_netx(graph, tmp_path / "again.net")).nodes == graph.nodes


def test_per_neuron_decays_and_thresholds_read_and_run_on_lava(tmp_path):
    """netx runs per-neuron iDecay, vDecay and vThMant (Lava's LIF broadcasts them): ours read
    them into the population's du, dv and vth, Lava (LIFVariant) equals the reference in every
    u and v, and the graph writes back to a file that reads the same."""
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    path = edit(save_netx(mlp(), tmp_path / "net.net"), per_neuron)
    graph = read_netx_graph(path)
    population = graph.populations[0]
    assert population.per_neuron == ("tau_m", "tau_s", "threshold", "du", "dv", "vth")
    np.testing.assert_array_equal(population.du, np.arange(1000, 1012) * 3 - 1)
    assert population.threshold.min() == 1.0  # in units of the lowest threshold
    images = np.random.default_rng(3).random((5, 1, 4, 5))
    assert simulate(graph, images, record=True).spikes[population.name].any()
    assert_matches_reference(graph, images, run_on_lava(graph, images, probe=[population.name]))
    assert read_netx_graph(save_netx(graph, tmp_path / "again.net")).nodes == graph.nodes


@pytest.mark.conformance("lava-dl netx", "spikes without an input layer", "Lava bit-exact")
def test_a_file_without_an_input_layer_takes_the_first_layers_binary_spikes(tmp_path):
    """lava-dl's netx MNIST tutorial: SLAYER feeds layer 0's 784 inputs with spikes directly."""
    path = unpacked("netx_tutorial_mnist.net", tmp_path)
    graph = read_netx_graph(path)
    assert (graph.input.shape, graph.input.levels) == ((784, 1, 1), 1)
    with h5py.File(path) as f:
        stored = f["layer/0/weight"][()]
    np.testing.assert_array_equal(graph.nodes[1].weight_int, stored)
    assert [(p.du, p.dv, p.vth) for p in graph.populations] == [(409, 410, 64)] * 3
    spikes = (np.random.default_rng(1).random((2, graph.T, 784, 1, 1)) < 0.2).astype(float)
    reference = simulate(graph, spikes)
    assert reference.output_spikes.sum() > 0
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    lava = run_on_lava(graph, spikes)
    np.testing.assert_array_equal(lava.output_spikes, reference.output_window_spikes)


def without_last_neurons(layers) -> None:
    layers[str(len(layers) - 1)].pop("neuron")


def test_conv_delays_which_netx_ignores_are_refused(tmp_path):
    def delay(layers) -> None:
        layers["1"].create_dataset("delay", data=np.ones(4))

    path = edit(save_netx(convnet(), tmp_path / "net.net"), delay)
    with pytest.raises(NetxImportError, match="layer 1: a conv layer with delays, which netx"):
        read_netx_graph(path)


@pytest.mark.conformance("lava-dl netx", "layer without neurons", "Lava bit-exact")
def test_a_last_dense_layer_without_neurons_is_netxs_integrator_read_out(tmp_path):
    """netx makes it a non-leaky integrator (iDecay 0, vDecay 4096, a threshold v cannot
    reach): its v is 64 times the sum of every input so far. Ours reads it as a read-out whose
    output equals that sum, computed here from the spikes of the layer before it, and Lava
    equals the reference in every u and v."""
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    path = edit(save_netx(convnet(), tmp_path / "net.net"), without_last_neurons)
    graph = read_netx_graph(path)
    last, before = graph.populations[-1], graph.populations[-2]
    assert last.readout and (last.du, last.dv) == (4095, 0)
    images = np.random.default_rng(2).random((3, 2, 9, 8))
    reference = simulate(graph, images, record=True)
    spikes = reference.spikes[before.name]
    flat = spikes.reshape(len(images), -1, spikes.shape[-1])  # (C, H, W) order, as the Dense's
    drive = np.einsum("oi,nis->nos", graph.nodes[-2].weight_int.astype(np.int64), flat)
    integrated = 64 * np.cumsum(drive, axis=-1)  # netx's u (= v), a step after the spikes
    assert np.abs(integrated).max() > 0
    np.testing.assert_array_equal(reference.spikes[last.name][..., 1:], integrated[..., :-1])
    assert_matches_reference(graph, images, run_on_lava(graph, images, probe=[last.name]))


def test_a_file_that_is_not_netx_is_refused(tmp_path, capsys):
    (tmp_path / "junk.net").write_text("not hdf5")
    assert main(["inspect", str(tmp_path / "junk.net")]) == 2
    assert "junk.net: not a readable netx file" in capsys.readouterr().err


@pytest.mark.conformance("lava-dl netx", "LIF", "own spikes")
def test_lava_dls_tiny_net_spikes_as_its_ground_truth():
    """tiny.net: LIF input neurons driven by their bias, two biased convolutions. Every spike of
    every layer, and conv 1's current, equal the arrays lava-dl ships, at every step they
    cover: the input neurons at the same index, conv 1 one step later, conv 2 two steps later
    (the ground truth's index 0 of conv 1 and conv 2 holds no input yet: compared from 1)."""
    graph = read_netx_graph(LAVA_DL / "tiny.net")
    result = simulate(graph, tiny_sample(), record=True, record_states=True)
    truth = {
        name: np.load(LAVA_DL / "tinynet" / f"{name}.npy")[0]
        for name in ("input", "layer1", "output", "current")
    }
    ours = {p.name: result.spikes[p.name][0] for p in graph.populations}
    np.testing.assert_array_equal(ours["layer0_neuron"][..., :16], truth["input"])
    np.testing.assert_array_equal(ours["layer1_neuron"][..., 2:17], truth["layer1"][..., 1:])
    np.testing.assert_array_equal(ours["layer2_neuron"][..., 3:18], truth["output"][..., 1:])
    current = result.currents["layer1_neuron"][0][..., 1:17]
    np.testing.assert_array_equal(current, truth["current"] * 64)
    assert truth["output"].sum() > 50


def test_input_neurons_are_an_identity_synapse_with_netxs_neuron():
    graph = read_netx_graph(LAVA_DL / "tiny.net")
    identity, neurons = graph.nodes[1:3]
    assert identity.weight_int.reshape(3, 3).tolist() == np.eye(3, dtype=int).tolist()
    assert (neurons.du, neurons.dv, neurons.vth) == (4095, 1024, 25)
    assert graph.input.levels == 255 and graph.input.shape == (3, 16, 16)


PILOTNET_LAYERS = ["input"] + [f"conv-{i}" for i in range(5)] + [f"fc-{i}" for i in range(3)]


def graph_order(array: np.ndarray) -> np.ndarray:
    """Lava's (W, H, C, T) -> our (C, H, W, T); (N, T) stays."""
    return array.transpose(2, 1, 0, 3) if array.ndim == 4 else array


@pytest.mark.conformance("lava-dl netx", "convolution", "own spikes")
def test_lava_dls_pilotnet_gives_every_spike_and_state_of_its_ground_truth(tmp_path):
    """pilotnet_lif: input neurons, five biased convolutions (one with stride (2, 1) and padding
    (1, 0)), flatten and biased dense layers. lava-dl ran it with layer j reset at index j and
    j + 17: in each layer's window, indices j .. j + 16, every spike and, where shipped, every u
    and v equal ours one step later (lava-dl records v = 128 where a neuron spiked; it is 0)."""
    path = unpacked("pilotnet_lif.net", tmp_path)
    graph = read_netx_graph(path, steps=17)
    truth = np.load(LAVA_DL / "pilotnet_lif_truth.npz")
    image = truth["image"].transpose(2, 1, 0)[None] / 255.0
    result = simulate(graph, image, record=True, record_states=True)
    checked = 0
    for j, (population, name) in enumerate(zip(graph.populations, PILOTNET_LAYERS, strict=False)):
        window = slice(j, min(j + 17, 24))
        ours = slice(j + 1, min(j + 17, 24) + 1)
        spikes = graph_order(truth[name])[..., window]
        np.testing.assert_array_equal(result.spikes[population.name][0][..., ours], spikes)
        if f"{name}-u" in truth:
            u, v = (graph_order(truth[f"{name}-{k}"])[..., window] for k in "uv")
            np.testing.assert_array_equal(result.currents[population.name][0][..., ours], u)
            v = np.where(spikes.astype(bool), 0, v)
            np.testing.assert_array_equal(result.voltages[population.name][0][..., ours], v)
            checked += 1
    assert checked == 6 and graph.node("layer4").stride == (2, 1)


@pytest.mark.conformance("lava-dl netx", "read-out (membrane out)", "Lava bit-exact")
def test_a_last_layer_that_never_spikes_is_a_readout(tmp_path):
    """SLAYER's cuba.Affine head: vThMant 2^18 - 1, a threshold v cannot reach. The last layer
    reads as a read-out (its membrane the output, in SLAYER's units of 64), and Lava sends the
    same integer membrane as the reference simulator; before the last layer it is refused."""
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    def affine(layers):  # the head after the first hidden layer, which spikes
        del layers["3"]
        layers["2"]["neuron"]["vThMant"].write_direct(np.array(262143))

    graph = read_netx_graph(edit(save_netx(mlp(), tmp_path / "net.net"), affine))
    last = graph.populations[-1]
    assert last.readout and last.scale == 64.0
    images = np.random.default_rng(2).random((3, 1, 4, 5))
    reference = simulate(graph, images)
    assert reference.output_spikes.dtype == np.int64 and np.abs(reference.output_spikes).max() > 0
    lava = run_on_lava(graph, images)
    np.testing.assert_array_equal(lava.output_spikes, reference.output_window_spikes)
