"""The peer benchmark trains the same networks in snnTorch, Norse and SpikingJelly as in
snn-deploy: the same spiking layers, shape for shape, and a real training step of each library
(times are never asserted)."""

import sys

import numpy as np
import pytest
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from peers import NETWORKS, PEERS, ours_shapes, spiking_shapes  # noqa: E402
from train_throughput import make_net  # noqa: E402

from toolchain.train.config import load_config  # noqa: E402


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("name, path", [(n, p) for n, p, _ in NETWORKS])
def test_each_peer_builds_the_same_network_and_trains_it(peer, name, path):
    config = load_config(ROOT / path)
    ours = make_net(config, "tsslbp", (1, 28, 28))
    build, trainer_class, neuron = PEERS[peer]
    trainer = trainer_class(build(config, (1, 28, 28)), config)
    images = torch.from_numpy(np.random.default_rng(0).random((4, 1, 28, 28), np.float32))
    shapes = ours_shapes(ours, images)
    assert spiking_shapes(trainer, neuron, images) == shapes
    assert len(shapes) == (3 if name == "mnist-mlp" else 4)
    before = [p.detach().clone() for p in trainer.net.parameters()]
    assert np.isfinite(trainer.step(images, torch.tensor([0, 1, 2, 3])))
    changed = [not torch.equal(a, b) for a, b in zip(before, trainer.net.parameters(), strict=True)]
    assert any(changed)
