"""The reference simulator equals Lava 0.10.0's fixed-point simulation, step for step.

Each graph is built by hand in Lava (RingBuffer -> Dense -> LIF -> ... -> sink RingBuffer),
run for S = T + L steps under `Loihi2SimCfg(select_tag="fixed_pt")` on one sample, and compared
with `simulate`: the output spikes of every step, and u and v of one population (Monitor).
`targets.loihi2.lava` is imported before anything from `lava` (it makes Lava importable on 3.11).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from graphs import Layer, random_graph

import targets.loihi2.lava  # noqa: F401  (installs the compat finder before any lava import)
from targets.loihi2.simulator import SimulationResult, simulate
from targets.loihi2.stream import input_payload
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph, Input


def run_lava(graph: Graph, image: np.ndarray, probe: str) -> dict[str, np.ndarray]:
    """Lava's output spikes (*shape, S), and u and v (*shape, S) of population `probe`, in
    Lava's layout: (W, H, C) for convolutional populations."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF, LIFReset
    from lava.proc.monitor.process import Monitor

    from targets.loihi2.lava.processes.variant import NEVER, LIFVariant

    steps = graph.T + len(graph.populations)
    payload = input_payload(graph, image[None])[0]
    payload = payload.transpose(2, 1, 0) if isinstance(graph.nodes[1], Conv2d) else payload.ravel()
    data = np.zeros((*payload.shape, steps), dtype=np.int32)
    data[..., : graph.T] = payload[..., None]  # sent at steps 1..T, then 0
    port = Source(data=data).s_out
    lifs = {}
    biased = any(p.bias_mant is not None for p in graph.populations)
    for index, (synapse, population) in enumerate(graph.layers(recurrent=True), start=1):
        connection = lava_synapse(synapse, port.shape, message_bits=16 if index == 1 else 0)
        params = dict(
            shape=connection.a_out.shape,
            du=population.du,
            dv=population.dv,
            vth=population.vth,
            bias_mant=0 if population.bias_mant is None else population.bias_mant,
            bias_exp=population.bias_exp,
        )
        if isinstance(synapse, Conv2d) and population.bias_mant is not None:
            w, h, c = connection.a_out.shape  # one bias per channel, over Lava's (W, H, C)
            params["bias_mant"] = np.broadcast_to(population.bias_mant, (w, h, c)).copy()
        # Biases charge v before the sample arrives: with any bias, population k is reset when
        # the sample reaches it (before its update at step k + 1), as the reference does.
        k = index
        resets = {"reset_interval": NEVER}
        if biased:
            resets = {"reset_interval": graph.T, "reset_offset": (k + 1) % graph.T}
        if population.reset_sub is not None:
            lif = LIFVariant(**params, reset_sub=population.reset_sub, **resets)
        elif biased:
            lif = LIFReset(**params, **resets)
        else:
            lif = LIF(**params)
        port.connect(connection.s_in)
        connection.a_out.connect(lif.a_in)
        recurrent = graph.recurrent_synapse(population)
        if recurrent is not None:  # its own spikes, a step later, summed into a_in
            loop = lava_synapse(recurrent, lif.s_out.shape, message_bits=0)
            lif.s_out.connect(loop.s_in)
            loop.a_out.connect(lif.a_in)
        port, lifs[population.name] = lif.s_out, lif
    sink = Sink(shape=port.shape, buffer=steps)
    port.connect(sink.a_in)
    probed, u_monitor, v_monitor = lifs[probe], Monitor(), Monitor()
    u_monitor.probe(probed.u, steps)
    v_monitor.probe(probed.v, steps)
    try:
        probed.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        return {
            "spikes": sink.data.get(),
            "u": np.moveaxis(u_monitor.get_data()[probed.name]["u"], 0, -1),
            "v": np.moveaxis(v_monitor.get_data()[probed.name]["v"], 0, -1),
        }
    finally:
        probed.stop()


def lava_synapse(node: Dense | Conv2d, in_shape: tuple[int, ...], message_bits: int):
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense as LavaDense
    from lava.utils.weightutils import SignMode

    if isinstance(node, Dense):
        # MIXED with 9 weight bits: Dense keeps every weight in [-256, 255] as it is (the
        # defaults would drop the LSB of mixed-sign weights and clip -256 in all-negative ones).
        return LavaDense(
            weights=node.weight_int.astype(np.int32),
            num_message_bits=message_bits,
            num_weight_bits=9,
            sign_mode=SignMode.MIXED,
            weight_exp=node.weight_exp,
        )
    # Lava's Conv convolves (kernel flipped) over (W, H, C) with kernels (out, kw, kh, in).
    kernel = node.weight_int[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    return Conv(
        weight=np.ascontiguousarray(kernel, dtype=np.int32),
        input_shape=in_shape,
        stride=node.stride[::-1],  # Lava's (x, y)
        padding=node.padding[::-1],
        num_message_bits=message_bits,
    )


def lava_order(x: np.ndarray) -> np.ndarray:
    """(C, H, W, S) -> Lava's (W, H, C, S); (n, S) stays."""
    return x.transpose(2, 1, 0, 3) if x.ndim == 4 else x


def compare(graph: Graph, image: np.ndarray, probe: str) -> SimulationResult:
    lava = run_lava(graph, image, probe)
    result = simulate(graph, image[None], record=True, record_states=True)
    last = graph.populations[-1].name
    np.testing.assert_array_equal(lava_order(result.spikes[last][0]), lava["spikes"])
    np.testing.assert_array_equal(lava_order(result.currents[probe][0]), lava["u"])
    np.testing.assert_array_equal(lava_order(result.voltages[probe][0]), lava["v"])
    return result


def test_one_population_matches_lava():
    rng = np.random.default_rng(1)
    graph = random_graph(rng, (1, 2, 3), 255, [Layer(4, -1, du=300, dv=200, vth=40)], T=10)
    result = compare(graph, rng.uniform(0, 1, (1, 2, 3)), probe="lif0")
    assert 0 < result.output_spikes.sum() < result.output_spikes.size


def test_two_populations_match_lava():
    rng = np.random.default_rng(2)
    layers = [Layer(6, 0, du=100, dv=500, vth=20), Layer(3, 1, du=2000, dv=0, vth=3)]
    graph = random_graph(rng, (1, 3, 3), 255, layers, T=8)
    result = compare(graph, rng.uniform(0, 1, (1, 3, 3)), probe="lif0")
    assert result.spikes["lif0"].any() and result.output_spikes.any()


def test_subtractive_reset_matches_lava():
    """Spikes subtract reset_sub from v (LIFVariant): in the first population twice the
    threshold, so v ends above 0 (and spikes follow each other) or below it; in the second
    less than the threshold."""
    rng = np.random.default_rng(5)
    layers = [
        Layer(6, -6, du=300, dv=100, vth=2000, reset_sub=256000),
        Layer(3, 1, du=1000, dv=50, vth=5, reset_sub=700),
    ]
    graph = random_graph(rng, (1, 3, 3), 255, layers, T=12)
    result = compare(graph, rng.uniform(0.3, 1, (1, 3, 3)), probe="lif0")
    v, spikes = result.voltages["lif0"][0], result.spikes["lif0"][0].astype(bool)
    before = result.voltages_before_reset["lif0"][0]
    assert spikes.any() and (v[spikes] == before[spikes] - 256000).all()
    assert (v[spikes] > 0).any() and (v[spikes] < 0).any()
    assert (spikes[:, 1:] & spikes[:, :-1]).any(), "no neuron spiked on consecutive steps"


def test_biases_match_lava():
    """bias_mant << bias_exp enters v every step, including mantissas at both ends of 13 bits:
    a silent input still drives the positive-bias neurons to spike."""
    rng = np.random.default_rng(6)
    layers = [
        Layer(6, -3, du=300, dv=100, vth=40, bias=(4096 - 1, 3)),
        Layer(4, 0, du=1000, dv=50, vth=5, bias=(900, 0), reset_sub=500),
    ]
    graph = random_graph(rng, (1, 3, 3), 255, layers, T=10)
    nodes = list(graph.nodes)
    nodes[2] = dataclasses.replace(nodes[2], bias_mant=np.array([-4096, 4095, 7, -7, 0, 100]))
    nodes[2] = dataclasses.replace(nodes[2], bias=nodes[2].bias_mant * 8.0)
    graph = Graph(tuple(nodes), T=10)
    for image in (rng.uniform(0, 1, (1, 3, 3)), np.zeros((1, 3, 3))):
        result = compare(graph, image, probe="lif0")
    assert result.spikes["lif0"][0][1].any() and not result.spikes["lif0"][0][0].any()


def test_conv_biases_match_lava():
    """Per-channel biases spread over a convolutional population in Lava's (W, H, C) order."""
    rng = np.random.default_rng(7)
    w1 = rng.integers(-100, 120, size=(3, 1, 3, 3)).astype(np.int32)
    mant = np.array([-2000, 1500, 300], np.int32)
    nodes = (
        Input("in", (1, 5, 4), 255),
        Conv2d("c1", w1.astype(np.float64), 1, 1, w1),
        CubaLIF(
            "lif0",
            2.0,
            2.0,
            1.0,
            du=500,
            dv=300,
            vth=30,
            scale=1.0,
            bias=mant * 4.0,
            bias_mant=mant,
            bias_exp=2,
        ),  # fmt: skip
    )
    result = compare(Graph(nodes, T=6), rng.uniform(0, 1, (1, 5, 4)), probe="lif0")
    per_channel = result.spikes["lif0"][0].sum(axis=(1, 2, 3))
    assert per_channel[0] < per_channel[1] and per_channel[1] > 0


def test_a_population_reading_its_own_spikes_matches_lava():
    """A recurrent Dense (the population's spikes of the previous step) summed with the
    feed-forward one into the same neurons."""
    rng = np.random.default_rng(8)
    graph = random_graph(rng, (1, 3, 3), 15, [Layer(6, -4, du=300, dv=100, vth=100)], T=12)
    w = rng.integers(-256, 255, size=(6, 6)).astype(np.int32)
    nodes = (*graph.nodes[:2], Dense("rec", w.astype(np.float64), w, 0), graph.nodes[2])
    edges = (("in", "fc0"), ("fc0", "lif0"), ("rec", "lif0"), ("lif0", "rec"))
    looped = Graph(nodes, T=12, edges=edges)
    image = rng.uniform(0, 1, (1, 3, 3))
    result = compare(looped, image, probe="lif0")
    without = simulate(graph, image[None])
    assert result.output_spikes.any()
    assert not np.array_equal(result.output_spikes, without.output_spikes)


@pytest.mark.parametrize("weight_exp", [-7, 2])
def test_int32_sums_wraps_and_saturation_match_lava(weight_exp: int):
    # 200 graded inputs of about 52000 times weights in [180, 254]: the int32 Dense sum
    # overflows (visible after >> 7), the current leaves 24 bits after Lava's single wrap, and
    # the voltage saturates.
    rng = np.random.default_rng(3)
    layers = [Layer(3, weight_exp, du=0, dv=0, vth=131071, low=180), Layer(2, 0, 4095, 4096, 1)]
    graph = random_graph(rng, (1, 10, 20), 65535, layers, T=4)
    result = compare(graph, rng.uniform(0.6, 1, (1, 10, 20)), probe="lif0")
    assert result.current_wraps["lif0"] > 0 and result.voltage_saturations["lif0"] > 0
    assert np.abs(result.currents["lif0"]).max() > 2**23


def test_conv_graph_matches_lava():
    # Conv (stride 2, padding 1, sums past 2^23: Lava's Conv wraps them to 24 bits) -> LIF ->
    # Conv on spikes (padding 1) -> LIF. Same one-step delay per synapse as Dense.
    rng = np.random.default_rng(4)
    w1 = rng.integers(180, 255, size=(3, 2, 3, 3)).astype(np.int32)
    w2 = rng.integers(-256, 255, size=(2, 3, 2, 2)).astype(np.int32)
    nodes = (
        Input("in", (2, 6, 5), 65535),
        Conv2d("c1", w1.astype(np.float64), 2, 1, w1),
        CubaLIF("lif0", 2.0, 2.0, 1.0, du=500, dv=300, vth=30, scale=1.0),
        Conv2d("c2", w2.astype(np.float64), 1, 1, w2),
        CubaLIF("lif1", 2.0, 2.0, 1.0, du=1000, dv=100, vth=3, scale=1.0),
    )
    graph = Graph(nodes, T=6)
    result = compare(graph, rng.uniform(0, 1, (2, 6, 5)), probe="lif0")
    assert result.current_wraps["lif0"] > 0
    assert result.spikes["lif0"].any() and result.output_spikes.any()
