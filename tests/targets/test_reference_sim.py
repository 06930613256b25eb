"""The reference simulator against a plain per-neuron loop, hand-checked examples and refusals.

`loop_simulate` below is an independent, deliberately naive model of Lava 0.10.0's fixed-point
network: Python ints, one neuron at a time, and each synapse's one-step delay written out as
Lava runs it (send what was computed last step, then receive this step's input). It also covers
the paths that only the Lava comparisons checked before: populations as `LIFVariant` runs them
(v held at 0 the step after a spike, spike counts, a reset by subtraction) and inputs that change
every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from graphs import fixed_conv as conv
from graphs import fixed_dense as dense
from graphs import fixed_lif as lif
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from targets.loihi2.formats import VTH_MAX
from targets.loihi2.simulator import BACKENDS, SimulationResult, output_window, simulate
from targets.loihi2.stream import input_payload
from toolchain.ir import (
    Conv2d,
    CubaLIF,
    Dense,
    Flatten,
    Graph,
    GraphError,
    Input,
    Node,
    SumPool2d,
)
from toolchain.neuron import predict_from_spikes

# --------------------------------------------------------------------------- the loop model


def tz(x: int) -> int:
    """x / 4096 truncated toward zero."""
    return -((-x) >> 12) if x < 0 else x >> 12


def int32(x: int) -> int:
    """numpy's int32 overflow."""
    return (x + 2**31) % 2**32 - 2**31


def dense_sum(node: Dense, x: list[int]) -> list[int]:
    out = []
    for row in node.weight_int.tolist():
        total = int32(sum(w * xi for w, xi in zip(row, x, strict=True)))  # int32 dot
        e = node.weight_exp
        out.append(int32(total << e) if e > 0 else total >> -e)
    return out


def conv_sum(node: Conv2d, x: list[int], in_shape: tuple[int, ...]) -> list[int]:
    channels, height, width = in_shape
    weight = node.weight_int.tolist()
    out_c, _, kh, kw = node.weight_int.shape
    (sy, sx), (py, px) = node.stride, node.padding
    out_h, out_w = (height + 2 * py - kh) // sy + 1, (width + 2 * px - kw) // sx + 1
    out = []
    for o in range(out_c):
        for oy in range(out_h):
            for ox in range(out_w):
                total = 0
                for c in range(channels):
                    for dy in range(kh):
                        for dx in range(kw):
                            y, xx = oy * sy + dy - py, ox * sx + dx - px
                            if 0 <= y < height and 0 <= xx < width:
                                total += weight[o][c][dy][dx] * x[(c * height + y) * width + xx]
                out.append((total + 2**23) % 2**24 - 2**23)  # Lava's signed 24-bit clamp
    return out


@dataclass
class Neuron:
    u: int = 0
    v: int = 0
    spiked: bool = False  # at the last step


@dataclass
class LoopResult:
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    currents: dict[str, np.ndarray] = field(default_factory=dict)
    voltages: dict[str, np.ndarray] = field(default_factory=dict)
    wraps: dict[str, int] = field(default_factory=dict)
    saturations: dict[str, int] = field(default_factory=dict)


def lif_step(pop: CubaLIF, n: Neuron, a: int, result: LoopResult) -> int:
    exact_u = tz(n.u * (4096 - (pop.du + 1))) + a * 64
    u = int32(exact_u)  # Lava adds in int32 ...
    if u > 2**23:  # ... then wraps once
        u -= 2**24
    elif u <= -(2**23):
        u += 2**24
    result.wraps[pop.name] += u != exact_u
    exact_v = tz(n.v * (4096 - pop.dv)) + u
    v = min(max(exact_v, -(2**23 - 1)), 2**23 - 1)
    result.saturations[pop.name] += v != exact_v
    if pop.refractory and n.spiked:
        v = 0  # held the step after a spike
    threshold = pop.vth * 64
    spikes = 0  # how many multiples of the threshold v exceeds, strictly, up to max_spikes
    while spikes < pop.max_spikes and v > (spikes + 1) * threshold:
        spikes += 1
    if pop.reset_sub is not None:
        v -= spikes * pop.reset_sub
    elif spikes:
        v = 0
    n.u, n.v, n.spiked = u, v, spikes > 0
    return spikes


def loop_simulate(graph: Graph, image: np.ndarray) -> LoopResult:
    """One sample, S = T + L Lava steps; `image` (C, H, W) is sent at every input step, or
    frames (T, C, H, W) frame t at step t + 1."""
    shapes = graph.shapes()
    pairs = [(graph.nodes[i], graph.nodes[i + 1], shapes[i - 1]) for i in range(1, len(shapes), 2)]
    frames = image if image.ndim == 4 else [image] * graph.T
    payloads = [[int(p) for p in np.rint(x * graph.input.levels).ravel()] for x in frames]
    steps = graph.T + len(pairs)
    result = LoopResult()
    neurons, buffers = [], []
    for i, (_, pop, _) in enumerate(pairs):
        size = math.prod(shapes[2 * i + 2])
        neurons.append([Neuron() for _ in range(size)])
        buffers.append([0] * size)  # what the synapse sends next step
        for record in (result.spikes, result.currents, result.voltages):
            record[pop.name] = np.zeros((size, steps), dtype=np.int64)
        result.wraps[pop.name] = result.saturations[pop.name] = 0
    for t in range(1, steps + 1):
        source = payloads[t - 1] if t <= graph.T else [0] * len(payloads[0])
        for k, (synapse, pop, in_shape) in enumerate(pairs):
            sent = buffers[k]  # computed at step t - 1
            if isinstance(synapse, Dense):
                buffers[k] = dense_sum(synapse, source)
            else:
                buffers[k] = conv_sum(synapse, source, in_shape)
            source = [lif_step(pop, n, a, result) for n, a in zip(neurons[k], sent, strict=True)]
            result.spikes[pop.name][:, t - 1] = source
            result.currents[pop.name][:, t - 1] = [n.u for n in neurons[k]]
            result.voltages[pop.name][:, t - 1] = [n.v for n in neurons[k]]
    return result


def assert_matches_loop(
    graph: Graph, images: np.ndarray, batch_size: int = 1000
) -> SimulationResult:
    result = simulate(graph, images, record=True, record_states=True, batch_size=batch_size)
    steps = graph.T + len(graph.populations)
    wraps = dict.fromkeys(result.current_wraps, 0)
    saturations = dict.fromkeys(result.current_wraps, 0)
    for i, image in enumerate(images):
        loop = loop_simulate(graph, image)
        for pop in graph.populations:
            shape = (-1, steps)
            np.testing.assert_array_equal(
                result.spikes[pop.name][i].reshape(shape), loop.spikes[pop.name]
            )
            np.testing.assert_array_equal(
                result.currents[pop.name][i].reshape(shape), loop.currents[pop.name]
            )
            np.testing.assert_array_equal(
                result.voltages[pop.name][i].reshape(shape), loop.voltages[pop.name]
            )
            wraps[pop.name] += loop.wraps[pop.name]
            saturations[pop.name] += loop.saturations[pop.name]
    assert result.current_wraps == wraps
    assert result.voltage_saturations == saturations
    last = graph.populations[-1].name
    np.testing.assert_array_equal(
        result.output_spikes, result.spikes[last].reshape(len(images), -1, steps)
    )
    # the readout by hand: a spike at window step t adds 1 - (1/2)^(T - t) to its class (tau_s 2)
    window = result.output_spikes[..., output_window(graph)]
    weight = 1.0 - 0.5 ** (graph.T - np.arange(graph.T))
    np.testing.assert_array_equal(result.predictions, (window * weight).sum(-1).argmax(-1))
    return result


# --------------------------------------------------------------------------- graph builders


# --------------------------------------------------------------------------- strategies
# Regimes: "random" explores everything; "wrap" drives the first population's current far past
# 2^23 (large same-sign weights, large payloads, little current decay); "saturate" pushes the
# first population's voltage past 2^23 - 1 (dv = 0, the largest threshold).


@st.composite
def weights(draw, shape: tuple[int, ...], regime: str) -> np.ndarray:
    if regime == "random":
        low = draw(st.sampled_from([-256, -64, 0]))  # mostly positive matrices propagate spikes
        return draw(arrays(np.int64, shape, elements=st.integers(low, 254), fill=st.nothing()))
    low = 180 if regime == "wrap" else 170
    magnitude = draw(arrays(np.int64, shape, elements=st.integers(low, 254), fill=st.nothing()))
    signs = draw(
        arrays(np.int64, (shape[0],) + (1,) * (len(shape) - 1), elements=st.sampled_from([-1, 1]))
    )
    return magnitude * signs


@st.composite
def lif_params(draw, name: str, regime: str, variants: bool = False) -> CubaLIF:
    """With `variants`: any of a refractory step, spike counts and a subtractive reset."""
    if regime == "saturate":
        return lif(name, du=4095, dv=0, vth=VTH_MAX)
    du = draw(st.integers(0, 10) if regime == "wrap" else st.integers(0, 4095))
    dv = draw(st.integers(0, 4096))
    vth = draw(st.one_of(st.integers(1, 64), st.integers(1, 2048), st.integers(1, VTH_MAX)))
    if not variants:
        return lif(name, du, dv, vth)
    reset_sub = draw(st.one_of(st.none(), st.integers(1, vth * 64 * 2)))
    return lif(
        name,
        du,
        dv,
        vth,
        refractory=draw(st.integers(0, 1)),
        max_spikes=draw(st.sampled_from([1, 2, 3])),
        reset_sub=reset_sub,
    )


@st.composite
def images_for(draw, shape: tuple[int, ...], low: float, steps: int | None = None) -> np.ndarray:
    """(N, *shape) images, or (N, steps, *shape) frames with steps given."""
    n = draw(st.integers(1, 3))
    shape = shape if steps is None else (steps, *shape)
    return draw(arrays(np.float64, (n, *shape), elements=st.floats(low, 1.0), fill=st.nothing()))


@st.composite
def input_node(draw, regime: str, shape: tuple[int, int, int]) -> Input:
    levels = {
        "random": st.one_of(st.integers(1, 255), st.integers(1, 65535)),
        "wrap": st.integers(20000, 65535),
        "saturate": st.just(500),
    }[regime]
    return Input("in", shape, draw(levels))


@st.composite
def dense_cases(
    draw, regime: str = "random", variants: bool = False, per_step: bool = False
) -> tuple[Graph, np.ndarray, int]:
    """A Dense chain; with `variants`, populations as `lif_params` draws them; with
    `per_step`, inputs that change every step."""
    if regime == "saturate":
        shape = (1, 1, 1)
    else:
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    nodes: list[Node] = [draw(input_node(regime, shape))]
    fan_in = math.prod(shape)
    for k in range(draw(st.integers(1, 3))):
        size, kind = draw(st.integers(1, 5)), regime if k == 0 else "random"
        exp = {"random": st.integers(-3, 3), "wrap": st.integers(0, 3), "saturate": st.just(0)}
        w = draw(weights((size, fan_in), kind))
        population = draw(lif_params(f"lif{k}", kind, variants))
        nodes += [dense(f"fc{k}", w, draw(exp[kind])), population]
        fan_in = size
    T = draw(st.integers(5, 8) if regime == "saturate" else st.integers(1, 6))
    low = {"random": 0.0, "wrap": 0.5, "saturate": 0.4}[regime]
    images = draw(images_for(shape, low, T if per_step else None))
    return Graph(tuple(nodes), T=T), images, draw(st.integers(1, 3))


@st.composite
def conv_cases(draw) -> tuple[Graph, np.ndarray]:
    regime = draw(st.sampled_from(["random", "wrap"]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(3, 5)), draw(st.integers(3, 5)))
    nodes: list[Node] = [draw(input_node(regime, shape))]
    current = shape
    for k in range(draw(st.integers(1, 2))):
        stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
        fits = min(current[1] + 2 * padding[0], current[2] + 2 * padding[1])
        size = draw(st.integers(1, min(3, fits)))
        kind = regime if k == 0 else "random"
        w = draw(weights((draw(st.integers(1, 3)), current[0], size, size), kind))
        nodes += [conv(f"conv{k}", w, stride, padding), draw(lif_params(f"clif{k}", kind))]
        current = Graph(tuple(nodes), T=1).shapes()[-1]
    fan_in = math.prod(current)
    w = draw(weights((draw(st.integers(1, 4)), fan_in), "random"))
    nodes += [dense("fc", w, draw(st.integers(-3, 3))), draw(lif_params("out", "random"))]
    low = 0.5 if regime == "wrap" else 0.0
    return Graph(tuple(nodes), T=draw(st.integers(1, 5))), draw(images_for(shape, low))


# --------------------------------------------------------------------------- property tests


@settings(max_examples=60, deadline=None)
@given(dense_cases())
def test_dense_chains_match_the_loop_model(case):
    graph, images, batch_size = case
    assert_matches_loop(graph, images, batch_size)


@settings(max_examples=40, deadline=None)
@given(conv_cases())
def test_conv_graphs_match_the_loop_model(case):
    graph, images = case
    assert_matches_loop(graph, images, batch_size=2)


@settings(max_examples=60, deadline=None)
@given(dense_cases(variants=True))
def test_variant_populations_match_the_loop_model(case):
    """Refractory steps, spike counts and subtractive resets, in any combination."""
    graph, images, batch_size = case
    assert_matches_loop(graph, images, batch_size)


@settings(max_examples=40, deadline=None)
@given(dense_cases(per_step=True))
def test_inputs_per_step_match_the_loop_model(case):
    graph, images, batch_size = case
    assert_matches_loop(graph, images, batch_size)


@settings(max_examples=20, deadline=None)
@given(dense_cases("wrap"))
def test_current_wraps_match_and_are_counted(case):
    graph, images, batch_size = case
    result = assert_matches_loop(graph, images, batch_size)
    assert result.current_wraps["lif0"] > 0


@settings(max_examples=20, deadline=None)
@given(dense_cases("saturate"))
def test_voltage_saturations_match_and_are_counted(case):
    graph, images, batch_size = case
    result = assert_matches_loop(graph, images, batch_size)
    assert result.voltage_saturations["lif0"] > 0


# --------------------------------------------------------------------------- hand-checked
# Each on the numpy path and on the torch backend (which computes each sample's windows: these
# one- and two-population cases have nothing outside them).

ON_BOTH_BACKENDS = pytest.mark.parametrize("backend", BACKENDS)


def simulate_on(backend: str, graph: Graph, images: np.ndarray, **options) -> SimulationResult:
    return simulate(graph, images, **options, backend=backend)


def one_neuron(weight: int, du: int, dv: int, vth: int, levels: int, T: int) -> Graph:
    nodes = (Input("in", (1, 1, 1), levels), dense("fc", [[weight]]), lif("out", du, dv, vth))
    return Graph(nodes, T=T)


@ON_BOTH_BACKENDS
def test_one_neuron_sees_the_input_one_step_late(backend):
    # p = 10 sent at steps 1..4; Dense delivers it at steps 2..5 as a = 10, u = a << 6 = 640
    # (du = 4095: no memory); dv = 0: v integrates 640 per step; threshold 15 << 6 = 960.
    graph = one_neuron(weight=1, du=4095, dv=0, vth=15, levels=10, T=4)
    result = simulate_on(backend, graph, np.ones((1, 1, 1, 1)), record=True, record_states=True)
    # step:                 1    2  3    4  5    (S = T + L = 5; column j = step j + 1)
    assert result.currents["out"][0, 0].tolist() == [0, 640, 640, 640, 640]
    assert result.voltages["out"][0, 0].tolist() == [0, 640, 0, 640, 0]  # 1280 > 960: reset
    assert result.output_spikes[0, 0].tolist() == [0, 0, 1, 0, 1]
    assert output_window(graph) == slice(1, 5)
    assert result.spikes["out"].shape == (1, 1, 5)


@ON_BOTH_BACKENDS
def test_spike_counts_reset_by_subtracting_one_amount_per_spike(backend):
    # u = 640 every input step (steps 2..5); dv = 0: v keeps everything; vth 2 << 6 = 128.
    # Step 2: v = 640 exceeds 128 four times (not five: strict), capped at 3 spikes, and each
    # subtracts 100: v = 340. Then 340 + 640 = 980 -> 3 spikes, 680; 1320 -> 1020; 1660 -> 1360.
    graph = one_neuron(weight=1, du=4095, dv=0, vth=2, levels=10, T=4)
    counting = lif("out", 4095, 0, 2, max_spikes=3, reset_sub=100)
    result = simulate_on(
        backend, Graph((*graph.nodes[:2], counting), T=4), np.ones((1, 1, 1, 1)), record_states=True
    )
    assert result.output_spikes[0, 0].tolist() == [0, 3, 3, 3, 3]
    assert result.voltages["out"][0, 0].tolist() == [0, 340, 680, 1020, 1360]


@ON_BOTH_BACKENDS
def test_a_refractory_neuron_is_held_the_step_after_each_spike(backend):
    # u = v = 640 > 320 at every input step (steps 2..5); held at 0 the step after a spike.
    plain = one_neuron(weight=1, du=4095, dv=4096, vth=5, levels=10, T=4)
    held = Graph((*plain.nodes[:2], lif("out", 4095, 4096, 5, refractory=1)), T=4)
    ones = np.ones((1, 1, 1, 1))
    assert simulate_on(backend, plain, ones).output_spikes[0, 0].tolist() == [0, 1, 1, 1, 1]
    result = simulate_on(backend, held, ones, record_states=True)
    assert result.output_spikes[0, 0].tolist() == [0, 1, 0, 1, 0]
    assert result.voltages["out"][0, 0].tolist() == [0, 0, 0, 0, 0]  # reset, held, reset, held


@ON_BOTH_BACKENDS
def test_frames_reach_the_population_one_step_after_they_are_sent(backend):
    # frames 1.0, 0.0, 0.5, 0.2 (levels 10: payload 10, 0, 5, 2) sent at steps 1..4, weight 1;
    # du = 4095, dv = 4096: u = v = payload << 6 one step later; vth 4 << 6 = 256.
    graph = one_neuron(weight=1, du=4095, dv=4096, vth=4, levels=10, T=4)
    frames = np.array([1.0, 0.0, 0.5, 0.2]).reshape(1, 4, 1, 1, 1)
    result = simulate_on(backend, graph, frames, record=True, record_states=True)
    assert result.currents["out"][0, 0].tolist() == [0, 640, 0, 320, 128]
    assert result.output_spikes[0, 0].tolist() == [0, 1, 0, 1, 0]


@ON_BOTH_BACKENDS
def test_decay_truncates_toward_zero(backend):
    # a = -7 from step 2: u = -448; step 3: tz(-448 * 4095 / 4096) = -447 (not floor's -448).
    graph = one_neuron(weight=-1, du=0, dv=4096, vth=1, levels=7, T=2)
    result = simulate_on(backend, graph, np.ones((1, 1, 1, 1)), record_states=True)
    assert result.currents["out"][0, 0].tolist() == [0, -448, -447 - 448]
    assert result.voltages["out"][0, 0].tolist() == [0, -448, -895]  # dv = 4096: v = u


@ON_BOTH_BACKENDS
def test_every_synapse_adds_one_step(backend):
    # in -> fc1 -> hid (spikes whenever it gets input) -> fc2 -> out (likewise), T = 3, S = 5.
    nodes = (
        Input("in", (1, 1, 1), 10),
        dense("fc1", [[1]]),
        lif("hid", du=4095, dv=4096, vth=5),
        dense("fc2", [[20]]),
        lif("out", du=4095, dv=4096, vth=10),
    )
    graph = Graph(nodes, T=3)
    result = simulate_on(backend, graph, np.ones((1, 1, 1, 1)), record=True)
    assert result.spikes["hid"][0, 0].tolist() == [0, 1, 1, 1, 0]  # input at steps 2..4
    assert result.output_spikes[0, 0].tolist() == [0, 0, 1, 1, 1]  # one more step: 3..5
    assert output_window(graph) == slice(2, 5)
    assert result.output_spikes[0, 0, output_window(graph)].tolist() == [1, 1, 1]
    assert result.currents is None and result.voltages is None


@ON_BOTH_BACKENDS
def test_conv_sum_wraps_to_24_bits_and_the_current_wraps_once(backend):
    # 1x1 conv: 254 * 65535 = 16645890 -> 16645890 - 2^24 = -131326 (Lava's Conv clamp);
    # u = -131326 << 6 = -8404864 <= -2^23 -> + 2^24 = 8372352; v = u > 1 << 6: spike.
    nodes = (Input("in", (1, 1, 1), 65535), conv("c", [[[[254]]]]), lif("out", 4095, 4096, 1))
    result = simulate_on(
        backend, Graph(nodes, T=1), np.ones((1, 1, 1, 1)), record=True, record_states=True
    )
    assert result.currents["out"][0, 0, 0, 0].tolist() == [0, 8372352]
    assert result.output_spikes[0, 0].tolist() == [0, 1]
    assert result.current_wraps == {"out": 1}
    assert result.voltage_saturations == {"out": 0}


@ON_BOTH_BACKENDS
def test_current_leaves_24_bits_after_a_single_wrap_like_lava(backend):
    # a = 254 * 65535 = 16645890; a << 6 = 1065336960 (no int32 overflow); one wrap subtracts
    # 2^24 only: u = 1048559744, far outside 24 bits, as Lava keeps it. v saturates.
    graph = one_neuron(weight=254, du=4095, dv=4096, vth=VTH_MAX, levels=65535, T=1)
    result = simulate_on(backend, graph, np.ones((1, 1, 1, 1)), record_states=True)
    assert result.currents["out"][0, 0].tolist() == [0, 1065336960 - 2**24]
    assert result.voltages["out"][0, 0].tolist() == [0, 0]  # clipped to 2^23 - 1 > vth << 6
    assert result.voltage_saturations == {"out": 1}


@ON_BOTH_BACKENDS
def test_threshold_is_strict(backend):
    # u = v = 640 every input step (du = 4095, dv = 4096); vth 10 << 6 = 640 is not exceeded.
    silent = one_neuron(weight=1, du=4095, dv=4096, vth=10, levels=10, T=2)
    assert simulate_on(backend, silent, np.ones((1, 1, 1, 1))).output_spikes.tolist() == [
        [[0, 0, 0]]
    ]
    spiking = one_neuron(weight=1, du=4095, dv=4096, vth=9, levels=10, T=2)
    assert simulate_on(backend, spiking, np.ones((1, 1, 1, 1))).output_spikes.tolist() == [
        [[0, 1, 1]]
    ]


@ON_BOTH_BACKENDS
def test_current_wrap_boundaries(backend):
    # a = +-128 * 1024 = +-2^17, a << 6 = +-2^23: +2^23 is kept, -2^23 becomes +2^23. Either
    # way v = 2^23 saturates to 2^23 - 1, above vth << 6 = 2^23 - 64: both spike and reset.
    nodes = (
        Input("in", (1, 1, 1), 1024),
        dense("fc", [[128], [-128]]),
        lif("out", 4095, 4096, VTH_MAX),
    )
    result = simulate_on(backend, Graph(nodes, T=1), np.ones((1, 1, 1, 1)), record_states=True)
    assert result.currents["out"][0, :, 1].tolist() == [2**23, 2**23]
    assert result.output_spikes[0, :, 1].tolist() == [1, 1]
    assert result.current_wraps == {"out": 1}
    assert result.voltage_saturations == {"out": 2}


@ON_BOTH_BACKENDS
def test_voltage_saturates_at_minus_2_23_plus_1(backend):
    # a = -128 * 256 = -2^15, u = -2^21 every input step (steps 2..5); dv = 0: v reaches
    # exactly -2^23 at step 5, which saturates to -(2^23 - 1).
    graph = one_neuron(weight=-128, du=4095, dv=0, vth=1, levels=256, T=4)
    result = simulate_on(backend, graph, np.ones((1, 1, 1, 1)), record_states=True)
    assert result.voltages["out"][0, 0].tolist() == [
        0,
        -(2**21),
        -(2**22),
        -3 * 2**21,
        -(2**23 - 1),
    ]
    assert result.voltage_saturations == {"out": 1}
    assert result.current_wraps == {"out": 0}


@ON_BOTH_BACKENDS
def test_dense_sum_wraps_to_int32_before_a_right_shift(backend):
    # Lava sums graded spikes in int32: 200 * 65535 * 254 = 3329178000 -> -965789296, then
    # >> 7 = -7545229, << 6 = -482894656, one 24-bit wrap: -466117440 (checked in Lava 0.10.0).
    # Without the int32 wrap: 26009203 << 6 = 1664588992 -> 1647811776. (For shifts up to 6 the
    # LIF's own int32 addition hides the difference: 2^32 >> k << 6 is a multiple of 2^32.)
    nodes = (
        Input("in", (1, 10, 20), 65535),
        dense("fc", np.full((1, 200), 254), weight_exp=-7),
        lif("out", 4095, 4096, VTH_MAX),
    )
    result = simulate_on(backend, Graph(nodes, T=1), np.ones((1, 1, 10, 20)), record_states=True)
    assert result.currents["out"][0, 0].tolist() == [0, -466117440]
    assert result.current_wraps == {"out": 1}


def test_progress_bar_counts_samples(capsys):
    graph = one_neuron(weight=1, du=0, dv=0, vth=1, levels=10, T=2)
    simulate(graph, np.ones((3, 1, 1, 1)), batch_size=2, progress=True)
    assert "3/3" in capsys.readouterr().err


def test_predict_from_spikes_sums_psps_and_first_max_wins():
    spikes = np.array(
        [
            [[1, 0, 0], [0, 1, 1], [0, 0, 1]],  # PSP sums (tau_s 2): 0.875, 1.25, 0.5
            [[1, 0, 0], [0, 0, 1], [1, 0, 0]],  # 0.875, 0.5, 0.875: tie, class 0 wins
            [[0, 0, 0], [0, 0, 0], [0, 0, 0]],  # silent: class 0
            [[0, 0, 1], [0, 1, 0], [0, 0, 0]],  # 0.5 < 0.75: the earlier spike weighs more
        ],
        dtype=np.uint8,
    )
    predictions = predict_from_spikes(spikes, tau_s=2.0)
    assert predictions.dtype == np.int64
    assert predictions.tolist() == [1, 0, 0, 1]


def test_input_payload_rounds_and_checks_images():
    graph = one_neuron(weight=1, du=0, dv=0, vth=1, levels=16, T=1)
    images = np.array([0.0, 2.5 / 16, 3.5 / 16, 1.0, 0.3]).reshape(5, 1, 1, 1)  # exact halves
    payload = input_payload(graph, images)
    assert payload.dtype == np.int64
    assert payload.ravel().tolist() == [0, 2, 4, 16, 5]  # halves round to even: 2.5 -> 2
    with pytest.raises(ValueError, match="shape"):
        input_payload(graph, np.zeros((2, 1, 2, 1)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        input_payload(graph, np.full((1, 1, 1, 1), 1.5))


# --------------------------------------------------------------------------- refusals


def test_float_graph_is_refused_naming_the_node():
    float_dense = Dense("fc", np.ones((1, 1)))
    nodes = (Input("in", (1, 1, 1)), float_dense, lif("out", 0, 0, 1))
    with pytest.raises(
        GraphError, match="not fixed-point: node 'fc' \\(Dense\\) has no weight_int"
    ):
        simulate(Graph(nodes, T=2), np.ones((1, 1, 1, 1)))
    float_lif = CubaLIF("out", tau_m=2.0, tau_s=2.0, threshold=1.0)
    nodes = (Input("in", (1, 1, 1)), dense("fc", [[1]]), float_lif)
    with pytest.raises(GraphError, match="node 'out' \\(CubaLIF\\) has no du/dv/vth/scale"):
        simulate(Graph(nodes, T=2), np.ones((1, 1, 1, 1)))


def test_unlowered_graph_is_refused_naming_the_node():
    nodes = (
        Input("in", (1, 4, 4)),
        conv("conv1", np.ones((2, 1, 1, 1))),
        lif("lif1", 0, 0, 1),
        SumPool2d("pool1", 2),
        Flatten("flat"),
        dense("fc", np.ones((1, 8))),
        lif("out", 0, 0, 1),
    )
    with pytest.raises(
        ValueError, match="not lowered: node 'pool1' \\(SumPool2d\\) must be folded"
    ):
        simulate(Graph(nodes, T=2), np.ones((1, 1, 4, 4)))
    chained = (Input("in", (1, 1, 1)), dense("a", [[1]]), dense("b", [[1]]), lif("out", 0, 0, 1))
    with pytest.raises(ValueError, match="node 'b' \\(Dense\\) follows node 'a'"):
        simulate(Graph(chained, T=2), np.ones((1, 1, 1, 1)))


def test_conv_sums_beyond_int32_are_refused():
    # 65535 * 254 * 135 > 2^31: Lava's Conv would cast such a sum to int32 (undefined).
    nodes = (
        Input("in", (15, 3, 3), 65535),
        conv("big", np.full((1, 15, 3, 3), 254)),
        lif("out", 0, 0, 1),
    )
    with pytest.raises(GraphError, match="node 'big'.*2\\^31"):
        simulate(Graph(nodes, T=1), np.ones((1, 15, 3, 3)))


def test_a_drive_and_a_recurrent_drive_sum_exactly_beyond_float32():
    """Each float32 drive is exact (a < 2^24, times 64); their sum may need 25 bits."""
    from targets.loihi2.simulator import _sum

    a = np.array([(2**24 - 1) * 64, 64], np.float32)
    b = np.array([2 * 64, 3 * 64], np.float32)
    exact = a.astype(np.int64) + b.astype(np.int64)
    np.testing.assert_array_equal(_sum(a, b), exact)
