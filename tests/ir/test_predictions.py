"""How outputs name a class: TSSL-BP's filtered sum, the spike count, a read-out's peak; which
rule a graph carries (trained here, imported from a library, chosen with --predict), kept by
every file format and every derived graph."""

import json

import numpy as np
import pytest
from cli_runs import run
from graphs import float_lif, float_weights, mlp, unpacked

from quantize.scales import quantize_graph
from toolchain.io import load_onnx, save_onnx
from toolchain.io.netx_read import read_netx_graph
from toolchain.io.netx_write import save_netx
from toolchain.ir import Dense, Flatten, Graph, GraphError, Input, SumPool2d
from toolchain.ir.lowering import lower
from toolchain.neuron import predict

# class 0 spikes twice at the end, class 1 once at the start: the synaptic filter (tau_s 10)
# keeps 1 - 0.9^5 = 0.41 of the early spike and 0.19 + 0.1 of the late ones
SPIKES = np.array([[[0, 0, 0, 1, 1], [1, 0, 0, 0, 0]]], float)
# a read-out: class 0 peaks at 5, class 1 sums to 6
MEMBRANES = np.array([[[5, 0, 0, 0, 0], [2, 2, 2, 0, 0]]], float)


@pytest.mark.parametrize(
    ("outputs", "rule", "chosen"),
    [
        (SPIKES, "psp", 1),
        (SPIKES, "count", 0),
        (SPIKES, "max", 0),  # a tie: the first class wins
        (MEMBRANES, "count", 1),
        (MEMBRANES, "max", 0),
    ],
)
def test_each_rule(outputs, rule, chosen):
    assert predict(outputs, rule, tau_s=10.0).tolist() == [chosen]


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="accepted: psp, count, max"):
        predict(SPIKES, "vote", 2.0)
    with pytest.raises(GraphError, match="prediction='vote'; accepted: psp, count, max"):
        Graph(mlp().nodes, 4, prediction="vote")


def test_the_rule_survives_onnx_netx_and_lowering(tmp_path):
    from dataclasses import replace

    graph = replace(mlp(), prediction="max")
    save_onnx(graph, tmp_path / "g.onnx")
    assert load_onnx(tmp_path / "g.onnx").prediction == "max"
    assert read_netx_graph(save_netx(graph, tmp_path / "g.net")).prediction == "max"
    floating = Graph(
        (
            Input("in", (1, 4, 4), 255),
            SumPool2d("pool"),
            Flatten("flat"),
            Dense("d", float_weights(np.random.default_rng(0), 3, 4)),
            float_lif("lif"),
        ),
        T=4,
        prediction="max",
    )
    lowered = lower(floating)
    assert lowered.prediction == "max" and lowered.is_lowered
    images = np.random.default_rng(1).random((8, 1, 4, 4))
    assert quantize_graph(lowered, images)[0].prediction == "max"
    assert mlp().prediction == "psp"  # a graph of ours, unless told


def test_lava_dls_networks_predict_by_spike_count(tmp_path):
    assert read_netx_graph(unpacked("netx_tutorial_mnist.net", tmp_path)).prediction == "count"


def test_predict_chooses_and_every_accuracy_names_its_rule(tmp_path, capsys):
    graph = mlp()
    path = tmp_path / "g.onnx"
    save_onnx(graph, path)
    x = np.random.default_rng(0).random((40, 1, 4, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.random.default_rng(1).integers(0, 3, 40))
    argv = ["simulate", path, "--inputs", tmp_path / "x.npy", "--labels", tmp_path / "y.npy"]
    for rule in (None, "count", "max"):
        extra = [] if rule is None else ["--predict", rule]
        assert run([*argv, *extra]) == 0
        assert f"(predicted by {rule or 'psp'})" in capsys.readouterr().out
        saved = tmp_path / f"{rule}.npz"
        assert run([*argv, *extra, "--json", "--save-spikes", saved]) == 0
        assert json.loads(capsys.readouterr().out)["prediction"] == (rule or "psp")
        spikes = np.load(saved)
        outputs = np.moveaxis(spikes["output_spikes"], 1, -1)  # saved (N, T, outputs)
        expected = predict(outputs, rule or "psp", graph.output_filter)
        np.testing.assert_array_equal(spikes["predictions"], expected)
