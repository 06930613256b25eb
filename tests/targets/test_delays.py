"""Synaptic delays (lava-dl's `delay=True`, netx's `delay`, Lava's DelayDense): what input i
sends at step t reaches output o at t + delay[o, i]. The float runner equals a loop over every
synapse; the reference simulator equals Lava's DelayDense (in the project's SampleDelayDense,
which forgets the previous sample's delayed spikes) on every spike, u and v, streamed; a delay
on a population's loop is refused by name."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from graphs import Layer, random_graph
from lava_checks import assert_matches_reference

from quantize.scales import quantize_graph
from targets.loihi2.plan import PlanError, plan
from targets.loihi2.simulator import simulate
from toolchain.io import load_onnx, save_onnx
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, Input, SumPool2d
from toolchain.ir.float_runner import apply_node, run_float
from toolchain.ir.lowering import lower


def test_the_float_runner_delays_each_synapse():
    rng = np.random.default_rng(0)
    weight, delay = rng.normal(size=(4, 5)), rng.integers(0, 7, (4, 5))
    x = rng.random((2, 5, 9))
    got = apply_node(Dense("d", weight, delay=delay), torch.from_numpy(x)).numpy()
    expected = np.zeros((2, 4, 9))
    for o in range(4):
        for i in range(5):
            d = delay[o, i]
            expected[:, o, d:] += weight[o, i] * x[:, i, : 9 - d]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def delayed(graph: Graph, rng: np.random.Generator, most: int) -> Graph:
    """Every Dense of the graph with delays drawn in [0, most]."""
    nodes = [
        replace(node, delay=rng.integers(0, most + 1, node.weight.shape))
        if isinstance(node, Dense)
        else node
        for node in graph.nodes
    ]
    return Graph(tuple(nodes), T=graph.T)


@pytest.mark.parametrize("bias", [None, (3000, 2)])
def test_delays_stream_on_lava_bit_exact(bias):
    """Three dense layers, one with a negative weight exponent (Lava shifts each delay's sum
    apart), streamed: with biases every population is reset per sample, and the delay lines
    are emptied with them; spikes delayed past a sample's window never reach the next."""
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    rng = np.random.default_rng(3)
    layers = [
        Layer(8, -2, du=300, dv=100, vth=20, bias=bias),
        Layer(6, 0, du=100, dv=400, vth=8),
        Layer(4, 1, du=1000, dv=50, vth=5),
    ]
    graph = delayed(random_graph(rng, (5, 1, 1), 255, layers, T=8), rng, most=5)
    images = rng.random((4, 5, 1, 1))
    reference = simulate(graph, images, record=True)
    assert reference.output_window_spikes.any()
    undelayed = Graph(
        tuple(replace(n, delay=None) if isinstance(n, Dense) else n for n in graph.nodes), T=8
    )
    assert not np.array_equal(simulate(undelayed, images).output_spikes, reference.output_spikes)
    result = run_on_lava(graph, images, probe=["lif0", "lif1", "lif2"])
    assert_matches_reference(graph, images, result)


@pytest.mark.conformance("ONNX", "synaptic delays", "round trip")
def test_delays_survive_onnx(tmp_path):
    rng = np.random.default_rng(1)
    graph = delayed(
        random_graph(rng, (5, 1, 1), 255, [Layer(4, 0, du=1, dv=2, vth=3)], T=4), rng, 3
    )
    save_onnx(graph, tmp_path / "d.onnx")
    assert load_onnx(tmp_path / "d.onnx") == graph


def test_a_delay_on_a_populations_loop_is_refused():
    rng = np.random.default_rng(2)
    graph = random_graph(rng, (3, 1, 1), 255, [Layer(4, 0, du=1, dv=2, vth=3)], T=4)
    loop = Dense("rec", np.ones((4, 4)), np.ones((4, 4), np.int32), delay=np.full((4, 4), 2))
    nodes = (*graph.nodes[:2], loop, graph.nodes[2])
    edges = (("in", "fc0"), ("fc0", "lif0"), ("lif0", "rec"), ("rec", "lif0"))
    with pytest.raises(PlanError, match="no_delay_in_a_loop"):
        plan(Graph(nodes, T=4, edges=edges))


@pytest.mark.conformance("NIR", "synaptic delays", "quantises", "Lava bit-exact")
def test_a_nir_delay_becomes_the_next_dense_delays_and_runs_on_lava(tmp_path):
    """NIR's Delay (per output of the layer before, in seconds) is the next Linear's delay per
    input: the float run equals the same network with those spikes shifted by hand; quantised,
    Lava equals the reference. No library's exporter installed here writes Delay nodes: the
    file is written with the nir package."""
    import nir

    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava
    from toolchain.io.nir_read import read_nir

    rng = np.random.default_rng(4)
    steps_of = rng.integers(0, 4, 6)
    dt = 1e-3

    def lif(n: int):
        tau = np.full(n, 5 * dt)
        return nir.LIF(tau, np.full(n, 5.0), np.zeros(n), np.full(n, 0.5), np.zeros(n))

    def write(delays: bool) -> Path:
        nodes = {
            "in": nir.Input(input_type={"input": np.array([4])}),
            "fc1": nir.Linear(rng.normal(0.6, 0.5, (6, 4))),
            "lif1": lif(6),
            "fc2": nir.Linear(rng.normal(0.4, 0.5, (3, 6))),
            "lif2": lif(3),
            "out": nir.Output(output_type={"output": np.array([3])}),
        }
        if delays:
            nodes = {
                **dict(list(nodes.items())[:3]),
                "delay": nir.Delay(steps_of * dt),
                **dict(list(nodes.items())[3:]),
            }
        keys = list(nodes)
        path = tmp_path / f"{delays}.nir"
        nir.write(
            path,
            nir.NIRGraph(
                nodes=nodes, edges=list(zip(keys, keys[1:], strict=False)), type_check=False
            ),
        )
        return path

    state = rng.bit_generator.state
    graph = read_nir(write(True), dt=dt, steps=12)
    rng.bit_generator.state = state
    plain = read_nir(write(False), dt=dt, steps=12)
    np.testing.assert_array_equal(graph.nodes[3].delay, np.broadcast_to(steps_of, (3, 6)))
    images = rng.random((5, 4, 1, 1))
    hidden = run_float(plain, images).spikes["lif1"]  # (N, 6, T), then delayed per neuron
    shifted = np.zeros_like(hidden)
    for i, d in enumerate(steps_of):
        shifted[:, i, d:] = hidden[:, i, : hidden.shape[-1] - d]
    second = Graph((Input("h", (6, 1, 1), 1), *plain.nodes[3:]), T=12)
    expected = run_float(second, shifted.transpose(0, 2, 1)[..., None, None]).spikes["lif2"]
    np.testing.assert_array_equal(run_float(graph, images).spikes["lif2"], expected)
    fixed, _ = quantize_graph(graph, images)
    assert fixed.nodes[3].delay is not None
    reference = simulate(fixed, images)
    assert reference.output_window_spikes.any()
    np.testing.assert_array_equal(
        run_on_lava(fixed, images).output_spikes, reference.output_window_spikes
    )


def test_pooling_folded_into_a_delayed_dense_keeps_each_windows_delay():
    rng = np.random.default_rng(5)
    delay = rng.integers(0, 4, (3, 2 * 2 * 2))
    nodes = (
        Input("in", (1, 4, 4)),
        Conv2d("c", rng.normal(0.5, 0.3, (2, 1, 3, 3)), 1, 1),
        CubaLIF("l1", 4.0, 2.0, 0.4),
        SumPool2d("p", 2),
        Flatten("f"),
        Dense("d", rng.normal(0.3, 0.3, (3, 8)), delay=delay),
        CubaLIF("l2", 4.0, 2.0, 0.4),
    )
    graph = Graph(nodes, T=10)
    lowered = lower(graph)
    images = rng.random((4, 1, 4, 4))
    assert run_float(graph, images).spikes["l2"].any()
    np.testing.assert_array_equal(
        run_float(lowered, images).spikes["l2"], run_float(graph, images).spikes["l2"]
    )


@pytest.mark.parametrize(
    "after, delays, message",
    [
        ("lif", [1e-3, 2e-3], "node 'delay': a Delay before a LIF; accepted: before a Linear"),
        ("linear", [1.5e-3, 0.0], "node 'delay': delays of 0 to 1.5 steps of dt=0.001"),
        ("linear", [70e-3, 0.0], "accepted: whole steps 0 .. 62"),
    ],
)
def test_nir_delays_that_do_not_fit_are_refused_by_name(tmp_path, after, delays, message):
    import nir

    from toolchain.io.nir_read import NirImportError, read_nir

    lif = nir.LIF(np.full(2, 5e-3), np.full(2, 5.0), np.zeros(2), np.ones(2), np.zeros(2))
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2])}),
        "fc": nir.Linear(np.ones((2, 2))),
        "lif": lif,
        "delay": nir.Delay(np.array(delays)),
        "next": lif if after == "lif" else nir.Linear(np.ones((2, 2))),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    keys = list(nodes)
    graph = nir.NIRGraph(
        nodes=nodes, edges=list(zip(keys, keys[1:], strict=False)), type_check=False
    )
    nir.write(tmp_path / "d.nir", graph)
    with pytest.raises(NirImportError, match=re.escape(message)):
        read_nir(tmp_path / "d.nir", dt=1e-3)
