"""lava-dl's netx tutorial networks (tests/fixtures/lava_dl/netx_tutorial_{mnist,oxford}.net.gz,
as SLAYER wrote them for the tutorials: no input layer, binary spikes into the first dense layer)
on the real lava-dl 0.6.0: fed random spikes through `net.inp`, with each block reset per
sample window (`reset_interval=T, reset_offset=1`, as our exports load), netx computes every
block's spikes, currents and voltages as our reference simulator does, several samples back to
back in one run."""

from __future__ import annotations

import numpy as np
import pytest
from graphs import unpacked
from netx_runner import assert_netx_equals_ours, requires_lava_dl, run_netx

from targets.loihi2.simulator import simulate
from targets.loihi2.timing import steps_for
from toolchain.io.netx_read import read_netx_graph

pytestmark = [pytest.mark.interop, requires_lava_dl]

SAMPLES = 3


@pytest.mark.conformance("lava-dl netx", "spikes without an input layer", "own spikes")
@pytest.mark.parametrize(
    "name, T, rate", [("netx_tutorial_mnist.net", 16, 0.3), ("netx_tutorial_oxford.net", 100, 0.01)]
)
def test_tutorial_networks_give_netxs_spikes_and_states(name, T, rate, tmp_path):
    """Oxford (200 inputs of its spike trains, slow decays) fires on sparse inputs: 1 %."""
    path = unpacked(name, tmp_path)
    graph = read_netx_graph(path, steps=T)
    n_in = graph.input.shape[0]
    spikes = np.random.default_rng(4).random((SAMPLES, T, n_in, 1, 1)) < rate
    steps = steps_for(SAMPLES, T, len(graph.populations))
    payload = np.zeros((n_in, steps), np.int64)
    for w, sample in enumerate(spikes):
        payload[:, w * T : (w + 1) * T] = sample.reshape(T, n_in).T
    network = {"reset_interval": T, "reset_offset": 1}
    theirs = run_netx(path, steps, network, tmp_path, payload=payload)
    ours = simulate(graph, spikes.astype(float), record=True, record_states=True)
    assert assert_netx_equals_ours(graph, ours, theirs, shift=0) > 0
