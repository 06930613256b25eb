"""Loihi 2's design rules: for each, a network that just fits and one that just breaks it; and
`deploy --target loihi` refusing what breaks one before it looks for lava-loihi."""

import numpy as np
import pytest
from graphs import fixed_conv, fixed_dense, fixed_lif

from targets.loihi2 import chip
from targets.loihi2.chip_rules import CHIP_RULES, require_fit, violations
from targets.loihi2.partition import partition
from targets.loihi2.plan import PlanError, plan
from toolchain.cli import main
from toolchain.io import save_onnx
from toolchain.ir import Graph, Input


def lif(**fields):
    return fixed_lif("lif", du=100, dv=200, vth=10, scale=64.0, **fields)


def broken(nodes) -> list[tuple[str, object, object]]:
    found = violations(partition(plan(Graph(tuple(nodes), T=2))))
    return [(v.rule, v.value, v.limit) for v in found]


def conv_column(height: int, channels: int):
    return (Input("in", (1, height, 2), 255), fixed_conv("c", np.ones((channels, 1, 1, 1))), lif())


def test_neurons_fit_a_core():
    assert broken(conv_column(63, 65)) == []  # a column of 4095 neurons
    assert broken(conv_column(64, 64)) == [("neurons_fit_a_core", 4096, 4095)]


def dense_fan_in(inputs: int):
    return (Input("in", (inputs, 1, 1), 1), fixed_dense("d", np.ones((1, inputs))), lif())


def test_axons_fit_a_core():
    assert broken(dense_fan_in(chip.AXONS_IN_PER_CORE)) == []
    assert broken(dense_fan_in(chip.AXONS_IN_PER_CORE + 1)) == [
        ("axons_fit_a_core", 16001, 16000),
        # one neuron's list of 16001 axons is one word each, over the memory too
        ("synapses_fit_a_core", 16001, 16000),
    ]


def one_channel_conv(in_channels: int):
    kernel = np.ones((1, in_channels, 3, 3))  # one output channel: 2 words per channel and tap
    return (Input("in", (in_channels, 3, 3), 255), fixed_conv("c", kernel), lif())


def test_synapses_fit_a_core():
    assert broken(one_channel_conv(888)) == []  # 888 * 9 * 2 = 15984 words
    assert broken(one_channel_conv(889)) == [("synapses_fit_a_core", 16002, 16000)]


def test_runs_without_microcode():
    dense = (Input("in", (3, 1, 1), 1), fixed_dense("d", np.ones((2, 3))))
    assert broken((*dense, lif())) == []
    found = broken((*dense, lif(reset_sub=640, reset_subtract=10.0)))
    assert found == [("runs_without_microcode", "resets by subtraction", "Lava's CUBA LIF")]
    counts = broken((*dense, lif(max_spikes=3)))
    assert counts[0][1] == "emits spike counts (up to 3 per step)"


def test_per_neuron_parameters_need_the_variant_and_are_counted():
    """Lava's LIF has one du, dv and vth: per-neuron ones need LIFVariant (microcode on the
    chip), and the plan counts their bits per neuron and the distinct profiles."""
    dense = (Input("in", (3, 1, 1), 1), fixed_dense("d", np.ones((4, 3))))
    each = fixed_lif("lif", du=np.array([100, 100, 7, 7]), dv=200, vth=np.array([10, 11, 10, 10]))
    assert broken((*dense, each)) == [
        ("runs_without_microcode", "sets du, vth per neuron", "Lava's CUBA LIF")
    ]
    placed = partition(plan(Graph((*dense, each), T=2))).layers[0]
    assert (placed.profiles, placed.per_neuron_bits) == (3, 12 + 17)
    shared = partition(plan(Graph((*dense, lif()), T=2))).layers[0]
    assert (shared.profiles, shared.per_neuron_bits) == (1, 0)


def test_every_rule_is_tested_here():
    tested = {"neurons_fit_a_core", "axons_fit_a_core", "synapses_fit_a_core"}
    assert {rule.__name__ for rule in CHIP_RULES} == tested | {"runs_without_microcode"}


def test_require_fit_raises_the_first_broken_rule():
    placed = partition(plan(Graph(conv_column(64, 64), T=2)))
    with pytest.raises(PlanError, match=r"node 'lif'.*neurons_fit_a_core: 4096, limit 4095"):
        require_fit(placed)


def test_deploy_to_the_chip_refuses_a_graph_that_breaks_a_rule(tmp_path, capsys):
    """On a machine without lava-loihi: the rule's message, not the missing extension's."""
    graph_file = tmp_path / "tall.onnx"
    save_onnx(Graph(conv_column(64, 64), T=2), graph_file)
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((1, 1, 64, 2), np.float32))
    argv = ["deploy", str(graph_file), "--inputs", str(inputs), "--target", "loihi"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "neurons_fit_a_core: 4096, limit 4095" in err and "lava-loihi" not in err
    assert "Traceback" not in err
