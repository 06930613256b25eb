"""The Loihi 2 plan: what each block holds, worked out by hand, and each design rule with a graph
that just passes it and one that just breaks it."""

import functools

import numpy as np
import pytest
from graphs import fixed_conv as conv
from graphs import fixed_dense as dense
from graphs import fixed_lif

from targets.loihi2.plan import PlanError, needs_variant, plan
from toolchain.ir import Dense, Graph, GraphError, Input

lif = functools.partial(fixed_lif, du=100, dv=200, vth=10, scale=64.0)


def test_blocks_hold_shapes_payload_bounds_message_bits_variants_and_windows():
    nodes = (
        Input("in", (2, 3, 3), levels=100),
        conv("c", np.ones((4, 2, 2, 2))),  # 4 x 2 x 2 out
        lif("l1", max_spikes=3, reset_sub=640, reset_subtract=10.0),
        dense("d", np.ones((5, 16))),
        lif("l2"),
    )
    blocks = plan(Graph(nodes, T=6)).blocks
    assert [b.shape for b in blocks] == [(4, 2, 2), (5,)]
    assert [b.in_shape for b in blocks] == [(2, 3, 3), (4, 2, 2)]
    assert [b.lava_shape for b in blocks] == [(2, 2, 4), (5,)]
    # the input sends up to `levels` per element; l1 up to its 3 spikes a step
    assert [b.source_payload for b in blocks] == [100, 3]
    assert [b.message_bits for b in blocks] == [16, 8]  # graded input; counts in 8 bits
    assert [b.variant for b in blocks] == [True, False]
    assert [b.window for b in blocks] == [slice(1, 7), slice(2, 8)]  # one step later each hop
    assert [b.sum_bound for b in blocks] == [8 * 100, 16 * 3]
    assert plan(Graph(nodes, T=6)).steps_per_sample == 8


@pytest.mark.parametrize(
    ("variant", "needed"),
    [
        ({}, False),
        ({"reset_sub": 64}, True),
        ({"max_spikes": 2}, True),
        ({"refractory": 1}, True),
        ({"readout": True}, True),
        ({"synaptic_bias": np.ones(1), "synaptic_bias_int": np.ones(1, np.int32)}, True),
    ],
)
def test_the_variant_decision(variant, needed):
    if "reset_sub" in variant:
        variant["reset_subtract"] = 1.0
    assert needs_variant(lif("p", **variant)) is needed


def conv_graph(last_weight: int) -> Graph:
    """130 channels of 65535 levels into a 1 x 1 kernel summing to 129 x 254 + last_weight."""
    kernel = np.full((1, 130, 1, 1), 254)
    kernel[0, -1] = last_weight
    nodes = (Input("in", (130, 1, 1), 65535), conv("c", kernel), lif("l"))
    return Graph(nodes, T=1)


def test_conv_sums_in_int32_just_fits_and_just_breaks():
    # 65535 x 32768 = 2147450880 < 2^31; 65535 x 32769 = 2147516415 >= 2^31
    plan(conv_graph(2))
    with pytest.raises(PlanError, match=r"node 'c': .*2\^31.*conv_sums_in_int32") as info:
        plan(conv_graph(3))
    assert (info.value.rule, info.value.block) == ("conv_sums_in_int32", "c")
    assert info.value.value == 2147516415 and info.value.limit == 2**31 - 1


def test_a_recurrent_synapse_is_its_blocks():
    nodes = (Input("in", (1, 1, 2)), dense("ff", np.ones((3, 2))), dense("rec", np.eye(3)))
    edges = (("in", "ff"), ("pop", "rec"), ("ff", "pop"), ("rec", "pop"))
    blocks = plan(Graph((*nodes, lif("pop")), 4, edges=edges)).blocks
    assert [(b.synapse.name, b.recurrent.name) for b in blocks] == [("ff", "rec")]


def test_a_float_or_unlowered_graph_has_no_plan():
    nodes = (Input("in", (1, 1, 1)), Dense("d", np.ones((1, 1))), lif("l"))
    with pytest.raises(GraphError, match="node 'd'"):
        plan(Graph(nodes, T=2))
