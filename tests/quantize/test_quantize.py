"""Loihi formats, post-training quantisation and fine-tuning on the integer forward pass."""

import numpy as np
import pytest
import torch

from quantize.finetune import FixedPointFinetuner, operating_point
from quantize.pipeline import calibration_images, quantize_checkpoint
from quantize.scales import apply_scales, quantize_graph, with_input_levels
from targets.loihi2.formats import (
    current_decay,
    quantize_weights,
    threshold_mantissa,
    voltage_decay,
)
from targets.loihi2.simulator import simulate
from targets.loihi2.timing import output_window, population_window
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph, GraphError, Input
from toolchain.ir.lowering import lower
from toolchain.train.to_graph import graph_from_checkpoint


def test_decays_mind_lavas_offsets():
    assert current_decay(3.0) == 1364  # Lava keeps 4096 - (1364 + 1) = 2731 ~ 4096 * 2/3
    assert voltage_decay(5.0) == 819  # keeps 4096 - 819 = 3277 ~ 4096 * 4/5
    assert current_decay(1.0) == 4095 and voltage_decay(1.0) == 4096  # no memory at all
    assert threshold_mantissa(1.0, 6400.0) == 100


@pytest.mark.parametrize(
    ("tau", "du", "dv"),
    [
        # worked by hand: 4096 / tau to the nearest integer is dv; du is one less (Lava adds 1)
        (6.0, 682, 683),  # 682.67
        (7.0, 584, 585),  # 585.14
        (2.5, 1637, 1638),  # 1638.4
        (1.5, 2730, 2731),  # 2730.67
        (11.0, 371, 372),  # 372.36
        (100.0, 40, 41),  # 40.96
    ],
)
def test_decays_round_to_the_nearest_12_bit_fraction(tau, du, dv):
    assert (current_decay(tau), voltage_decay(tau)) == (du, dv)


def test_each_decay_keeps_the_12_bit_fraction_nearest_one_minus_one_over_tau():
    """Over a sweep of time constants, what Lava keeps per step is the closest 12-bit fraction
    to the float model's 1 - 1/tau (no other du or dv comes closer)."""
    for tau in np.round(np.geomspace(1.01, 500.0, 400), 4):
        wanted = 1.0 - 1.0 / tau
        kept_u = (4096 - (current_decay(tau) + 1)) / 4096
        kept_v = (4096 - voltage_decay(tau)) / 4096
        assert abs(kept_u - wanted) <= 0.5 / 4096 and abs(kept_v - wanted) <= 0.5 / 4096, tau


def test_threshold_mantissa_rounds_to_nearest():
    """vth = round(scale * threshold / 64): 2944.7 -> 2945 and 1311.6 -> 1312 (floor would
    give 2944 and 1311, the digits network's two thresholds)."""
    assert threshold_mantissa(1.0, 2944.7 * 64) == 2945
    assert threshold_mantissa(0.5, 1311.6 * 128) == 1312
    assert threshold_mantissa(1.0, 2944.2 * 64) == 2944


@pytest.mark.parametrize("weight", [0.5, -0.5])
def test_report_gives_the_calibration_current_and_voltage_of_each_population(weight):
    """One neuron, weight +-0.5, input 1 every step, threshold 10 (never fires): by hand, the
    current c_t = 0.5 (1 - (2/3)^(t+1)) peaks at 0.434 and the voltage v_t = 0.8 v + c at 1.191,
    in magnitude: an inhibited neuron's negative membrane counts as much as a positive one."""
    graph = Graph(
        (
            Input("in", (1, 1, 1), levels=1),
            Dense("d", np.array([[weight]], np.float32)),
            CubaLIF("n", tau_m=5.0, tau_s=3.0, threshold=10.0),
        ),
        T=5,
    )
    current, voltage, peak_current, peak_voltage = 0.0, 0.0, 0.0, 0.0
    for _ in range(5):
        current = current * 2 / 3 + 0.5 / 3
        voltage = voltage * 0.8 + current
        peak_current, peak_voltage = max(peak_current, current), max(peak_voltage, voltage)
    assert (round(peak_current, 3), round(peak_voltage, 3)) == (0.434, 1.191)
    _, report = quantize_graph(graph, np.ones((1, 1, 1, 1), np.float32))
    layer = report.layers[0]
    assert layer.calibration_max_current == round(peak_current * layer.scale)
    assert layer.calibration_max_voltage == round(peak_voltage * layer.scale)


def test_weights_round_and_clip_to_loihi_range():
    ints, clipped = quantize_weights(np.array([[0.5, -1.26, 3.0, -3.0]]), 100.0)
    np.testing.assert_array_equal(ints, [[50, -126, 254, -256]])
    assert clipped == 2 and ints.dtype == np.int32


@pytest.fixture(scope="module")
def lowered(digits_checkpoint):
    return lower(graph_from_checkpoint(digits_checkpoint))


def test_ptq_stays_within_24_bits_and_one_point_of_float(digits, digits_checkpoint):
    result = quantize_checkpoint(digits_checkpoint, digits, calibration=500, progress=False)
    graph = result.graph
    assert graph.is_fixed and graph.is_lowered
    for layer, population in zip(result.report.layers, graph.populations, strict=True):
        assert layer.weight_max <= 254 and layer.weight_min >= -256
        assert max(abs(layer.weight_min), abs(layer.weight_max)) >= 200, "weight range unused"
        assert population.vth * 64 < 2**23
        assert layer.calibration_max_current < 2**22 and layer.calibration_max_voltage < 2**22
        assert layer.current_wraps == 0 and layer.voltage_saturations == 0
    assert result.float_accuracy >= 0.95
    assert result.ptq_accuracy >= result.float_accuracy - 0.01, result.to_json()


def test_report_names_overflowing_layers(digits, lowered):
    images = calibration_images(digits.train, 200, seed=0)
    _, report = quantize_graph(lowered, images, headroom=20.0)  # scales far too large
    fixed, _ = apply_scales(lowered, report.scales())
    sim = simulate(fixed, images)
    assert sum(sim.current_wraps.values()) + sum(sim.voltage_saturations.values()) > 0
    report.record_overflows(sim.current_wraps, sim.voltage_saturations)
    assert report.overflowing_layers and set(report.overflowing_layers) <= {"lif0", "lif1"}


def test_finetuning_reports_exactly_the_fixed_point_accuracy(digits, digits_checkpoint, lowered):
    images = calibration_images(digits.train, 500, seed=0)
    _, report = quantize_graph(lowered, images)
    tuner = FixedPointFinetuner(lowered, report.scales(), digits_checkpoint.config)
    batch, labels = digits.train.images[:200], digits.train.labels[:200]
    fixed = tuner.fixed_graph()
    expected = simulate(fixed, batch).predictions
    _, correct = tuner.step(batch, labels)
    assert correct == int((expected == labels).sum())
    changed = tuner.fixed_graph()
    assert any(
        not np.array_equal(a.weight_int, b.weight_int)
        for a, b in zip(fixed.nodes[1::2], changed.nodes[1::2], strict=True)
    ), "a step changes weights"


def test_operating_point_reproduces_the_integer_spikes_and_voltages(digits, lowered):
    """The fine-tuner's voltage before reset crosses the threshold exactly where the simulator
    spiked, and equals the simulator's recorded voltage wherever it did not spike (there is no
    reset to tell them apart), negative voltages and their truncation toward zero included."""
    fixed, _ = quantize_graph(lowered, digits.train.images[:300])
    result = simulate(fixed, digits.test.images[:50], record=True, record_states=True)
    for index, population in enumerate(fixed.populations):
        psp, spikes, u_pre = operating_point(result, fixed, index)
        v_pre = np.rint(u_pre.numpy() * population.scale)
        assert torch.equal(torch.from_numpy(v_pre > population.vth * 64).double(), spikes)
        assert spikes.sum() > 0
        recorded = result.voltages[population.name][..., population_window(fixed, index)]
        quiet = spikes.numpy() == 0
        assert (recorded[quiet] < 0).any(), "negative voltages are where truncation matters"
        np.testing.assert_array_equal(v_pre[quiet], recorded[quiet], err_msg=population.name)


def test_finetuning_recovers_float_accuracy(digits, digits_checkpoint):
    result = quantize_checkpoint(
        digits_checkpoint, digits, calibration=1000, finetune_epochs=5, progress=False
    )
    assert len(result.finetune) == 5
    assert result.fixed_accuracy >= result.float_accuracy - 0.002, result.to_json()["finetune"]
    # counted again from the output spikes with the readout written out here (tau_s = 3)
    graph = result.graph
    spikes = simulate(graph, digits.test.images).output_spikes[..., output_window(graph)]
    weight = 1.0 - (2.0 / 3.0) ** (graph.T - np.arange(graph.T))
    predicted = (spikes * weight).sum(-1).argmax(-1)
    assert result.fixed_accuracy == (predicted == digits.test.labels).mean()


def test_quantize_refuses_an_unlowered_graph(digits, digits_checkpoint):
    graph = graph_from_checkpoint(digits_checkpoint)
    with pytest.raises(GraphError, match="lower"):
        quantize_graph(graph, digits.train.images[:10])


def conv_first_graph(levels: int) -> Graph:
    rng = np.random.default_rng(5)
    nodes = (
        Input("in", (1, 8, 8), levels=levels),
        Conv2d("conv", (rng.normal(size=(4, 1, 3, 3)) * 0.4).astype(np.float32)),
        CubaLIF("lif0", 5.0, 3.0, 1.0),
        Dense("fc", (rng.normal(size=(3, 144)) * 0.3).astype(np.float32)),
        CubaLIF("lif1", 5.0, 3.0, 1.0),
    )
    return Graph(nodes, T=5)


def test_a_conv_first_synapse_gets_fewer_input_levels_to_keep_its_weight_bits():
    images = np.random.default_rng(0).random((50, 1, 8, 8)).astype(np.float32)
    fixed, report = quantize_graph(conv_first_graph(255), images)
    assert (report.data_levels, report.input_levels) == (255, fixed.input.levels)
    assert report.input_levels in (128, 64, 32, 16, 8) and report.input_levels < 255
    first = report.layers[0]
    assert max(-first.weight_min, first.weight_max) >= 64, "7 bits and a sign at least"
    more, _ = quantize_graph(
        with_input_levels(conv_first_graph(255), 2 * report.input_levels), images
    )
    assert more.input.levels == report.input_levels, "the choice does not depend on the start"


def test_a_dense_first_synapse_keeps_the_data_levels(lowered):
    images = np.random.default_rng(0).random((50, 1, 8, 8)).astype(np.float32)
    fixed, report = quantize_graph(lowered, images)
    assert fixed.input.levels == report.input_levels == report.data_levels == 16


def test_a_recurrent_synapse_keeps_its_largest_weight():
    """A self-recurrent population's feedback weights get the exponent that fits the largest in
    the 8-bit range: every weight comes back within half a step, none clipped at 254."""
    rng = np.random.default_rng(5)
    nodes = (
        Input("in", (1, 1, 4), levels=255),
        Dense("ff", rng.uniform(0.5, 1.5, size=(3, 4))),
        Dense("rec", np.array([[0.1, -0.9, 0.3], [0.7, 0.05, -0.2], [-0.4, 0.6, 0.0]])),
        CubaLIF("pop", tau_m=5.0, tau_s=3.0, threshold=1.0),
    )
    edges = (("in", "ff"), ("pop", "rec"), ("ff", "pop"), ("rec", "pop"))
    graph = Graph(nodes, T=5, edges=edges)
    fixed, report = quantize_graph(graph, rng.random((20, 1, 1, 4)))
    rec, pop = fixed.nodes[2], fixed.nodes[3]
    assert report.layers[0].weights_clipped == 0
    step = 2.0**rec.weight_exp * 64 * 3.0 / pop.scale  # one integer step, in float weight
    assert 127 < np.abs(rec.weight_int).max() <= 254
    np.testing.assert_allclose(rec.weight_int * step, rec.weight, atol=step / 2)


def test_per_neuron_parameters_quantise_neuron_by_neuron_with_one_scale():
    """Each neuron's du, dv, vth and reset amount is its own time constants' and threshold's at
    the population's one scale; its incoming weights take its own 1 / tau_s (a scalar graph of
    that neuron alone gives the same row). Fine-tuning refuses them by name."""
    tau_m, tau_s = np.array([2.0, 5.0, 40.0]), np.array([1.0, 3.0, 7.5])
    threshold = np.array([1.0, 0.5, 2.0])
    weight = np.array([[0.5, -0.3], [1.2, 0.8], [-0.9, 2.0]])

    def graph_of(rows, **population) -> Graph:
        nodes = (
            Input("in", (2, 1, 1), 16),
            Dense("fc", weight[rows]),
            CubaLIF("lif", reset_subtract=population["threshold"], **population),
        )
        return Graph(nodes, T=4)

    images = np.random.default_rng(0).random((20, 2, 1, 1))
    each = graph_of(slice(None), tau_m=tau_m, tau_s=tau_s, threshold=threshold)
    fixed, report = quantize_graph(each, images)
    population, scale = fixed.populations[0], report.layers[0].scale
    np.testing.assert_array_equal(population.du, [current_decay(t) for t in tau_s])
    np.testing.assert_array_equal(population.dv, [voltage_decay(t) for t in tau_m])
    np.testing.assert_array_equal(population.vth, [threshold_mantissa(v, scale) for v in threshold])
    assert report.layers[0].vth == population.vth.tolist()
    for k in range(3):
        alone = graph_of([k], tau_m=tau_m[k], tau_s=tau_s[k], threshold=threshold[k])
        alone_fixed, _ = apply_scales(alone, report.scales())
        np.testing.assert_array_equal(
            fixed.nodes[1].weight_int[k], alone_fixed.nodes[1].weight_int[0]
        )
        assert alone_fixed.populations[0].reset_sub == population.reset_sub[k]
    with pytest.raises(GraphError, match="'lif': sets tau_m, tau_s, threshold, reset_subtract per"):
        FixedPointFinetuner(each, report.scales(), None)
