"""The float-vs-fixed comparison counts each side from its own predictions."""

import dataclasses

import numpy as np
import pytest
import torch

from quantize.pipeline import quantize_checkpoint
from toolchain.ir import Graph
from toolchain.report.compare import Comparison, LayerComparison, Raster, Run, add_runs, compare
from toolchain.train.loop import model_from_checkpoint


@pytest.fixture(scope="module")
def fixed(digits, digits_checkpoint) -> Graph:
    return quantize_checkpoint(digits_checkpoint, digits, calibration=300, progress=False).graph


def silenced_output(graph: Graph) -> Graph:
    """The same graph whose output population cannot reach its threshold: it predicts 0."""
    nodes = list(graph.nodes)
    nodes[-1] = dataclasses.replace(nodes[-1], vth=2**17 - 1)
    return Graph(tuple(nodes), T=graph.T, name=graph.name)


def test_each_accuracy_comes_from_its_own_predictions(digits, digits_checkpoint, fixed):
    model = model_from_checkpoint(digits_checkpoint)
    result, _ = compare(model, silenced_output(fixed), digits.test)
    class_zero = np.mean(digits.test.labels == 0)  # a silent output layer predicts class 0
    assert result.fixed_accuracy == class_zero
    assert result.float_accuracy == digits_checkpoint.metrics[-1]["test_accuracy"]
    with torch.no_grad():
        float_pred = model.predict(model(torch.from_numpy(digits.test.images))).numpy()
    assert [c["index"] for c in result.changed] == np.flatnonzero(float_pred != 0).tolist()
    assert all(c["fixed"] == 0 and c["float"] == float_pred[c["index"]] for c in result.changed)
    out = result.layers[-1]
    assert out.fixed_spikes == 0 and out.float_spikes > 0 and out.agreement == 0.0


def counts_comparison(float_counts, fixed_counts) -> float:
    """The agreement `add_runs` reports for one layer of spike counts, one sample (neurons, T)."""
    f = np.array([float_counts], np.uint8)
    q = np.array([fixed_counts], np.uint8)
    result = Comparison(1, f.shape[-1], layers=[LayerComparison("counts", f.shape[1])])
    prediction = np.zeros(1, np.int64)
    add_runs(result, Raster(0, [], []), Run(prediction, [f]), Run(prediction, [q]), prediction, 0)
    return result.layers[0].agreement


def test_spike_counts_agree_by_the_spikes_they_share():
    """Counts [2, 1, 0, 3] against [1, 1, 2, 3]: 1 + 1 + 0 + 3 = 5 of 6 and 7 spikes match,
    agreement 2 x 5 / 13; a train of counts agrees with itself fully."""
    assert counts_comparison([[2, 1, 0, 3]], [[2, 1, 0, 3]]) == 1.0
    assert counts_comparison([[2, 1, 0, 3]], [[1, 1, 2, 3]]) == 10 / 13
    # one step late: [3, 0, 2, 0] against [0, 3, 0, 2] share nothing
    assert counts_comparison([[3, 0, 2, 0]], [[0, 3, 0, 2]]) == 0.0
