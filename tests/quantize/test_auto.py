"""quantize --auto takes the error budget's advice: it tries the options that address the
sources departing from float and keeps the best on the calibration set, never worse than the
options it started from."""

import json

import numpy as np

from quantize.auto import Options, auto_quantize, candidates
from quantize.budget import Budget, Tally, variants
from quantize.pipeline import calibration_images
from toolchain.cli import main
from toolchain.ir.lowering import lower
from toolchain.train.to_graph import graph_from_checkpoint


def budget_where(disagreeing: dict[str, float]) -> Budget:
    """A one-layer budget whose sources' alone runs disagree as given (0 for the others)."""
    sources = ["input", "weights", "overflow", "truncation"]
    tallies = {}
    for name in variants(sources):
        alone = name.removesuffix(" alone") if name.endswith(" alone") else None
        matching = round(1000 * (1 - disagreeing.get(alone, 0.0)))
        tallies[name] = Tally(1, float_spikes=[1000], run_spikes=[1000], matching=[matching])
    return Budget(["lif0"], [True], sources, tallies)


def test_the_options_tried_follow_the_ranking():
    """Input first: more levels (twice, four times, the data's own, and four times beyond the
    data's); then overflow: less headroom; then truncation: more; weights: nothing the
    quantiser can try."""
    budget = budget_where({"input": 0.2, "overflow": 0.1, "truncation": 0.01, "weights": 0.05})
    start = Options()
    assert candidates(budget, start, levels=255, data_levels=255)[:2] == [
        Options(0.5, 510),
        Options(0.5, 1020),
    ]
    assert candidates(budget, start, levels=16, data_levels=255) == [
        Options(0.5, 32),
        Options(0.5, 64),
        Options(0.5, 255),
        Options(0.25, None),
        Options(0.125, None),
        Options(0.9, None),
    ]
    assert candidates(budget_where({"weights": 0.3}), start, 16, 255) == []


def test_auto_recovers_from_too_few_input_levels(digits, digits_checkpoint):
    """Started from 2 input levels, the budget names the input first; --auto tries more levels
    and keeps the ones with the fewest calibration predictions that differ from float."""
    graph = lower(graph_from_checkpoint(digits_checkpoint))
    calibration = calibration_images(digits.train, 300, seed=0)
    fixed, report, auto = auto_quantize(graph, calibration, start=Options(levels=2))
    assert auto.ranking[0] == "input"
    start, *tried = auto.trials
    assert start.options == Options(levels=2) and start.input_levels == 2
    assert {t.input_levels for t in tried} >= {4, 8, 16}
    assert auto.chosen.key < start.key and auto.chosen.input_levels > 2
    assert report.input_levels == fixed.input.levels == auto.chosen.input_levels
    assert "weights" in auto.untried


def test_quantize_auto_reports_what_it_tried_and_never_does_worse(tmp_path, digits_run, capsys):
    out = tmp_path / "auto.onnx"
    argv = ["quantize", str(digits_run.checkpoint), "--out", str(out), "--calibration", "300"]
    assert main([*argv, "--auto", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    auto = report["auto"]
    start, *_ = auto["tried"]
    assert start["options"] == {"headroom": 0.5, "levels": None}
    best = min(auto["tried"], key=lambda t: (t["changed_predictions"], t["spike_disagreement"]))
    assert auto["chosen"] == best["options"]
    assert best["changed_predictions"] <= start["changed_predictions"]
    assert report["quantization"]["headroom"] == auto["chosen"]["headroom"]
    assert main([*argv, "--levels", "4", "--headroom", "0.25", "--quiet"]) == 0
    saved = json.loads(out.with_suffix(".report.json").read_text())
    assert saved["quantization"]["input_levels"] == 4
    assert saved["quantization"]["headroom"] == 0.25 and "auto" not in saved
    assert np.isfinite(saved["fixed_accuracy"])
