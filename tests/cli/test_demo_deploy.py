"""The deploy command and the main job (make demo), end to end on digits with real Lava."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runs import report_text
from conftest import ROOT

from toolchain.cli import main


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
    text = report_text(Path(result["report"]), images=1)
    assert "Output spikes equal to the reference simulator's: yes, every one" in text
    assert "Quantisation" in text and "Loihi 2 plan" in text
    saved = np.load(result["output"])
    assert saved["output_spikes"].shape == (30, 5, 10)  # (N, T, outputs), as simulate saves
    assert (saved["predictions"] == saved["labels"]).mean() == pytest.approx(result["accuracy"])


def test_two_workers_give_the_spikes_of_one(fixed_graph, tmp_path, capsys):
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.npz"
        args = ["deploy", str(fixed_graph), "--dataset", "digits", "--limit", "61"]
        assert main([*args, "--workers", str(workers), "--out", str(out), "--json", "--quiet"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["matches_reference"] is True and result["workers"] == workers
        outputs[workers] = np.load(out)
    for key in ("output_spikes", "predictions", "labels"):
        np.testing.assert_array_equal(outputs[1][key], outputs[2][key])
    assert outputs[1]["output_spikes"].sum() > 0


def test_asking_for_the_chip_without_lava_loihi_says_what_is_missing(fixed_graph, capsys):
    args = ["deploy", str(fixed_graph), "--dataset", "digits", "--limit", "2", "--target", "loihi"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "lava-loihi" in err and "lava-sim" in err


def test_ctrl_c_in_a_terminal_stops_deploy_quietly(fixed_graph, tmp_path):
    """A terminal's Ctrl-C reaches the whole process group, Lava's children included: the run
    stops with one line and exit status 130, no child traceback, no shared memory left."""
    shm_before = set(Path("/dev/shm").glob("*"))
    argv = [sys.executable, "-m", "toolchain.cli", "deploy", str(fixed_graph), "--dataset"]
    argv += ["digits", "--out", str(tmp_path / "spikes.npz")]
    process = subprocess.Popen(
        argv,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # the progress bar has no newline
        # a shell runs background jobs with SIGINT ignored, which Python then keeps
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = b""
    while b"lava:" not in seen:  # the progress bar: the run has begun
        chunk = os.read(process.stderr.fileno(), 4096)
        assert chunk, seen.decode()
        seen += chunk
    time.sleep(0.5)  # into the run: Lava's processes forked
    os.killpg(process.pid, signal.SIGINT)
    err = (seen + process.communicate(timeout=120)[1]).decode()
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.rstrip().endswith("snn-deploy deploy: interrupted")
    assert not (tmp_path / "spikes.npz").exists()
    assert set(Path("/dev/shm").glob("*")) <= shm_before


def test_demo_runs_the_whole_mission(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    summary = printed[printed.rindex("digits test set") :].replace(str(tmp_path), "runs/demo")
    for page in ("README.md", "docs/getting-started.md"):
        assert _shape(_demo_block(ROOT / page)) == _shape(summary), page
    assert main(["demo", "--out", str(tmp_path), "--json", "--quiet"]) == 0  # again, in place
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1, "stdout carries the JSON object alone"
    result = json.loads(captured.out)
    assert result == json.loads((tmp_path / "demo.json").read_text())
    assert result["lava_matches_reference"] is True
    assert result["lava_samples"] == result["reference_samples"] == 450
    assert result["lava_accuracy"] == result["reference_accuracy"]
    assert result["float_accuracy"] >= 0.95
    assert result["reference_accuracy"] >= result["float_accuracy"] - 0.002
    for step in ("training the digits MLP", "quantising", "reference simulator on all 450"):
        assert step in captured.err
    assert "streaming the first 450 test images through Lava" in captured.err
    assert "Lava == reference simulator" in captured.err
    for name in (
        "checkpoint.pt",
        "digits_fixed.onnx",
        "lava_output.npz",
        "compare.json",
        "demo.json",
        "layers.png",
        "raster.png",
        "budget.png",
        "quantize.report.json",
        "plan.json",
        "plan.png",
    ):
        assert (tmp_path / name).is_file(), name
    text = report_text(tmp_path / "report.html", images=4)
    for heading in ("Quantisation", "Float against fixed point", "Deployment", "Loihi 2 plan"):
        assert heading in text
    assert f"{result['loihi2_cores']} neuro cores" in text


def _demo_block(page: Path) -> str:
    """The demo's summary as a page shows it: its code block that starts with the table."""
    return next(
        block
        for block in re.findall(r"```\n(.*?)```", page.read_text(), re.S)
        if block.startswith("digits test set")
    )


def _shape(text: str) -> list[str]:
    """The lines with every number in them as N: the layout, not the measured values."""
    return [re.sub(r"\d+(\.\d+)?", "N", line).rstrip() for line in text.strip().splitlines()]
