"""The relaxed reference simulator: with no source of error put back it computes the bit-exact
simulator's integers (spikes, u and v, every step), on the same cases the simulator is checked
on, and so does the simulator's torch backend built on it (every window, the predictions, the
counts); with every source put back, the float network's spikes (float64)."""

import dataclasses

import numpy as np
import pytest
import torch
from graphs import Layer, convnet, mlp, random_graph, replace_node
from hypothesis import given, settings
from test_reference_sim import conv_cases, dense_cases

from quantize.scales import quantize_graph
from targets.loihi2.relaxed import SOURCES, simulate_relaxed, sources_of
from targets.loihi2.simulator import simulate
from targets.loihi2.timing import population_window
from toolchain.ir import Dense, Graph
from toolchain.ir.float_runner import run_float
from toolchain.ir.lowering import lower
from toolchain.train.to_graph import graph_from_checkpoint


def assert_equals_the_simulator(graph: Graph, images: np.ndarray) -> None:
    relaxed = simulate_relaxed(graph, images, states=True)
    exact = simulate(graph, images, record=True, record_states=True)
    for i, population in enumerate(graph.populations):
        window = population_window(graph, i)
        name = population.name
        np.testing.assert_array_equal(
            relaxed.spikes[i].astype(np.int64), exact.spikes[name][..., window].astype(np.int64)
        )
        if population.readout:  # its output is v itself
            continue
        np.testing.assert_array_equal(relaxed.currents[i], exact.currents[name][..., window])
        np.testing.assert_array_equal(
            relaxed.voltages[i], exact.voltages_before_reset[name][..., window]
        )
    np.testing.assert_array_equal(relaxed.predictions, exact.predictions)
    assert_the_torch_backend_equals(exact, graph, images)


def assert_the_torch_backend_equals(exact, graph: Graph, images: np.ndarray) -> None:
    """`simulate(backend="torch")` against the numpy simulator's result, window by window."""
    torch_run = simulate(
        graph, images, record=True, record_states=True, batch_size=2, backend="torch"
    )
    for i, population in enumerate(graph.populations):
        window, name = population_window(graph, i), population.name
        for field in ("spikes", "currents", "voltages", "voltages_before_reset"):
            ours, theirs = getattr(torch_run, field)[name], getattr(exact, field)[name]
            assert ours.dtype == theirs.dtype, field
            np.testing.assert_array_equal(ours[..., window], theirs[..., window], err_msg=field)
    np.testing.assert_array_equal(torch_run.output_window_spikes, exact.output_window_spikes)
    np.testing.assert_array_equal(torch_run.predictions, exact.predictions)
    assert torch_run.spike_counts == exact.spike_counts
    if not any(p.bias is not None for p in graph.populations):  # nothing before the window
        assert sum(torch_run.current_wraps.values()) <= sum(exact.current_wraps.values())


@settings(max_examples=40, deadline=None)
@given(dense_cases(variants=True))
def test_nothing_put_back_is_the_simulator_on_dense_chains(case):
    """Refractory steps, spike counts and subtractive resets, weight exponents of both signs."""
    graph, images, _ = case
    assert_equals_the_simulator(graph, images)


@settings(max_examples=15, deadline=None)
@given(dense_cases("wrap"))
def test_nothing_put_back_is_the_simulator_where_currents_wrap(case):
    assert_equals_the_simulator(*case[:2])
    assert simulate(*case[:2], backend="torch").current_wraps["lif0"] > 0


@settings(max_examples=15, deadline=None)
@given(dense_cases("saturate"))
def test_nothing_put_back_is_the_simulator_where_voltages_saturate(case):
    assert_equals_the_simulator(*case[:2])


@settings(max_examples=20, deadline=None)
@given(dense_cases(per_step=True))
def test_nothing_put_back_is_the_simulator_on_inputs_per_step(case):
    assert_equals_the_simulator(*case[:2])


@settings(max_examples=25, deadline=None)
@given(conv_cases())
def test_nothing_put_back_is_the_simulator_on_conv_graphs(case):
    assert_equals_the_simulator(*case)


@pytest.mark.parametrize("graph", [mlp(), mlp(weight_exp=-3), convnet()], ids=str)
def test_nothing_put_back_is_the_simulator_on_the_netx_networks(graph):
    rng = np.random.default_rng(3)
    levels = graph.input.levels
    images = rng.integers(0, levels + 1, size=(30, *graph.input.image_shape)) / levels
    assert_equals_the_simulator(graph, images)


def test_nothing_put_back_is_the_simulator_with_biases_and_delays():
    """Biases charge populations before the sample reaches them (the simulator resets them
    then); delays hold spikes back up to 3 steps."""
    rng = np.random.default_rng(4)
    layers = [
        Layer(10, -2, 100, 300, 300, bias=(4000, 3), reset_sub=500),
        Layer(6, 0, 900, 200, 400, bias=(2000, 2)),
        Layer(4, 1, 4095, 0, 2000),
    ]
    graph = random_graph(rng, (1, 3, 4), 7, layers, T=8)
    fc1 = graph.node("fc1")
    delayed = dataclasses.replace(fc1, delay=rng.integers(0, 4, fc1.weight.shape))
    graph = replace_node(graph, graph.nodes.index(fc1), delayed)
    images = rng.integers(0, 8, size=(40, 1, 3, 4)) / 7
    assert_equals_the_simulator(graph, images)


def assert_everything_put_back_is_float(float_graph: Graph, images: np.ndarray, **options):
    """Quantised on the images themselves; every population's spikes equal the float runner's
    in float64."""
    fixed, _ = quantize_graph(float_graph, images, **options)
    relaxed = simulate_relaxed(fixed, images, set(SOURCES))
    floating = run_float(float_graph, images, dtype=torch.float64)
    spiking = 0
    for i, population in enumerate(float_graph.populations):
        f = floating.spikes[population.name].astype(np.float64)
        if population.readout:
            np.testing.assert_allclose(relaxed.spikes[i] / fixed.populations[i].scale, f)
            continue
        np.testing.assert_array_equal(relaxed.spikes[i], f)
        spiking += int(f.sum())
    np.testing.assert_array_equal(relaxed.predictions, floating.predictions)
    assert spiking > 0


def test_everything_put_back_is_the_float_digits_network(digits, digits_checkpoint):
    graph = lower(graph_from_checkpoint(digits_checkpoint))
    assert_everything_put_back_is_float(graph, digits.test.images[:300])


def test_everything_put_back_is_float_with_each_variant(digits, digits_checkpoint):
    """Biases (on v and on the current), a subtractive reset, spike counts, per-neuron time
    constants and thresholds, a refractory step, delays, a read-out."""
    graph = lower(graph_from_checkpoint(digits_checkpoint))
    rng = np.random.default_rng(5)
    (fc0, lif0), (fc1, lif1) = graph.layers()
    n0, n1 = fc0.weight.shape[0], fc1.weight.shape[0]
    variants = [
        (
            dataclasses.replace(lif0, bias=rng.normal(0, 0.1, n0), reset_subtract=1.0),
            dataclasses.replace(lif1, synaptic_bias=rng.normal(0, 0.1, n1), max_spikes=3),
        ),
        (
            dataclasses.replace(
                lif0, tau_m=rng.uniform(2, 9, n0), threshold=rng.uniform(0.7, 1.3, n0)
            ),
            dataclasses.replace(lif1, tau_s=rng.uniform(1.5, 4, n1), refractory=1),
        ),
        (lif0, dataclasses.replace(lif1, readout=True)),
    ]
    images = digits.test.images[:200]
    for new0, new1 in variants:
        nodes = [new0 if n is lif0 else new1 if n is lif1 else n for n in graph.nodes]
        assert_everything_put_back_is_float(graph.with_nodes(tuple(nodes)), images)
    delayed = dataclasses.replace(fc1, delay=rng.integers(0, 4, fc1.weight.shape))
    nodes = [delayed if n is fc1 else n for n in graph.nodes]
    assert_everything_put_back_is_float(graph.with_nodes(tuple(nodes)), images)


def test_sources_are_named_and_biases_only_where_there_are_some():
    assert "biases" not in sources_of(mlp())
    with pytest.raises(ValueError, match="accepted: input, weights"):
        simulate_relaxed(mlp(), np.zeros((1, 1, 4, 5)), {"rounding"})


def test_a_recurrent_population_put_back_is_float_and_quantised_is_the_simulator(
    digits, digits_checkpoint
):
    graph = lower(graph_from_checkpoint(digits_checkpoint))
    (fc0, lif0), (fc1, lif1) = graph.layers()
    n0 = fc0.weight.shape[0]
    rec = Dense("rec", np.random.default_rng(2).normal(0, 0.05, (n0, n0)))
    nodes = (graph.input, fc0, rec, lif0, fc1, lif1)
    edges = (
        (graph.input.name, fc0.name),
        (fc0.name, lif0.name),
        (lif0.name, "rec"),
        ("rec", lif0.name),
        (lif0.name, fc1.name),
        (fc1.name, lif1.name),
    )
    recurrent = Graph(nodes, graph.T, edges=edges)
    images = digits.test.images[:200]
    assert_everything_put_back_is_float(recurrent, images)
    fixed, _ = quantize_graph(recurrent, images)
    assert_equals_the_simulator(fixed, images)
