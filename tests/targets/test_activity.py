"""Activity counted by the plan equals counts taken directly from the simulator's recorded
spikes, by brute force: every recorded spike, every synapse it reads, one by one."""

import itertools

import numpy as np
from graphs import fixed_conv, fixed_dense, fixed_lif

from targets.loihi2.activity import measure
from targets.loihi2.cost import estimate
from targets.loihi2.partition import partition
from targets.loihi2.plan import plan
from targets.loihi2.simulator import simulate
from toolchain.ir import Graph, Input

T = 6


def network() -> Graph:
    rng = np.random.default_rng(3)
    kernel = rng.integers(-40, 120, (4, 2, 3, 3))
    kernel[0, 1] = 0  # some zero weights: effective ops count fewer
    dense = rng.integers(-60, 200, (5, 4 * 3 * 4))
    dense[:, :7] = 0
    nodes = (
        Input("in", (2, 5, 7), 20),
        fixed_conv("c", kernel, stride=(2, 2), padding=(1, 1)),  # -> 4 x 3 x 4
        fixed_lif("l1", du=500, dv=300, vth=20000, scale=64.0, max_spikes=3),
        fixed_dense("d", dense),
        fixed_lif("l2", du=500, dv=300, vth=3000, scale=64.0),
    )
    return Graph(nodes, T=T)


def brute_force_conv_ops(events: np.ndarray, kernel: np.ndarray, stride, padding, out_hw):
    """events (C, H, W) -> (synapses read, non-zero ones), output by output, tap by tap."""
    ops = effective = 0
    for oy, ox in itertools.product(range(out_hw[0]), range(out_hw[1])):
        for c, ky, kx in itertools.product(*map(range, kernel.shape[1:])):
            y, x = oy * stride[0] - padding[0] + ky, ox * stride[1] - padding[1] + kx
            if 0 <= y < events.shape[1] and 0 <= x < events.shape[2]:
                ops += events[c, y, x] * kernel.shape[0]
                effective += events[c, y, x] * np.count_nonzero(kernel[:, c, ky, kx])
    return ops, effective


def test_activity_equals_direct_counts_from_the_recorded_spikes():
    graph = network()
    images = np.random.default_rng(4).uniform(0, 1, (3, 2, 5, 7))
    images[0, 0, :2] = 0  # some inputs send nothing
    placed = partition(plan(graph))
    activity = measure(placed, images)
    result = simulate(graph, images, record=True)
    l1, l2 = (result.spikes[name] for name in ("l1", "l2"))
    blocks = placed.plan.blocks
    l1_sent = (l1[..., blocks[0].window] != 0).sum(-1)  # (N, 4, 3, 4) steps with a message
    l2_sent = (l2[..., blocks[1].window] != 0).sum(-1)
    input_sent = (np.rint(images * 20) != 0) * T  # the payload goes every step
    conv, dense = graph.node("c"), graph.node("d")
    ops = [
        brute_force_conv_ops(sample, conv.weight_int, conv.stride, conv.padding, (3, 4))
        for sample in input_sent
    ]
    first, second = activity.layers
    assert first.input_messages == input_sent.sum() / 3
    assert first.synaptic_ops == sum(o for o, _ in ops) / 3
    assert first.effective_synaptic_ops == sum(e for _, e in ops) / 3
    assert first.output_spikes == l1_sent.sum() / 3
    assert first.neuron_updates == 48 * T
    flat = l1_sent.reshape(3, -1)
    assert second.input_messages == first.output_spikes
    assert second.synaptic_ops == flat.sum() * 5 / 3
    assert second.effective_synaptic_ops == (flat @ np.count_nonzero(dense.weight_int, 0)).sum() / 3
    assert second.output_spikes == l2_sent.sum() / 3
    assert second.messages_out == 0  # the last layer's spikes go to the host
    assert first.messages_out == first.output_spikes * placed.layers[1].cores
    assert (
        first.dense_synaptic_ops
        == brute_force_conv_ops(
            np.full((2, 5, 7), T), conv.weight_int, conv.stride, conv.padding, (3, 4)
        )[0]
    )


def test_cost_follows_the_events_and_names_its_model():
    graph = network()
    placed = partition(plan(graph))
    quiet = measure(placed, np.zeros((2, 2, 5, 7)))
    busy = measure(placed, np.ones((2, 2, 5, 7)))
    assert quiet.total("synaptic_ops") == 0 < busy.total("synaptic_ops")
    low, high = estimate(placed, quiet), estimate(placed, busy)
    assert "SANA-FE" in low.model and "Loihi 2" in low.model
    assert 0 < low.dynamic_energy_per_inference_j < high.dynamic_energy_per_inference_j
    assert low.energy_per_inference_j > low.dynamic_energy_per_inference_j  # static power
    assert low.time_per_step_s < high.time_per_step_s
    assert low.inferences_per_s == 1 / (T * low.time_per_step_s)
