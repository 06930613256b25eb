"""`snn-deploy plan`: the Loihi 2 plan of every graph file the tool reads, with and without
activity, as text, as one JSON object and as files."""

import json

import numpy as np
from cli_runs import refused, report_text, run
from graphs import unpacked

from toolchain.io import save_onnx


def test_plan_of_a_netx_file_without_samples(tmp_path, capsys):
    net = unpacked("netx_tutorial_mnist.net", tmp_path)
    assert run(["plan", net, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["cores"], result["chips"], result["fits"]) == (5, 1, True)
    assert [layer["cores"] for layer in result["layers"]] == [3, 1, 1]
    assert set(result["layers"][0]) >= {
        "name",
        "neurons",
        "cores",
        "axons_in",
        "synapses",
        "synaptic_memory_bits",
    }
    assert result["violations"] == [] and "energy_per_inference_j" not in result
    assert 0 < result["neurobench"]["connection_sparsity"] < 1


def test_plan_with_inputs_counts_activity_and_costs_it(tmp_path, capsys):
    net = unpacked("netx_tutorial_mnist.net", tmp_path)
    spikes = np.random.default_rng(0).random((3, 16, 784, 1, 1)) < 0.1  # (N, T, *input)
    np.save(tmp_path / "x.npy", spikes.astype(np.float32))
    out = tmp_path / "report"
    argv = ["plan", net, "--inputs", tmp_path / "x.npy", "--out", out, "--json", "--quiet"]
    assert run(argv) == 0
    result = json.loads(capsys.readouterr().out)
    first = result["layers"][0]
    assert result["samples"] == 3
    assert first["synaptic_ops_per_inference"] == spikes.sum() / 3 * 128  # 128 neurons each
    assert result["energy_per_inference_j"] > result["dynamic_energy_per_inference_j"] > 0
    assert result["inferences_per_s"] > 0 and "SANA-FE" in result["cost_model"]
    assert json.loads((out / "plan.json").read_text()) == result
    assert (out / "plan.png").read_bytes()[:4] == b"\x89PNG"
    text = report_text(out / "report.html", images=1)
    assert "5 neuro cores on 1 chip(s): fits" in text
    assert f"{result['energy_per_inference_j']:.4g}" in text


def test_plan_of_a_checkpoint_quantises_it_first(digits_run, capsys):
    argv = ["plan", digits_run.checkpoint, "--dataset", "digits", "--limit", "5", "--json"]
    assert run([*argv, "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fits"] and result["samples"] == 5 and result["cores"] >= 2


def test_plan_lists_every_broken_rule(tmp_path, capsys):
    from graphs import fixed_conv, fixed_lif

    from toolchain.ir import Graph, Input

    lif = fixed_lif("tall", du=1, dv=1, vth=10, scale=64.0, reset_sub=64, reset_subtract=1.0)
    nodes = (Input("in", (1, 64, 2), 255), fixed_conv("c", np.ones((64, 1, 1, 1))), lif)
    save_onnx(Graph(nodes, T=2), tmp_path / "tall.onnx")
    assert run(["plan", tmp_path / "tall.onnx"]) == 0
    text = capsys.readouterr().out
    assert "fits Loihi 2: NO" in text
    assert "neurons_fit_a_core: 4096, limit 4095" in text and "runs_without_microcode" in text


def test_plan_refuses_a_float_graph(tmp_path, capsys, digits_run):
    floating = tmp_path / "float.onnx"
    assert run(["export", digits_run.checkpoint, "--out", floating, "--quiet"]) == 0
    refused(capsys, ["plan", floating], "float graph", "quantize it first")
