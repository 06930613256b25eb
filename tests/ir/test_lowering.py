"""Lowering folds pooling and flatten into the next synapse, exactly: the folded weights worked
out by hand, and the lowered graph's spikes equal the original's (float64)."""

import numpy as np
import pytest
import torch
from graphs import float_lif

from toolchain.ir import Conv2d, Dense, Flatten, Graph, GraphError, Input, SumPool2d
from toolchain.ir.float_runner import run_float
from toolchain.ir.lowering import lower

RNG = np.random.default_rng(4)


def pooled_graph() -> Graph:
    """conv 3x3 -> lif -> pool 2 (1.1) -> conv 2x2 -> lif -> pool 2 (0.5) -> flatten -> dense."""
    nodes = (
        Input("in", (1, 10, 10)),
        Conv2d("c1", RNG.normal(size=(2, 1, 3, 3))),  # 2 x 8 x 8
        float_lif("l1", 0.3),
        SumPool2d("p1", 2, 1.1),  # 2 x 4 x 4
        Conv2d("c2", RNG.normal(size=(3, 2, 2, 2)), stride=1, padding=1),  # 3 x 5 x 5 -> odd
        float_lif("l2", 0.3),
        Dense("d", RNG.normal(size=(4, 75))),
        float_lif("out", 0.3),
    )
    return Graph(nodes, T=6)


def test_a_pool_before_a_convolution_becomes_a_larger_strided_kernel():
    graph = pooled_graph()
    conv, original = lower(graph).node("c2"), graph.node("c2")
    assert conv.weight.shape == (3, 2, 4, 4)  # each tap spread over the 2 x 2 it pooled
    assert (conv.stride, conv.padding) == ((2, 2), (2, 2))
    # K'[o, c, 2m + a, 2n + b] = 1.1 K[o, c, m, n]: tap (m, n) = (1, 0) covers rows 2, 3, cols 0, 1
    np.testing.assert_allclose(conv.weight[2, 1, 2:4, 0:2], 1.1 * original.weight[2, 1, 1, 0])
    assert not any(isinstance(n, SumPool2d | Flatten) for n in lower(graph).nodes)


def test_a_pool_and_flatten_before_a_dense_repeat_its_columns():
    nodes = (
        Input("in", (1, 4, 4)),
        Conv2d("c", np.ones((1, 1, 1, 1))),
        float_lif("l"),
        SumPool2d("p", 2, 0.5),  # 1 x 2 x 2
        Flatten("f"),
        Dense("d", np.array([[1.0, 2.0, 3.0, 4.0]])),
        float_lif("out"),
    )
    dense = lower(Graph(nodes, T=2)).node("d")
    # input (h, w) feeds pooled cell (h // 2, w // 2), weight 0.5 x that cell's
    expected = 0.5 * np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    np.testing.assert_array_equal(dense.weight.reshape(4, 4), expected)


def test_the_lowered_graph_spikes_as_the_original():
    graph = pooled_graph()
    images = RNG.random((5, 1, 10, 10))
    before = run_float(graph, images, dtype=torch.float64)
    after = run_float(lower(graph), images, dtype=torch.float64)
    for name in ("l1", "l2", "out"):
        np.testing.assert_array_equal(before.spikes[name], after.spikes[name], err_msg=name)
    assert before.spikes["out"].any()


def test_lowering_refuses_fixed_point_weights_and_a_pool_before_a_neuron():
    fixed = Dense("d", np.ones((1, 1)), np.ones((1, 1), np.int32))
    lif = float_lif("l", du=1, dv=1, vth=1, scale=1.0)
    with pytest.raises(GraphError, match="lower the float graph, then quantise"):
        lower(Graph((Input("in", (1, 1, 1)), fixed, lif), T=1))
    nodes = (
        Input("in", (1, 4, 4)),
        Conv2d("c", np.ones((1, 1, 1, 1))),
        float_lif("l1"),
        SumPool2d("p", 2),
        float_lif("l2"),
    )
    with pytest.raises(GraphError):
        lower(Graph(nodes, T=1))
