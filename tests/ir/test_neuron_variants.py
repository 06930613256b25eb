"""Populations that reset by subtraction, have a bias (into v or into the synaptic current),
emit spike counts or hold v at 0 the step after a spike: the node's rules, the float runner
against an independent recurrence, the quantiser's integers, and netx's refusal. (Lava against
the reference simulator: test_reference_vs_lava.py and test_lava_deploy.py; the libraries' own
spikes: test_nir_import.py.)"""

import numpy as np
import pytest
import torch

from quantize.scales import quantize_graph
from toolchain.io.netx_write import NetxExportError, save_netx
from toolchain.ir import CubaLIF, Dense, Graph, GraphError, Input
from toolchain.ir.float_runner import run_float

BIAS = np.array([0.3, -0.2, 0.0, 0.05, 0.25])


def one_layer(reset_subtract: float | None, bias: np.ndarray | None = None, **variant) -> Graph:
    weight = np.random.default_rng(0).uniform(-0.6, 1.0, (5, 6))
    nodes = (
        Input("in", (6, 1, 1)),
        Dense("fc", weight),
        CubaLIF("lif", 4.0, 2.0, 1.0, reset_subtract=reset_subtract, bias=bias, **variant),
    )
    return Graph(nodes, T=15)


def recurrence(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The neuron of toolchain.ir.nodes written out step by step in numpy: (N, 5, T)."""
    weight, lif = graph.nodes[1].weight, graph.nodes[2]
    drive = x.reshape(len(x), -1) @ weight.T
    if lif.synaptic_bias is not None:
        drive = drive + lif.synaptic_bias
    i = u = np.zeros_like(drive)
    held = np.zeros(drive.shape, bool)
    spikes = []
    bias = 0.0 if lif.bias is None else lif.bias
    for _ in range(graph.T):
        i = (1 - 1 / lif.tau_s) * i + drive / lif.tau_s
        u = np.where(held, 0.0, (1 - 1 / lif.tau_m) * u + i + bias)
        s = sum(u > k * lif.threshold for k in range(1, lif.max_spikes + 1))
        u = u - lif.reset_subtract * s if lif.reset_subtract else np.where(s > 0, 0.0, u)
        held = (s > 0) & bool(lif.refractory)
        spikes.append(s)
    return np.stack(spikes, -1).astype(np.uint8)


@pytest.mark.parametrize("bias", [None, BIAS])
@pytest.mark.parametrize("reset_subtract", [None, 1.0, 2.5])
def test_float_runner_follows_the_recurrence(reset_subtract, bias):
    graph = one_layer(reset_subtract, bias)
    x = np.random.default_rng(1).random((20, 6, 1, 1))
    spikes = run_float(graph, x, dtype=torch.float64).spikes["lif"]
    np.testing.assert_array_equal(spikes, recurrence(graph, x))
    assert 0.1 < spikes.mean() < 0.9


VARIANTS = {
    "counts": {"max_spikes": 3},
    "counts, subtracting": {"max_spikes": 4, "reset_subtract": 0.7},
    "synaptic bias": {"synaptic_bias": BIAS},
    "refractory": {"refractory": 1},
    "all": {"synaptic_bias": -BIAS, "refractory": 1, "max_spikes": 2, "bias": BIAS},
}


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_float_runner_follows_the_recurrence_of_each_variant(variant):
    graph = one_layer(**{"reset_subtract": None, **variant})
    x = 2 * np.random.default_rng(1).random((20, 6, 1, 1))
    spikes = run_float(graph, x, dtype=torch.float64).spikes["lif"]
    np.testing.assert_array_equal(spikes, recurrence(graph, x))
    assert spikes.any()
    plain = run_float(one_layer(None), x, dtype=torch.float64).spikes["lif"]
    assert not np.array_equal(spikes, plain), "the variant must matter on these inputs"
    if variant.get("max_spikes"):
        assert spikes.max() > 1


def test_the_reset_and_the_bias_change_the_spikes():
    x = np.random.default_rng(1).random((20, 6, 1, 1))
    runs = [run_float(one_layer(r), x).spikes["lif"] for r in (None, 1.0, 2.5)]
    assert not np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[1], runs[2])
    assert not np.array_equal(runs[0], run_float(one_layer(None, BIAS), x).spikes["lif"])


def test_the_quantiser_fits_the_bias_in_13_bits():
    """bias_mant << bias_exp is bias * scale rounded, with the smallest exponent that fits;
    a large bias needs a larger exponent."""
    x = np.random.default_rng(2).random((30, 6, 1, 1))
    for bias in (BIAS, BIAS * 40):
        fixed, report = quantize_graph(one_layer(None, bias), x)
        lif = fixed.populations[0]
        target = bias * lif.scale
        effective = lif.bias_mant.astype(np.int64) << lif.bias_exp
        assert np.abs(effective - target).max() <= 2 ** max(lif.bias_exp - 1, 0)
        assert lif.bias_exp == 0 or np.abs(np.rint(target / 2 ** (lif.bias_exp - 1))).max() > 4095
    assert lif.bias_exp > 0  # the scale stays where 13 bits << 7 hold the bias
    assert report.layers[0].biases_clipped == 0


def test_the_quantiser_scales_the_subtracted_amount():
    x = np.random.default_rng(2).random((30, 6, 1, 1))
    fixed, _ = quantize_graph(one_layer(1.5), x)
    lif = fixed.populations[0]
    assert lif.reset_sub == round(lif.scale * 1.5) and lif.reset_subtract == 1.5
    assert quantize_graph(one_layer(None), x)[0].populations[0].reset_sub is None


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"reset_subtract": -1.0}, "reset_subtract=-1.0 must be positive"),
        ({"reset_subtract": float("nan")}, "reset_subtract=nan must be positive"),
        ({"reset_sub": 100}, "reset_sub is set exactly when"),
        ({"reset_subtract": 1.0, "du": 1, "dv": 1, "vth": 10, "scale": 1.0}, "reset_sub is set"),
        (
            {"reset_subtract": 1.0, "reset_sub": 0, "du": 1, "dv": 1, "vth": 10, "scale": 1.0},
            r"reset_sub=0 is outside \[1, 8388607\]",
        ),
        ({"bias": np.ones((2, 2))}, "bias must be a 1-D float array"),
        ({"bias": np.array([np.inf])}, "bias has non-finite values"),
        ({"bias": np.ones(2), "bias_mant": np.ones(2, int)}, "bias_mant is set exactly when"),
        (
            {
                "bias": np.ones(2),
                "bias_mant": np.array([1, 5000]),
                "du": 1,
                "dv": 1,
                "vth": 10,
                "scale": 1.0,
            },
            r"bias_mant spans \[1, 5000\]; Loihi allows \[-4096, 4095\]",
        ),  # fmt: skip
        ({"bias_exp": 8}, r"bias_exp=8 is outside \[0, 7\]"),
        ({"max_spikes": 0}, r"max_spikes=0 is outside \[1, 2147483647\]"),
        (
            {"max_spikes": 256, "du": 1, "dv": 1, "vth": 10, "scale": 1.0},
            r"max_spikes=256 is outside \[1, 255\]",
        ),
        ({"refractory": 2}, r"refractory=2 is outside \[0, 1\]"),
        ({"readout": 1}, "readout=1 must be true or false"),
        ({"synaptic_bias": np.ones((2, 2))}, "synaptic_bias must be a 1-D float array"),
        (
            {"synaptic_bias": np.ones(2), "synaptic_bias_int": np.ones(2, int)},
            "synaptic_bias_int is set exactly when",
        ),
        (
            {
                "synaptic_bias": np.ones(2),
                "synaptic_bias_int": np.array([1, 200000]),
                "du": 1,
                "dv": 1,
                "vth": 10,
                "scale": 1.0,
            },
            r"synaptic_bias_int spans \[1, 200000\]; Loihi allows \[-131071, 131071\]",
        ),  # fmt: skip
    ],
)
def test_bad_reset_fields_are_refused_by_name(fields, message):
    with pytest.raises(GraphError, match=f"node 'lif': {message}"):
        CubaLIF("lif", 4.0, 2.0, 1.0, **fields)


def test_a_bias_must_fit_its_population():
    with pytest.raises(GraphError, match=r"node 'lif': bias has shape \(3,\); inputs \(5,\)"):
        Graph((Input("in", (6, 1, 1)), Dense("fc", np.ones((5, 6))),
               CubaLIF("lif", 4.0, 2.0, 1.0, bias=np.ones(3))), T=3)  # fmt: skip


def test_netx_refuses_subtraction_and_biases(tmp_path):
    x = np.random.default_rng(2).random((30, 6, 1, 1))
    fixed, _ = quantize_graph(one_layer(1.5), x)
    with pytest.raises(NetxExportError, match="node 'lif': resets by subtraction"):
        save_netx(fixed, tmp_path / "x.net")
    biased, _ = quantize_graph(one_layer(None, BIAS), x)
    with pytest.raises(NetxExportError, match="node 'lif': has a bias"):
        save_netx(biased, tmp_path / "x.net")
    readout, _ = quantize_graph(one_layer(None, readout=True), x)
    with pytest.raises(NetxExportError, match="node 'lif': is a readout"):
        save_netx(readout, tmp_path / "x.net")
    assert list(tmp_path.iterdir()) == []


def test_a_readout_outputs_its_membrane_and_reads_out_from_it():
    """A readout never spikes nor resets: its output is the membrane of the recurrence, and the
    prediction the neuron whose membrane summed over time is largest. Only the last population
    reads out; it fires in no other way."""
    graph = one_layer(None, readout=True)
    x = np.random.default_rng(1).random((20, 6, 1, 1))
    run = run_float(graph, x, dtype=torch.float64)
    weight, lif = graph.nodes[1].weight, graph.nodes[2]
    drive = x.reshape(len(x), -1) @ weight.T
    i = u = np.zeros_like(drive)
    membrane = []
    for _ in range(graph.T):
        i = (1 - 1 / lif.tau_s) * i + drive / lif.tau_s
        u = (1 - 1 / lif.tau_m) * u + i
        membrane.append(u)
    expected = np.stack(membrane, -1)
    np.testing.assert_allclose(run.spikes["lif"], expected, rtol=1e-12)
    assert expected.max() > lif.threshold, "it would have spiked"
    np.testing.assert_array_equal(run.predictions, expected.sum(-1).argmax(-1))
    with pytest.raises(GraphError, match="a readout never spikes"):
        CubaLIF("lif", 4.0, 2.0, 1.0, readout=True, max_spikes=2)
    nodes = (*one_layer(None, readout=True).nodes, Dense("fc2", np.ones((2, 5))))
    with pytest.raises(GraphError, match="'lif': only the last population can be a readout"):
        Graph((*nodes, CubaLIF("out", 4.0, 2.0, 1.0)), T=5)


@pytest.mark.parametrize(
    ("weight", "counts"),
    [(0.5, 0), (0.75, 1), (1.0, 1), (1.5, 2), (2.0, 3), (2.25, 4), (5.0, 5)],
)
def test_spike_counts_at_exact_multiples_of_the_threshold_are_strict(weight, counts):
    """No memory (tau_m = tau_s = 1): u = weight every step, threshold 0.5, up to 5 spikes. A
    count is #{k >= 1 : u > k 0.5}, strictly, as the simulator's integer rule (v - 1) // vth
    and Lava's variant count: u = 1.0 is one spike, not two; u = 2.0 three, not four."""
    nodes = (
        Input("in", (1, 1, 1), levels=1),
        Dense("fc", np.array([[weight]])),
        CubaLIF("lif", 1.0, 1.0, 0.5, max_spikes=5),
    )
    graph = Graph(nodes, T=3)
    spikes = run_float(graph, np.ones((1, 1, 1, 1)), dtype=torch.float64).spikes["lif"]
    assert spikes.ravel().tolist() == [counts] * 3
    vth = 64  # the same in integers: u = v = weight * 128, threshold 64
    assert max(0, min(5, (int(weight * 128) - 1) // vth)) == counts
