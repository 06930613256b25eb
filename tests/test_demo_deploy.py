"""The deploy command and the main job (make demo), end to end on digits with real Lava."""

import json

import numpy as np
import pytest

from toolchain.cli import main
from toolchain.demo import run_demo


@pytest.fixture(scope="module")
def fixed_graph(tmp_path_factory, digits_run):
    out = tmp_path_factory.mktemp("deploy") / "fixed.onnx"
    assert main(["quantize", str(digits_run.checkpoint), "--out", str(out), "--quiet"]) == 0
    return out


def test_deploy_on_lava_sim_matches_the_reference(fixed_graph, capsys):
    args = ["deploy", str(fixed_graph), "--dataset", "digits", "--limit", "30"]
    assert main([*args, "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matches_reference"] is True
    assert result["samples"] == 30 and result["steps"] == 30 * 5 + 2
    saved = np.load(result["output"])
    assert saved["output_spikes"].shape == (30, 10, 5)
    assert (saved["predictions"] == saved["labels"]).mean() == pytest.approx(result["accuracy"])


def test_asking_for_the_chip_without_lava_loihi_says_what_is_missing(fixed_graph, capsys):
    args = ["deploy", str(fixed_graph), "--dataset", "digits", "--limit", "2", "--target", "loihi"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "lava-loihi" in err and "lava-sim" in err


def test_demo_runs_the_whole_mission(tmp_path):
    lines = []
    result = run_demo(tmp_path, progress=False, say=lines.append)
    assert result.lava_matches_reference
    assert result.samples == 450
    assert result.lava_accuracy == result.reference_accuracy
    assert result.float_accuracy >= 0.95
    assert result.reference_accuracy >= result.float_accuracy - 0.002
    assert "Lava == reference simulator" in result.table()
    for name in (
        "checkpoint.pt",
        "digits_fixed.onnx",
        "lava_output.npz",
        "compare.json",
        "demo.json",
        "layers.png",
        "raster.png",
        "quantize.report.json",
    ):
        assert (tmp_path / name).is_file(), name
    assert len(lines) == 5
