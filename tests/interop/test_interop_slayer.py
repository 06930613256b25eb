"""A network trained with SLAYER (lava-dl 0.6.0's `slayer.block.cuba`: input neurons, a conv with
a rectangular kernel, stride and padding on a rectangular input, a flatten and two dense blocks,
a few iterations on random data, `train_slayer.py`) and written by its `export_hdf5`: our
importer reads every field it writes, and our simulation of the import gives netx's spikes,
voltages and currents of every block on Lava one step later (as for tiny.net), one sample per
run and several streamed."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from netx_runner import (
    assert_ours_one_step_later,
    requires_lava_dl,
    run_input_neurons,
    run_script,
)

from toolchain.io.netx_read import read_netx_graph
from toolchain.ir import Conv2d, CubaLIF, Dense, Input

pytestmark = [pytest.mark.interop, requires_lava_dl]

T = 16


@pytest.fixture(scope="module")
def slayer_net(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("slayer") / "slayer.net"
    output = run_script("train_slayer.py", path)
    assert "iteration 9: loss" in output
    return path


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(11).random((3, 2, 8, 10))


def test_every_block_is_read(slayer_net):
    graph = read_netx_graph(slayer_net, steps=T)
    kinds = [type(node) for node in graph.nodes]
    assert kinds == [Input, Conv2d, CubaLIF, Conv2d, CubaLIF, Dense, CubaLIF, Dense, CubaLIF]
    conv = graph.nodes[3]
    assert graph.input.shape == (2, 8, 10) and conv.weight_int.shape == (4, 2, 3, 5)
    assert (conv.stride, conv.padding) == ((2, 1), (1, 0))


def test_one_sample_per_run(slayer_net, images, tmp_path):
    graph = read_netx_graph(slayer_net, steps=T)
    for w in range(2):
        sample = images[w : w + 1]
        (out := tmp_path / f"sample{w}").mkdir()
        assert_ours_one_step_later(graph, sample, run_input_neurons(slayer_net, graph, sample, out))


@pytest.mark.conformance("lava-dl netx", "convolution", "own spikes")
def test_samples_streamed_in_one_run(slayer_net, images, tmp_path):
    graph = read_netx_graph(slayer_net, steps=T)
    theirs = run_input_neurons(slayer_net, graph, images, tmp_path)
    assert_ours_one_step_later(graph, images, theirs)


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("slayer-variants")
    paths = {}
    for variant in ("affine", "per-neuron", "delay"):
        paths[variant] = folder / f"{variant}.net"
        assert "iteration 9" in run_script("train_slayer.py", paths[variant], "--variant", variant)
    return paths


@pytest.mark.conformance("lava-dl netx", "read-out (membrane out)", "own spikes")
def test_a_cuba_affine_head_is_a_read_out_with_netxs_membrane(variants, images, tmp_path):
    """SLAYER's cuba.Affine head never spikes in netx; ours reads it as a read-out whose u and v
    are netx's (its output, v, in SLAYER's units), every other block as before."""
    graph = read_netx_graph(variants["affine"], steps=T)
    head = len(graph.populations) - 1
    assert graph.populations[head].readout
    theirs = run_input_neurons(variants["affine"], graph, images, tmp_path)
    assert not theirs[f"spikes_{head}"].any() and theirs[f"v_{head}"].any()
    assert_ours_one_step_later(graph, images, theirs, skip=[("spikes", head)])


@pytest.mark.conformance("lava-dl netx", "per-neuron parameters", "own spikes")
def test_decays_per_neuron_give_netxs_spikes_and_states(variants, images, tmp_path):
    """Dense blocks trained with shared_param=False (each neuron its own decays)."""
    graph = read_netx_graph(variants["per-neuron"], steps=T)
    assert [bool(p.per_neuron) for p in graph.populations] == [False, False, True, True]
    theirs = run_input_neurons(variants["per-neuron"], graph, images, tmp_path)
    assert_ours_one_step_later(graph, images, theirs)


@pytest.mark.conformance("lava-dl netx", "layer without neurons", "own spikes")
def test_a_last_layer_without_neurons_gives_netxs_integrated_membrane(slayer_net, images, tmp_path):
    """The last block's neuron group removed, as in lava-dl's mnist.net: netx's non-leaky
    integrator, whose v (= its u, the sum of its inputs) is our read-out's v."""
    path = tmp_path / "no-neurons.net"
    shutil.copy(slayer_net, path)
    with h5py.File(path, "r+") as f:
        del f["layer"][str(len(f["layer"]) - 1)]["neuron"]
    graph = read_netx_graph(path, steps=T)
    last = len(graph.populations) - 1
    assert graph.populations[last].readout
    theirs = run_input_neurons(path, graph, images, tmp_path)
    assert theirs[f"v_{last}"].any()
    assert_ours_one_step_later(graph, images, theirs, skip=[("spikes", last), ("u", last)])


@pytest.mark.conformance("lava-dl netx", "synaptic delays", "own spikes")
def test_axonal_delays_give_netxs_spikes_and_states(variants, images, tmp_path):
    """Dense blocks with delay=True (one delay per output neuron, which netx puts on that
    neuron's synapses, its DelayDense): netx's every spike, u and v, one sample per run (netx
    keeps delayed spikes across the samples of a stream, which ours forgets)."""
    graph = read_netx_graph(variants["delay"], steps=T)
    assert [n.delay is not None for n in graph.nodes if isinstance(n, Dense)] == [True, True]
    for w in range(2):
        sample = images[w : w + 1]
        (out := tmp_path / f"sample{w}").mkdir()
        theirs = run_input_neurons(variants["delay"], graph, sample, out)
        assert_ours_one_step_later(graph, sample, theirs)
