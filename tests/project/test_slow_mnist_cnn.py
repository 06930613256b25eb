"""Opt-in (make test-slow): the paper's MNIST CNN from training to Lava, bit-exact.

A short training run on part of MNIST, PTQ, then real Lava on test samples: the conv path of
the whole pipeline on a trained network (pooling folded into stride-2 convs), spike for spike.
"""

import dataclasses
import json

import numpy as np
import pytest
from conftest import MNIST_DIR, ROOT

from quantize.pipeline import quantize_checkpoint
from targets.loihi2.lava.runner import run_on_lava
from targets.loihi2.simulator import simulate
from targets.loihi2.timing import output_window
from toolchain.data.datasets import Dataset, Split, load_mnist
from toolchain.demo import PRETRAINED_MNIST
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import load_config
from toolchain.train.loop import train

pytestmark = pytest.mark.slow


def test_trained_mnist_cnn_runs_on_lava_spike_for_spike(tmp_path):
    mnist = load_mnist(MNIST_DIR)
    subset = Dataset(
        "mnist",
        Split(mnist.train.images[:10000], mnist.train.labels[:10000]),
        Split(mnist.test.images[:500], mnist.test.labels[:500]),
    )
    config = load_config(ROOT / "examples" / "mnist_cnn.toml").with_epochs(2)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, lr=2e-3))
    result = train(config, tmp_path, dataset=subset, progress=False)
    assert result.test_accuracy > 0.9
    quantized = quantize_checkpoint(
        Checkpoint.load(result.checkpoint), subset, calibration=300, progress=False
    )
    graph = quantized.graph
    assert [type(n).__name__ for n in graph.nodes[1:4:2]] == ["Conv2d", "Conv2d"]
    assert graph.nodes[3].stride == (2, 2), "the pooling must be folded into a stride-2 conv"
    assert quantized.ptq_accuracy >= quantized.float_accuracy - 0.02
    images = subset.test.images[:8]
    lava = run_on_lava(graph, images)
    reference = simulate(graph, images)
    assert np.array_equal(lava.output_spikes, reference.output_spikes[..., output_window(graph)])
    assert lava.output_spikes.sum() > 0


def test_the_shipped_network_at_paper_accuracy_and_on_lava(tmp_path, capsys):
    """The demo at paper scale: the shipped CNN on all 10 000 test images in float and in fixed
    point, and its first 200 on Lava, every output spike equal to the reference simulator's;
    the comparison explains every changed prediction.
    The float accuracy is the trainer's own for the shipped epoch (metrics.json); fixed point
    must stay within 0.05 points of it. (The issue's float bar, 99.45 %, is not reached yet:
    the shipped epoch scores 99.42 %.)"""
    from toolchain.cli import main

    args = ["demo", "--dataset", "mnist", "--out", str(tmp_path), "--workers", "2"]
    assert main([*args, "--data-dir", str(MNIST_DIR), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reference_samples"] == 10000 and result["lava_samples"] == 200
    shipped = json.loads((PRETRAINED_MNIST / "metrics.json").read_text())
    chosen = max(shipped, key=lambda m: m["validation_accuracy"])  # the first of equals
    assert result["float_accuracy"] == chosen["test_accuracy"] >= 0.994, result
    assert result["reference_accuracy"] >= result["float_accuracy"] - 0.0005, result
    assert result["lava_matches_reference"] is True
    # every changed prediction has a first divergence, its state and a dominant source (22 of
    # 22 measured: 20 the weights', 2 the input's), and the budget's per-source figures
    compared = json.loads((tmp_path / "compare.json").read_text())
    changed = sorted(c["index"] for c in compared["changed_predictions"])
    divergence = compared["first_divergence"]["changed_predictions"]
    assert sorted(d["index"] for d in divergence) == changed
    assert all("state" in d for d in divergence)
    budget = compared["error_budget"]
    assert [b["index"] for b in budget["changed_predictions"]] == changed
    assert all(b["dominant"] in budget["sources"] for b in budget["changed_predictions"])
    assert {s["source"] for s in budget["per_source"]} == set(budget["sources"])
    assert budget["all_exact"]["changed_predictions"] == 0
