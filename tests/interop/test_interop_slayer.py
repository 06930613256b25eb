"""A network trained with SLAYER (lava-dl 0.6.0's `slayer.block.cuba`: input neurons, a conv with
a rectangular kernel, stride and padding on a rectangular input, a flatten and two dense blocks,
a few iterations on random data, `train_slayer.py`) and written by its `export_hdf5`: our
importer reads every field it writes, and our simulation of the import gives netx's spikes,
voltages and currents of every block on Lava one step later (as for tiny.net), one sample per
run and several streamed."""

from __future__ import annotations

from pathlib import Path

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


def test_samples_streamed_in_one_run(slayer_net, images, tmp_path):
    graph = read_netx_graph(slayer_net, steps=T)
    theirs = run_input_neurons(slayer_net, graph, images, tmp_path)
    assert_ours_one_step_later(graph, images, theirs)
