"""The Graph IR: validation, building from a trained checkpoint, and exact lowering."""

import dataclasses
import functools
import math

import numpy as np
import pytest
import torch
from graphs import float_lif, float_weights

from toolchain.data.datasets import load_digits
from toolchain.ir import CubaLIF, Dense, Flatten, Graph, GraphError, Input, SumPool2d
from toolchain.ir.float_runner import run_float
from toolchain.ir.lowering import lower
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import ConvSpec, DenseSpec, PoolSpec, load_config
from toolchain.train.loop import build_model, model_from_checkpoint, train
from toolchain.train.network import SpikingLayer
from toolchain.train.to_graph import graph_from_checkpoint, graph_from_model

RNG = np.random.default_rng(0)
weights = functools.partial(float_weights, RNG)
lif = float_lif


def test_valid_graph_shapes():
    g = Graph((Input("in", (1, 8, 8), 16), Flatten("f"), Dense("d", weights(20, 64)), lif("l")), 5)
    assert g.shapes() == [(1, 8, 8), (64,), (20,), (20,)]
    assert not g.is_lowered and not g.is_fixed


@pytest.mark.parametrize(
    "build,message",
    [
        (
            lambda: Dense("d1", weights(3, 4).astype(np.int32)),
            "node 'd1': weight must be a 2-D float",
        ),
        (
            lambda: Dense("d2", np.full((2, 2), np.nan, np.float32)),
            "node 'd2': weight has non-finite",
        ),
        (
            lambda: Dense("d3", weights(2, 2), np.full((2, 2), 255)),
            r"node 'd3': weight_int spans \[255, 255\]",
        ),
        (
            lambda: Dense("d4", weights(2, 2), weight_exp=9),
            r"node 'd4': weight_exp=9 is outside \[-8, 7\]",
        ),
        (lambda: CubaLIF("l1", 0.5, 3.0, 1.0), "node 'l1': tau_m=0.5"),
        (
            lambda: CubaLIF("l2", 5, 3, 1.0, du=10),
            "node 'l2': du, dv, vth and scale are set together",
        ),
        (
            lambda: CubaLIF("l3", 5, 3, 1.0, 1364, 819, 2**17, 1.0),
            r"node 'l3': vth=131072 is outside",
        ),
        (
            lambda: CubaLIF("l4", 5, 3, 1.0, 4096, 819, 10, 1.0),
            r"node 'l4': du=4096 is outside \[0, 4095\]",
        ),
        (lambda: Input("i", (1, 8), 16), "node 'i': shape=\\(1, 8\\)"),
        (
            lambda: Graph((Input("i", (1, 2, 2)), Dense("d", weights(3, 5)), lif("l")), 5),
            "node 'd': weight takes 5 inputs",
        ),
        (
            lambda: Graph((Input("i", (1, 2, 2)), Flatten("f"), lif("l")), 5),
            "node 'l': a CubaLIF population must follow",
        ),
        (
            lambda: Graph(
                (Input("i", (1, 2, 2)), Flatten("i"), Dense("d", weights(3, 4)), lif("l")), 5
            ),
            "unique",
        ),
        (
            lambda: Graph(
                (
                    Input("i", (1, 3, 3)),
                    SumPool2d("p"),
                    Flatten("f"),
                    Dense("d", weights(1, 1)),
                    lif("l"),
                ),
                5,
            ),
            "node 'p': input",
        ),
    ],
)
def test_bad_nodes_and_graphs_name_the_node_and_value(build, message):
    with pytest.raises(GraphError, match=message):
        build()


def recurrent_nodes():
    return (
        Input("in", (1, 2, 2)),
        Dense("ff", weights(3, 4)),
        Dense("rec", weights(3, 3)),
        lif("pop"),
    )


def test_a_population_reading_its_own_previous_spikes_is_a_valid_graph():
    edges = (("in", "ff"), ("pop", "rec"), ("ff", "pop"), ("rec", "pop"))
    graph = Graph(recurrent_nodes(), 5, edges=edges)
    assert graph.shapes() == [(1, 2, 2), (3,), (3,), (3,)]
    assert graph.sources("pop") == ["ff", "rec"] and graph.is_recurrent("pop", "rec")
    assert not graph.is_chain and Graph(graph.nodes[:2] + graph.nodes[3:], 5).is_chain
    with pytest.raises(GraphError, match="'recurrent' has recurrent or branching edges"):
        dataclasses.replace(graph, name="recurrent").layers()
    assert graph.recurrent_synapse(graph.nodes[3]) is graph.nodes[2]
    assert graph.is_self_recurrent_chain and graph.feed_forward_nodes == graph.nodes[:2] + (
        graph.nodes[3],
    )
    assert graph.layers(recurrent=True) == [(graph.nodes[1], graph.nodes[3])]


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ((("in", "ff"), ("ff", "pop")), r"node 'rec': needs exactly one source, has \[\]"),
        (
            (("in", "ff"), ("pop", "rec"), ("in", "rec"), ("ff", "pop"), ("rec", "pop")),
            r"node 'rec': needs exactly one source, has \['pop', 'in'\]",
        ),
        (
            (("in", "ff"), ("pop", "rec"), ("ff", "pop"), ("rec", "pop"), ("pop", "ff")),
            "node .ff.: needs exactly one source",
        ),
        (
            (("in", "ff"), ("pop", "rec"), ("ff", "pop"), ("rec", "pop"), ("x", "pop")),
            "no node named 'x'",
        ),
        (
            (("in", "ff"), ("pop", "rec"), ("ff", "pop"), ("rec", "pop"), ("pop", "pop")),
            "edge 'pop' -> 'pop' is recurrent .* must lead into a Dense",
        ),
        (
            (("in", "ff"), ("in", "rec"), ("ff", "pop"), ("rec", "pop")),
            "node .rec.: weight takes 3",
        ),
    ],
)
def test_bad_edges_are_refused_naming_the_node(edges, message):
    with pytest.raises(GraphError, match=message):
        Graph(recurrent_nodes(), 5, edges=edges)


def test_a_population_sums_synapses_of_one_shape_only():
    nodes = (Input("in", (1, 2, 2)), Dense("a", weights(3, 4)), Dense("b", weights(2, 4)), lif("p"))
    edges = (("in", "a"), ("in", "b"), ("a", "p"), ("b", "p"))
    with pytest.raises(GraphError, match=r"node 'p': its inputs have different shapes"):
        Graph(nodes, 5, edges=edges)


def test_graph_equality_compares_arrays_and_dtypes():
    w = weights(3, 4)
    a = Graph((Input("i", (1, 2, 2)), Dense("d", w), lif("l")), 5)
    assert a == Graph((Input("i", (1, 2, 2)), Dense("d", w.copy()), lif("l")), 5)
    assert a != Graph((Input("i", (1, 2, 2)), Dense("d", w.astype(np.float64)), lif("l")), 5)
    assert a != Graph((Input("i", (1, 2, 2)), Dense("d", w + 1e-6), lif("l")), 5)


def cnn_graph(kernel: int, padding: int, size: int) -> Graph:
    """conv, pool, conv, pool, pool (merged), dense, dense; weights scaled up so layers fire."""
    config = load_config("examples/mnist_cnn.toml")
    layers = (
        ConvSpec(6, kernel, padding),
        PoolSpec(),
        ConvSpec(8, kernel, padding),
        PoolSpec(),
        PoolSpec(),
        DenseSpec(12),
        DenseSpec(10),
    )
    dataset = {28: "mnist", 8: "digits"}[size]
    config = dataclasses.replace(config, dataset=dataset, layers=layers)
    model = build_model(config, (1, size, size))
    with torch.no_grad():
        for layer in model.layers:
            if isinstance(layer, SpikingLayer):
                layer.weight.mul_(3.0)  # so that every layer fires
    return graph_from_model(model)


@pytest.mark.parametrize("kernel,padding,size", [(5, 0, 28), (3, 1, 8)])
def test_lowering_folds_pool_flatten_and_scale_exactly(kernel, padding, size):
    graph = cnn_graph(kernel, padding, size)
    lowered = lower(graph)
    assert lowered.is_lowered
    assert [type(n).__name__ for n in lowered.nodes] == [
        "Input",
        "Conv2d",
        "CubaLIF",
        "Conv2d",
        "CubaLIF",
        "Dense",
        "CubaLIF",
        "Dense",
        "CubaLIF",
    ]
    assert lowered.nodes[3].stride == (2, 2) and lowered.nodes[3].padding == (2 * padding,) * 2
    assert lowered.nodes[3].weight.shape == (8, 6, 2 * kernel, 2 * kernel)
    assert lowered.nodes[5].weight.shape == (12, math.prod(lowered.shapes()[4]))  # no pool left
    images = RNG.random((40, 1, size, size)).astype(np.float32)
    before = run_float(graph, images, dtype=torch.float64)
    after = run_float(lowered, images, dtype=torch.float64)
    for name, spikes in before.spikes.items():
        assert spikes.mean() > 0.01, f"{name} must fire for the check to mean something"
        np.testing.assert_array_equal(spikes, after.spikes[name], err_msg=name)
    np.testing.assert_array_equal(before.predictions, after.predictions)


def test_graph_from_trained_checkpoint_runs_like_the_network(tmp_path):
    config = load_config("examples/digits_mlp.toml").with_epochs(2)
    result = train(config, tmp_path, progress=False)
    graph = graph_from_checkpoint(result.checkpoint)
    assert [type(n).__name__ for n in graph.nodes] == [
        "Input",
        "Flatten",
        "Dense",
        "CubaLIF",
        "Dense",
        "CubaLIF",
    ]
    assert graph.input.levels == 16 and graph.T == 5 and graph.name == "digits-mlp"
    model = model_from_checkpoint(Checkpoint.load(result.checkpoint))
    images = load_digits().test.images
    with torch.no_grad():
        network = model.predict(model(torch.from_numpy(images)))
    agree = (run_float(graph, images).predictions == network.numpy()).mean()
    assert agree >= 0.995, "float graph and trained network differ beyond rounding"


def test_pooled_network_its_graph_and_the_lowered_graph_spike_alike():
    """The trained module (with the config's 1.1 pooling), its float Graph and the lowered Graph
    give the same spikes in every layer, in float64."""
    config = dataclasses.replace(
        load_config("examples/mnist_cnn.toml"),
        layers=(ConvSpec(4, 5), PoolSpec(), ConvSpec(6, 5), PoolSpec(), DenseSpec(10)),
    )
    model = build_model(config, (1, 28, 28))
    with torch.no_grad():
        for layer in model.layers:
            if isinstance(layer, SpikingLayer):
                layer.weight.mul_(3.0)  # so that every layer fires
    checkpoint = Checkpoint(
        config, (1, 28, 28), 0, model.state_dict(), {}, [], torch.get_rng_state()
    )
    graph = graph_from_checkpoint(checkpoint)
    pools = [n for n in graph.nodes if isinstance(n, SumPool2d)]
    assert [p.weight for p in pools] == [1.1, 1.1]
    images = RNG.random((30, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        _, network_spikes = model.double()(torch.from_numpy(images).double(), return_spikes=True)
    for runner_graph in (graph, lower(graph)):
        spikes = run_float(runner_graph, images, dtype=torch.float64).spikes
        assert len(spikes) == len(network_spikes) == 3
        for (name, ours), theirs in zip(spikes.items(), network_spikes, strict=True):
            assert ours.mean() > 0.01, f"{name} must fire for the check to mean something"
            np.testing.assert_array_equal(
                ours, theirs.numpy().astype(np.uint8), err_msg=f"{name} differs from the module"
            )
