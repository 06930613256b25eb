"""The command line from a trained checkpoint to the float-vs-fixed report, as a user runs it."""

import json

import numpy as np
import onnx
import pytest
from cli_runs import report_text

from toolchain.cli import main
from toolchain.io import load_onnx, save_onnx
from toolchain.ir import CubaLIF, Dense, Graph


def run_json(capsys, *args):
    assert main([*args, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, digits_run):
    out = tmp_path_factory.mktemp("pipeline")
    assert (
        main(["export", str(digits_run.checkpoint), "--out", str(out / "float.onnx"), "--quiet"])
        == 0
    )
    assert (
        main(
            [
                "quantize",
                str(digits_run.checkpoint),
                "--out",
                str(out / "fixed.onnx"),
                "--finetune",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    return out


def test_export_writes_checked_onnx_and_inspect_reads_it(exported, capsys):
    onnx.checker.check_model(onnx.load(exported / "float.onnx"), full_check=True)
    info = run_json(capsys, "inspect", str(exported / "float.onnx"))
    assert info["T"] == 5 and not info["fixed_point"] and not info["lowered"]
    assert [n["type"] for n in info["nodes"]] == [
        "Input",
        "Flatten",
        "Dense",
        "CubaLIF",
        "Dense",
        "CubaLIF",
    ]
    fixed = run_json(capsys, "inspect", str(exported / "fixed.onnx"))
    assert fixed["fixed_point"] and fixed["lowered"]


def test_quantize_report_and_simulate_agree(exported, capsys):
    report = json.loads((exported / "fixed.report.json").read_text())
    assert report["graph"].endswith("fixed.onnx") and len(report["finetune"]) == 1
    assert [layer["population"] for layer in report["quantization"]["layers"]] == ["lif0", "lif1"]
    sim = run_json(capsys, "simulate", str(exported / "fixed.onnx"), "--dataset", "digits")
    assert sim["samples"] == 450
    assert sim["accuracy"] == pytest.approx(report["fixed_accuracy"])


def test_compare_writes_json_and_plots(exported, digits_run, capsys):
    out = exported / "report"
    result = run_json(
        capsys,
        "compare",
        str(digits_run.checkpoint),
        str(exported / "fixed.onnx"),
        "--dataset",
        "digits",
        "--out",
        str(out),
    )
    assert result["samples"] == 450 and len(result["layers"]) == 2
    # measured 0.96 and 0.88: fine-tuning moves the weights, so not every spike agrees
    assert all(0.85 < layer["agreement"] < 1.0 for layer in result["layers"])
    assert result["float_accuracy"] == digits_run.test_accuracy  # the trainer's own evaluation
    sim = run_json(capsys, "simulate", str(exported / "fixed.onnx"), "--dataset", "digits")
    assert result["fixed_accuracy"] == sim["accuracy"]  # the simulate command's count
    saved = json.loads((out / "compare.json").read_text())
    assert saved["changed_predictions"] == result["changed_predictions"]
    for png in ("layers.png", "raster.png", "budget.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report_text(out / "report.html", images=4)  # layers, raster, budget, the plan
    for heading in ("Quantisation", "Float against fixed point, per layer", "Loihi 2 plan"):
        assert heading in text
    assert f"float accuracy {100 * result['float_accuracy']:.2f} %" in text
    divergence = result["first_divergence"]  # every changed prediction has one, in the report
    changed = {c["index"] for c in result["changed_predictions"]}
    assert {d["index"] for d in divergence["changed_predictions"]} == changed
    assert f"First divergence: {divergence['samples_diverging']} samples" in text
    budget = result["error_budget"]  # every changed prediction is blamed on a source
    assert [b["index"] for b in budget["changed_predictions"]] == sorted(changed)
    assert all(b["dominant"] in budget["sources"] for b in budget["changed_predictions"])
    assert budget["samples"] == 450 and f"Error budget over {budget['samples']} samples" in text


def test_bad_files_give_clear_errors(tmp_path, exported, digits_run, capsys):
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    assert main(["inspect", str(text)]) == 2
    assert "notes.onnx" in capsys.readouterr().err
    floating = run_json(capsys, "simulate", str(exported / "float.onnx"), "--dataset", "digits")
    assert floating["kind"] == "float" and floating["accuracy"] == digits_run.test_accuracy
    fixed = load_onnx(exported / "fixed.onnx")
    one_layer = Graph(
        (
            fixed.input,
            Dense("d", np.zeros((10, 64), np.float32), np.zeros((10, 64), np.int32)),
            CubaLIF("out", 5.0, 3.0, 1.0, 1364, 819, 100, 6400.0),
        ),
        T=5,
        name="one-layer",
    )
    save_onnx(one_layer, tmp_path / "one.onnx")
    checkpoint, graph = str(digits_run.checkpoint), str(tmp_path / "one.onnx")
    mismatch = ["compare", checkpoint, graph, "--dataset", "digits", "--limit", "5"]
    assert main(mismatch) == 2
    assert "'one-layer' has 1 populations, the network 2 spiking layers" in capsys.readouterr().err
    assert main(["quantize", str(text), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "notes.onnx" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_a_float_graph_quantises_on_a_dataset(exported, tmp_path, capsys):
    """A float graph (here the trained network's export) quantises like its checkpoint."""
    out = tmp_path / "from-graph.onnx"
    args = ["quantize", str(exported / "float.onnx"), "--out", str(out)]
    assert main(args) == 2
    assert "float.onnx: a float graph is quantised on --dataset NAME" in capsys.readouterr().err
    report = run_json(capsys, *args, "--dataset", "digits")
    assert report["fixed_accuracy"] >= report["float_accuracy"] - 0.01
    assert load_onnx(out).is_fixed
