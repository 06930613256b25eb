"""The peer benchmark trains the same networks in snnTorch as in snn-deploy: the same spiking
layers, shape for shape, and a real snnTorch training step (times are never asserted)."""

import sys

import numpy as np
import pytest
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from peers import NETWORKS, SnnTorchTrainer, neuron_counts, snntorch_network  # noqa: E402
from train_throughput import make_net  # noqa: E402

from toolchain.train.config import load_config  # noqa: E402


@pytest.mark.parametrize("name, path", [(n, p) for n, p, _ in NETWORKS])
def test_snntorch_builds_the_same_network_and_trains_it(name, path):
    config = load_config(ROOT / path)
    ours = make_net(config, "tsslbp", (1, 28, 28))
    theirs = snntorch_network(config, (1, 28, 28))
    images = torch.from_numpy(np.random.default_rng(0).random((4, 1, 28, 28), np.float32))
    ours_shapes, theirs_shapes = neuron_counts(ours, theirs, images)
    assert ours_shapes == theirs_shapes and len(ours_shapes) == (3 if name == "mnist-mlp" else 4)
    trainer = SnnTorchTrainer(theirs, config)
    before = [p.detach().clone() for p in theirs.parameters()]
    loss = trainer.step(images, torch.tensor([0, 1, 2, 3]))
    assert np.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, theirs.parameters(), strict=True))
