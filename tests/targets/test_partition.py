"""The Loihi 2 partition against Intel's compiler, whose per-core tables lava-dl's netx tutorials
saved (tests/fixtures/lava_dl/README.md), and against hand-worked cases."""

import numpy as np
import pytest
from graphs import fixed_conv, fixed_dense, fixed_lif, unpacked

from targets.loihi2 import chip
from targets.loihi2.partition import kernel_list_words, list_words, partition, weight_bits
from targets.loihi2.plan import plan
from toolchain.io.netx_read import read_netx_graph
from toolchain.ir import Dense, Graph, Input


def placed(tmp_path, name):
    return partition(plan(read_netx_graph(unpacked(name, tmp_path))))


@pytest.mark.parametrize(
    ("neurons", "bits", "words"),
    [
        # every dense row and SynMem violation the compiler printed: (neurons on the core,
        # weight bits) -> words of one input axon's list
        (10, 8, 4),  # mnist 64 -> 10: 1.60 % of 16000 over 64 axons
        (64, 8, 21),  # mnist 128 -> 64: 16.80 %
        (50, 8, 16),  # mnist 784 -> 128 on 3 cores of 50: 78.40 %
        (256, 8, 81),  # oxford 200 -> 256 on one core: allocation 16200
        (85, 8, 27),  # oxford, on 3 cores: 5400
        (1, 6, 1),  # pilotnet 10 -> 1
        (10, 5, 3),  # pilotnet 50 -> 10: 150
        (50, 4, 13),  # pilotnet snn 100 -> 50: 1300
        (50, 6, 15),  # pilotnet sdnn 100 -> 50: 1500
        (100, 3, 24),  # pilotnet snn 2560 -> 100 on one core: 61440
        (100, 4, 26),  # pilotnet sdnn, one core: 66560
        (17, 4, 5),  # pilotnet sdnn on 6 cores: 12800
    ],
)
def test_synapse_list_words_reproduce_the_compilers_allocations(neurons, bits, words):
    assert list_words(neurons, bits) == words


@pytest.mark.parametrize(
    ("out_channels", "bits", "words"),
    [(24, 5, 3), (36, 4, 4), (64, 4, 5), (64, 5, 6)],  # pilotnet's conv rows: 81, 864, 2880..
)
def test_shared_kernel_words_reproduce_most_conv_rows(out_channels, bits, words):
    assert kernel_list_words(out_channels, bits) == words


def test_weight_bits_are_netx_optimised_bits():
    assert weight_bits(np.array([-98, 130, 2])) == 8  # even: one shared zero bit dropped
    assert weight_bits(np.array([-14, 10, 4])) == 4
    assert weight_bits(np.array([0, 40, 8])) == 3  # 40 = 5 << 3, no sign
    assert weight_bits(np.array([-256, 255])) == chip.WEIGHT_BITS + 1
    assert weight_bits(np.zeros(3, np.int32)) == 1


def test_lava_dls_mnist_tutorial_takes_the_compilers_five_cores(tmp_path):
    layers = placed(tmp_path, "netx_tutorial_mnist.net").layers
    assert [layer.cores for layer in layers] == [3, 1, 1]
    # the compiler's rows for the two one-core layers, exactly
    assert [(lay.axons_in, lay.neurons_per_core, lay.synapse_words) for lay in layers[1:]] == [
        (128, 64, 2688),
        (64, 10, 256),
    ]
    assert layers[0].axons_in == 784  # 4.90 % of 16000


def test_lava_dls_oxford_tutorial_takes_the_compilers_five_cores(tmp_path):
    """3 + 2 as the compiler: 200 -> 256 on 3 cores (86 + 85 + 85; the compiler's row shows 85),
    though 2 cores of 128 would be within every other limit (`chip.DENSE_NEURONS_PER_CORE`);
    256 -> 200 on 2 of 100."""
    layers = placed(tmp_path, "netx_tutorial_oxford.net").layers
    assert [layer.cores for layer in layers] == [3, 2]
    assert [(lay.axons_in, lay.neurons_per_core) for lay in layers] == [(200, 86), (256, 100)]
    assert layers[0].synapse_words == 200 * list_words(86, 8)


def test_pilotnet_takes_the_compilers_74_cores_and_tiles(tmp_path):
    placement = placed(tmp_path, "pilotnet_lif.net")
    layers = placement.layers
    assert placement.cores == 74 and placement.chips == 1
    assert [lay.cores for lay in layers] == [13, 25, 13, 3, 3, 2, 12, 1, 1, 1]
    assert [lay.tile for lay in layers[:6]] == [
        (16, 66, 3),
        (4, 32, 24),
        (4, 15, 36),
        (8, 7, 48),
        (8, 4, 64),
        (16, 2, 64),
    ]
    assert [lay.synapse_words for lay in layers[7:]] == [1300, 150, 10]
    assert [lay.synapse_words for lay in (layers[1], layers[2], layers[4], layers[5])] == [
        81,
        864,
        2160,
        2880,
    ]


lif = fixed_lif("lif", du=100, dv=200, vth=10, scale=64.0)


def test_a_dense_layer_is_split_until_its_cores_hold_their_synapses():
    """As the compiler's partitioner: 1000 inputs to 200 neurons of 7-bit weights (254 = 127 << 1)
    take 1000 * ceil((200 * 19 + 16) / 64) = 60000 words on one core, 5 times the target: 5
    cores of 40 take 13000 each, still over: twice as many, 10 of 20, take 7000."""
    weight = np.full((200, 1000), 254)
    nodes = (Input("in", (1000, 1, 1), 1), fixed_dense("d", weight), lif)
    layer = partition(plan(Graph(nodes, T=4))).layers[0]
    assert layer.weight_bits == 7
    assert (layer.cores, layer.neurons_per_core, layer.synapse_words) == (10, 20, 7000)
    assert layer.synapse_words_total == 10 * 7000


def test_synaptic_delays_take_their_bits_beside_each_weight():
    """3 inputs to 10 neurons of 1-bit weights: ceil((10 * 13 + 16) / 64) = 3 words per axon;
    with delays up to 62 (6 bits) beside each weight, ceil((10 * 19 + 16) / 64) = 4."""
    from toolchain.report.chip_plan import chip_plan_of

    weight = np.ones((10, 3), np.int32)
    delayed = Dense("d", weight.astype(np.float64), weight, 0, np.full((10, 3), 62))
    plans = [
        chip_plan_of(Graph((Input("in", (3, 1, 1), 1), dense, lif), T=4))
        for dense in (fixed_dense("d", weight), delayed)
    ]
    layers = [chip.placed.layers[0] for chip in plans]
    assert [(layer.weight_bits, layer.delay_bits) for layer in layers] == [(1, 0), (1, 6)]
    assert [layer.synapse_words for layer in layers] == [3 * 3, 3 * 4]
    footprint = [chip.neurobench()["footprint_bytes"] for chip in plans]
    assert footprint[1] - footprint[0] == -(-30 * 7 // 8) - -(-30 * 1 // 8)  # 30 synapses
    assert plans[1].to_json()["layers"][0]["delay_bits"] == 6
    assert "lif: synaptic delays, 6 bits beside each weight" in plans[1].table()


def test_a_network_larger_than_a_chip_takes_several():
    # 60 x 64 neurons per column: tiles one column wide, one core for each of 200 columns
    nodes = (Input("in", (1, 64, 200), 255), fixed_conv("c", np.ones((60, 1, 1, 1))), lif)
    placement = partition(plan(Graph(nodes, T=2)))
    assert placement.layers[0].tile == (1, 64, 60)
    assert placement.cores == 200 and placement.chips == 2
