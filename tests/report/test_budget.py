"""The error budget names the source of error that makes fixed point leave float: each source
injected alone into a network whose every other parameter is exact at its integer scale."""

import dataclasses

import numpy as np
import pytest
import torch
from nir_networks import SHARED

from quantize.budget import error_budget
from quantize.pipeline import quantize_checkpoint
from quantize.scales import quantize_graph
from targets.loihi2.formats import (
    bias_integers,
    current_decay,
    threshold_mantissa,
    voltage_decay,
    weight_factor,
)
from toolchain.data.datasets import Split
from toolchain.io.nir_read import read_nir
from toolchain.ir import CubaLIF, Dense, Graph, Input
from toolchain.ir.float_runner import run_float
from toolchain.ir.lowering import lower
from toolchain.report.compare import _float_run, compare
from toolchain.train.loop import model_from_checkpoint

SIZES = (24, 16, 6)  # two hidden populations and the output


def exact_network(
    rng: np.random.Generator,
    *,
    scale: float = 2.0**14,
    levels: int = 4,
    tau_s: float = 2.0,
    tau_m: float = 4.0,
    threshold: float | None = None,
    weight_noise: float = 0.0,
    weights: tuple[int, int] = (-30, 50),
    bias: tuple[float, float] | None = None,
    T: int = 12,
) -> Graph:
    """Dense layers whose float weights are exactly their integers at `scale` (plus
    `weight_noise` integer units), decays 4096 / tau that are whole numbers, a threshold that is
    a whole mantissa: only truncation departs from float, until a parameter injects a source.
    `bias` (typical, largest): the first population's biases, drawn up to the typical |bias|
    but for one neuron's, the largest."""
    if threshold is None:
        threshold = (threshold_mantissa(1.0, scale) * 64 + 2**-10) / scale
    nodes: list = [Input("in", (1, 1, 12), levels)]
    fan_in = 12
    for k, size in enumerate(SIZES):
        unit = levels if k == 0 else 1
        w_int = rng.integers(*weights, size=(size, fan_in)).astype(np.int32)
        exact = w_int + rng.uniform(-weight_noise, weight_noise, w_int.shape)
        factor = weight_factor(scale, tau_s, unit, 0)
        lif = CubaLIF(
            f"lif{k}",
            tau_m,
            tau_s,
            threshold,
            du=current_decay(tau_s),
            dv=voltage_decay(tau_m),
            vth=threshold_mantissa(threshold, scale),
            scale=scale,
        )
        if bias and k == 0:
            b = rng.uniform(-bias[0], bias[0], size)
            b[0] = bias[1]
            mant, exp, _ = bias_integers(b, scale)
            lif = dataclasses.replace(lif, bias=b, bias_mant=mant, bias_exp=exp)
        nodes += [Dense(f"fc{k}", exact / factor, w_int, 0), lif]
        fan_in = size
    return Graph(tuple(nodes), T=T, name="exact")


def budget_of(graph: Graph, images: np.ndarray):
    labels = np.zeros(len(images), np.int64)

    def float_side(x):
        run = run_float(graph, x, dtype=torch.float64)
        return [run.spikes[p.name] for p in graph.populations], run.predictions

    return error_budget(graph, images, labels, float_side)


def on_grid(rng, graph: Graph, n: int = 300) -> np.ndarray:
    levels = graph.input.levels
    return rng.integers(0, levels + 1, size=(n, 1, 1, 12)) / levels


INJECTED = {
    "input": ({"levels": 2}, "off the grid"),
    "weights": ({"weight_noise": 0.45, "scale": 2.0**10}, "on the grid"),
    "decays": (
        {"tau_s": 1.5, "tau_m": 4096 / 100.5, "scale": 2.0**21, "levels": 255},
        "on the grid",
    ),
    "truncation": (
        {"scale": 2.0**10, "tau_s": 4096 / 1365, "tau_m": 4096 / 819, "weights": (-3, 5)},
        "on the grid",
    ),
    "overflow": ({"scale": 2.0**22, "levels": 255, "weights": (100, 254)}, "on the grid"),
    "biases": ({"bias": (0.3, 30.0)}, "on the grid"),
    "threshold": ({"threshold": 1.0 + 0.49 * 64 / 2**12, "scale": 2.0**12}, "on the grid"),
}


@pytest.mark.parametrize("source", INJECTED)
def test_the_budget_names_the_one_injected_source_first(source):
    """2 input levels and inputs between them; weights half a unit off their integers; 12-bit
    decays half a unit off; exact decays (4096 / tau odd) on states of about a thousand units,
    that truncation chips at; a scale
    whose currents wrap; biases that need the 3-bit exponent's coarsest step; a threshold half a
    mantissa off. The source is first, dominant in the first layer, and putting it back removes
    most of the divergence; with every source put back, nothing is left."""
    rng = np.random.default_rng(0)
    options, inputs = INJECTED[source]
    graph = exact_network(rng, **options)
    off_grid = inputs == "off the grid"
    images = rng.uniform(0, 1, (300, 1, 1, 12)) if off_grid else on_grid(rng, graph)
    budget = budget_of(graph, images)
    assert budget.ranking()[0] == source
    assert budget.dominant()["lif0"] == source
    fixed = budget.tallies["fixed"].disagreement()
    assert fixed[0] > 0
    assert budget.accounts_for(source)[0] > 0.9
    assert budget.tallies["all exact"].disagreement() == [0.0] * len(SIZES)
    alone = {s: budget.tallies[f"{s} alone"].disagreement()[0] for s in budget.sources}
    assert all(alone[s] < alone[source] / 4 for s in budget.sources if s != source)


def test_compare_blames_every_changed_prediction_and_states_the_divergence(
    digits, digits_checkpoint
):
    """The digits network quantised on few images: every changed prediction has a dominant
    source and, at its first divergence, the state on both sides: the float voltage is above
    its threshold exactly where the float network spiked, the fixed one where fixed point did."""
    fixed = quantize_checkpoint(digits_checkpoint, digits, calibration=50, progress=False).graph
    model = model_from_checkpoint(digits_checkpoint)
    result, _ = compare(model, fixed, digits.test, budget_samples=200)
    changed = [c["index"] for c in result.changed]
    assert changed and [b.index for b in result.budget.blamed] == changed
    assert all(b.dominant in result.budget.sources for b in result.budget.blamed)
    assert result.budget.samples == 200
    images = digits.test.images
    float_run = _float_run(model, images, fixed)
    for d in result.divergences.worst():
        state = d.state
        fired = float_run.spikes[d.layer][d.sample].reshape(-1, fixed.T)[d.neurons[0], d.step]
        assert (state["margin"] > 0) == bool(fired)
        assert (state["fixed_voltage"] > state["fixed_threshold"]) == (not fired)
    report = result.to_json()
    budget = report["error_budget"]
    assert {"per_source", "dominant", "changed_predictions", "advice"} <= set(budget)
    assert [b["index"] for b in budget["changed_predictions"]] == changed
    assert "state" in report["first_divergence"]["changed_predictions"][0]
    assert "error budget (200 samples)" in result.table()


def test_the_paper_braille_network_departs_from_float_through_its_weights():
    """The NIR paper's Braille network (snnTorch, recurrent, subtractive reset), quantised on
    random inputs: its float-vs-fixed disagreement (spike agreement 0.91 and 0.87, 11 of 200
    predictions changed) is the 8-bit weights': dominant in both layers, alone changing every
    changed prediction, and put back leaving one; with every source put back, none is left."""
    graph = lower(read_nir(SHARED / "braille_noDelay_noBias_subtract.nir", convention="snntorch"))
    x = np.random.default_rng(0).random((200, *graph.input.shape)).astype(np.float32)
    fixed, _ = quantize_graph(graph, x[:50])
    result, _ = compare(graph, fixed, Split(x, np.zeros(len(x), np.int64)))
    budget = result.budget
    assert len(result.changed) == budget.tallies["fixed"].changed > 0
    assert set(budget.dominant().values()) == {"weights"} and budget.ranking()[0] == "weights"
    assert budget.tallies["weights alone"].changed == len(result.changed)
    assert budget.tallies["weights put back"].changed <= len(result.changed) // 4
    assert budget.tallies["all exact"].changed == 0
    assert all(b.dominant == "weights" for b in budget.blamed)
