"""Calibration and simulation across worker processes (`toolchain.parallel`): the same numbers
as in one process, for the reference simulator (every recorded array and count), the float
runner, calibration, the comparison report and `snn-deploy simulate --workers`."""

import json

import numpy as np
import pytest
import torch

from quantize.calibration import calibration_ranges
from quantize.scales import quantize_graph
from targets.loihi2.simulator import simulate
from toolchain.cli import main
from toolchain.data.datasets import Split
from toolchain.io import save_onnx
from toolchain.ir.float_runner import run_float
from toolchain.ir.lowering import lower
from toolchain.parallel import over_shards, shard_bounds
from toolchain.report.compare import compare
from toolchain.train.loop import model_from_checkpoint
from toolchain.train.to_graph import graph_from_checkpoint


@pytest.fixture(scope="module")
def graphs(digits_checkpoint, digits):
    floating = lower(graph_from_checkpoint(digits_checkpoint))
    fixed, _ = quantize_graph(floating, digits.train.images[:200])
    return floating, fixed


def test_shards_cover_the_samples_in_order():
    assert shard_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert shard_bounds(2, 8) == [(0, 1), (1, 2)]
    assert over_shards(lambda a, b: list(range(a, b)), 11, 3) == [
        list(range(a, b)) for a, b in shard_bounds(11, 12)
    ]


def test_the_simulator_gives_the_same_integers_in_workers(graphs, digits):
    _, fixed = graphs
    images = digits.test.images[:97]
    one = simulate(fixed, images, record=True, record_states=True, batch_size=40)
    two = simulate(fixed, images, record=True, record_states=True, batch_size=40, workers=2)
    np.testing.assert_array_equal(two.output_spikes, one.output_spikes)
    np.testing.assert_array_equal(two.predictions, one.predictions)
    for field in ("spikes", "currents", "voltages", "voltages_before_reset"):
        for name, values in getattr(one, field).items():
            np.testing.assert_array_equal(getattr(two, field)[name], values)
    assert (two.spike_counts, two.current_wraps) == (one.spike_counts, one.current_wraps)
    assert two.voltage_saturations == one.voltage_saturations and two.window == one.window
    assert sum(one.spike_counts.values()) > 0


def test_float_runs_and_calibration_are_the_same_in_workers(graphs, digits):
    floating, _ = graphs
    images = digits.test.images[:90]
    one = run_float(floating, images, dtype=torch.float64)
    two = run_float(floating, images, dtype=torch.float64, workers=3)
    np.testing.assert_array_equal(two.predictions, one.predictions)
    for name, spikes in one.spikes.items():
        np.testing.assert_array_equal(two.spikes[name], spikes)
    assert calibration_ranges(floating, images, workers=2) == calibration_ranges(floating, images)


def test_the_comparison_is_the_same_in_workers(graphs, digits, digits_checkpoint):
    _, fixed = graphs
    split = Split(digits.test.images[:130], digits.test.labels[:130])
    model = model_from_checkpoint(digits_checkpoint)
    one, raster_one = compare(model, fixed, split, batch_size=30)
    two, raster_two = compare(model, fixed, split, batch_size=30, workers=2)
    assert two.to_json() == one.to_json()
    for ours, theirs in zip(raster_one.fixed_spikes, raster_two.fixed_spikes, strict=True):
        np.testing.assert_array_equal(theirs, ours)


def test_simulate_command_with_workers(graphs, tmp_path, capsys):
    _, fixed = graphs
    save_onnx(fixed, tmp_path / "fixed.onnx")
    results = []
    for workers in ("1", "2"):
        args = ["simulate", str(tmp_path / "fixed.onnx"), "--dataset", "digits", "--limit", "60"]
        assert main([*args, "--workers", workers, "--json", "--quiet"]) == 0
        result = json.loads(capsys.readouterr().out)
        results.append({k: v for k, v in result.items() if k != "seconds"})
    assert results[0] == results[1] and results[0]["samples"] == 60
