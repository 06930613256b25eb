"""The float-vs-fixed comparison counts each side from its own predictions."""

import dataclasses

import numpy as np
import pytest
import torch

from quantize.pipeline import quantize_checkpoint
from toolchain.ir import Graph
from toolchain.report.compare import compare
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
