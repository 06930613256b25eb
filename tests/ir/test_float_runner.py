"""The float runner: each node against torch's own operators, a neuron's trace worked out by
hand, and per-step inputs read frame by frame."""

import numpy as np
import torch
from graphs import float_lif

from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, Input, SumPool2d
from toolchain.ir.float_runner import apply_node, run_float

RNG = np.random.default_rng(8)


def test_each_synapse_is_torchs_operator_at_every_step():
    x = torch.from_numpy(RNG.random((2, 3, 6, 6, 4)))  # (N, C, H, W, T)
    conv = Conv2d("c", RNG.normal(size=(5, 3, 3, 3)), stride=(2, 1), padding=(1, 0))
    dense = Dense("d", RNG.normal(size=(7, 108)))
    pool = SumPool2d("p", 2, 1.1)
    for t in range(4):
        frame = x[..., t]
        expected = torch.nn.functional.conv2d(
            frame, torch.from_numpy(conv.weight), stride=(2, 1), padding=(1, 0)
        )
        torch.testing.assert_close(apply_node(conv, x)[..., t], expected)
        torch.testing.assert_close(
            apply_node(dense, x)[..., t], frame.flatten(1) @ torch.from_numpy(dense.weight).T
        )
        pooled = torch.nn.functional.avg_pool2d(frame, 2) * 4 * 1.1
        torch.testing.assert_close(apply_node(pool, x)[..., t], pooled)
    assert apply_node(Flatten("f"), x).shape == (2, 108, 4)


def test_one_neuron_by_hand():
    """Weight 1, input 1 every step, tau_s 2: the current is 1/2, 3/4, 7/8, ...; tau_m 2 and
    threshold 1: u = 1/2, 1, 1.375 (> 1: spike, reset), 0.9375, 1.4375 (spike), ..."""
    nodes = (Input("in", (1, 1, 1), 1), Dense("d", np.ones((1, 1))), CubaLIF("n", 2.0, 2.0, 1.0))
    result = run_float(Graph(nodes, T=5), np.ones((1, 1, 1, 1)), dtype=torch.float64)
    current, u, spikes = 0.0, 0.0, []
    for _ in range(5):
        current = current / 2 + 1 / 2
        u = u / 2 + current
        spikes.append(int(u > 1))
        u = 0.0 if u > 1 else u
    assert spikes == [0, 0, 1, 0, 1]
    assert result.spikes["n"].ravel().tolist() == spikes


def test_frames_are_read_one_per_step():
    nodes = (Input("in", (1, 1, 2)), Dense("d", RNG.uniform(0.5, 1.5, (3, 2))), float_lif("n", 0.2))
    graph = Graph(nodes, T=4)
    images = RNG.random((2, 1, 1, 2))
    frames = np.repeat(images[:, None], 4, axis=1)  # the same image at every step
    static = run_float(graph, images, dtype=torch.float64)
    per_step = run_float(graph, frames, dtype=torch.float64)
    np.testing.assert_array_equal(static.spikes["n"], per_step.spikes["n"])
    silent_after_one = frames.copy()
    silent_after_one[:, 1:] = 0
    later = run_float(graph, silent_after_one, dtype=torch.float64).spikes["n"]
    assert 0 < later.sum() < static.spikes["n"].sum()  # the first frame only, then its decay
