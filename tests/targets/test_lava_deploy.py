"""Deploying a lowered fixed-point Graph on Lava (`targets.loihi2.lava`): bit-exact with the
reference simulator.

Many samples are streamed through one compiled network (LIFReset populations restart every
sample window); the output spikes of every step of every sample, and u and v of every probed
neuron inside each sample's window, equal `targets.loihi2.simulator.simulate` on that sample alone.
Every test also checks that no Lava shared-memory segment (a new entry in /dev/shm) is left.
"""

from __future__ import annotations

import glob
import os
import signal
import time
from dataclasses import replace

import numpy as np
import pytest
from graphs import Layer, random_graph
from lava_checks import assert_matches_reference

import targets.loihi2.lava  # noqa: F401  (installs the compat finder before any lava import)
from targets.loihi2.lava import runner, session
from targets.loihi2.lava.network import LavaTargetUnavailable
from targets.loihi2.lava.runner import (
    LavaTimeout,
    run_on_lava,
    run_payload_on_lava,
    run_per_sample,
)
from targets.loihi2.lava.workers import run_on_lava_workers
from targets.loihi2.plan import per_neuron_lif_fields, plan
from targets.loihi2.simulator import simulate
from targets.loihi2.stream import input_payload
from targets.loihi2.timing import output_window
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, GraphError, Input, Node


def shm_segments() -> set[str]:
    return set(glob.glob("/dev/shm/*"))


@pytest.fixture(autouse=True)
def no_leaked_shared_memory():
    before = shm_segments()
    yield
    assert shm_segments() - before == set(), "Lava left shared-memory segments behind"


def with_extreme_weights(graph: Graph) -> Graph:
    """Put -256 and 254 (and odd values) into every Dense of a random graph."""
    nodes: list[Node] = []
    for node in graph.nodes:
        if isinstance(node, Dense):
            w = node.weight_int.copy()
            w.flat[0], w.flat[-1] = -256, 254
            w.flat[1 % w.size] = 253
            node = Dense(node.name, w.astype(np.float64), w, node.weight_exp)
        nodes.append(node)
    return Graph(tuple(nodes), T=graph.T)


@pytest.mark.parametrize(
    "seed, layers, T",
    [
        (
            11,
            [
                Layer(7, -1, du=300, dv=200, vth=40),
                Layer(5, 0, du=100, dv=4096, vth=20),
                Layer(3, 2, du=4095, dv=0, vth=3),
            ],
            6,
        ),
        (12, [Layer(6, 0, du=0, dv=500, vth=10), Layer(4, -3, du=2000, dv=1, vth=1)], 9),
        (  # biases, one population subtracting
            14,
            [
                Layer(6, -2, du=300, dv=100, vth=40, bias=(4000, 3)),
                Layer(4, 0, du=100, dv=4096, vth=20, bias=(500, 0), reset_sub=900),
            ],
            5,
        ),
        (  # reset by subtraction (LIFVariant), beside a population that resets to 0
            13,
            [
                Layer(6, -6, du=300, dv=100, vth=2000, reset_sub=256000),
                Layer(5, 0, du=100, dv=4096, vth=20),
                Layer(4, 1, du=1000, dv=50, vth=5, reset_sub=700),
            ],
            7,
        ),
    ],
)
def test_dense_networks_stream_bit_exact(seed, layers, T):
    rng = np.random.default_rng(seed)
    graph = with_extreme_weights(random_graph(rng, (1, 3, 4), 255, layers, T=T))
    images = rng.uniform(0, 1, (5, 1, 3, 4))
    names = [p.name for p in graph.populations]
    result = run_on_lava(graph, images, probe=names)
    assert result.steps == 5 * T + len(layers)
    assert result.output_spikes.shape == (5, layers[-1].size, T)
    assert result.output_spikes.dtype == np.uint8
    assert 0 < result.output_spikes.sum() < result.output_spikes.size
    assert_matches_reference(graph, images, result)


@pytest.mark.parametrize("weight_exp", [-7, 2])
def test_wrapping_currents_and_saturated_voltages_stream_bit_exact(weight_exp):
    # 200 graded inputs near 65535 times weights in [180, 254]: int32 Dense sums overflow, the
    # current leaves 24 bits after Lava's single wrap, the voltage saturates.
    rng = np.random.default_rng(3)
    layers = [Layer(3, weight_exp, du=0, dv=0, vth=131071, low=180), Layer(2, 0, 4095, 4096, 1)]
    graph = random_graph(rng, (1, 10, 20), 65535, layers, T=4)
    images = rng.uniform(0.6, 1, (3, 1, 10, 20))
    ref = simulate(graph, images)
    assert ref.current_wraps["lif0"] > 0 and ref.voltage_saturations["lif0"] > 0
    result = run_on_lava(graph, images, probe=["lif0", "lif1"])
    assert_matches_reference(graph, images, result)


def conv_graph(rng: np.random.Generator, T: int) -> Graph:
    """Conv (stride 2, padding 1) -> LIF -> Conv (stride (2, 1), padding (1, 0)) -> LIF -> Dense
    -> LIF, on a non-square input and a rectangular stride and padding, so that (C, H, W) and
    Lava's (W, H, C) orders, and (h, w) and Lava's (x, y), really differ."""
    w1 = rng.integers(-40, 255, size=(3, 2, 3, 3)).astype(np.int32)
    w2 = rng.integers(-256, 255, size=(2, 3, 2, 2)).astype(np.int32)
    w3 = rng.integers(-256, 255, size=(4, 2 * 3 * 2)).astype(np.int32)
    nodes = (
        Input("in", (2, 7, 5), 255),
        Conv2d("c1", w1.astype(np.float64), 2, 1, w1),
        CubaLIF("lif0", 2.0, 2.0, 1.0, du=500, dv=300, vth=300, scale=1.0),
        Conv2d("c2", w2.astype(np.float64), (2, 1), (1, 0), w2),
        CubaLIF("lif1", 2.0, 2.0, 1.0, du=1000, dv=100, vth=3, scale=1.0),
        Dense("fc", w3.astype(np.float64), w3, -1),
        CubaLIF("lif2", 2.0, 2.0, 1.0, du=1000, dv=100, vth=2, scale=1.0),
    )
    return Graph(nodes, T=T)


def test_conv_network_streams_bit_exact():
    rng = np.random.default_rng(4)
    graph = conv_graph(rng, T=6)
    assert graph.shapes()[2] == (3, 4, 3) and graph.shapes()[4] == (2, 3, 2)
    images = rng.uniform(0, 1, (4, 2, 7, 5))
    result = run_on_lava(graph, images, probe=["lif0", "lif1", "lif2"])
    assert result.probes["lif1"]["v"].shape == (4 * 6 + 3, 2, 3, 2)
    ref = simulate(graph, images, record=True)
    assert ref.spikes["lif0"].any() and ref.spikes["lif1"].any() and result.output_spikes.any()
    assert_matches_reference(graph, images, result)


def test_conv_variants_stream_bit_exact():
    """LIFVariant on a conv network: spike counts sent as graded spikes into a Conv, a bias into
    the synaptic current per channel and a refractory step, then counts with a subtractive
    reset into a Dense. Streamed: every spike count, u and v equal the reference."""
    rng = np.random.default_rng(6)
    nodes = list(conv_graph(rng, T=6).nodes)
    nodes[2] = replace(
        nodes[2],
        synaptic_bias=np.array([0.5, -0.2, 0.1]),
        synaptic_bias_int=np.array([300, -100, 50], np.int32),
        refractory=1,
        max_spikes=3,
    )
    nodes[4] = replace(nodes[4], reset_subtract=1.0, reset_sub=100, max_spikes=2)
    graph = Graph(tuple(nodes), T=6)
    images = rng.uniform(0, 1, (4, 2, 7, 5))
    ref = simulate(graph, images, record=True)
    assert ref.spikes["lif0"].max() == 3 and ref.spikes["lif1"].max() == 2
    result = run_on_lava(graph, images, probe=["lif0", "lif1", "lif2"])
    assert_matches_reference(graph, images, result)


def test_per_neuron_parameters_stream_bit_exact():
    """du, dv, vth per channel of a conv population (with a bias, so LIFReset's resets run), and
    du, dv, vth and a subtracted amount per neuron of a dense one (LIFVariant): every spike, u
    and v equal the reference, and a population with one value each still runs Lava's LIF."""
    rng = np.random.default_rng(8)
    nodes = list(conv_graph(rng, T=6).nodes)
    nodes[2] = replace(
        nodes[2],
        tau_m=np.array([2.0, 8.0, 1.0]),
        du=np.array([500, 40, 4095]),
        dv=np.array([300, 4096, 0]),
        vth=np.array([300, 60, 900]),
        bias=np.array([0.0, 0.0, 1.0]),
        bias_mant=np.array([0, 0, 200], np.int32),
        bias_exp=1,
    )
    nodes[6] = replace(
        nodes[6],
        threshold=np.array([1.0, 2.0, 1.0, 3.0]),
        du=np.array([1000, 10, 2000, 4000]),
        dv=np.array([100, 3000, 5, 0]),
        vth=np.array([2, 5, 1, 9]),
        reset_subtract=np.array([1.0, 2.0, 1.0, 3.0]),
        reset_sub=np.array([128, 640, 64, 1152]),
    )
    graph = Graph(tuple(nodes), T=6)
    blocks = plan(graph).blocks
    assert [b.variant for b in blocks] == [True, False, True]
    assert per_neuron_lif_fields(graph.populations[0]) == ["du", "dv", "vth"]
    images = rng.uniform(0, 1, (4, 2, 7, 5))
    ref = simulate(graph, images, record=True)
    assert all(ref.spikes[p.name].any() for p in graph.populations)
    result = run_on_lava(graph, images, probe=["lif0", "lif2"])
    assert_matches_reference(graph, images, result)


@pytest.mark.parametrize("bias", [None, (3000, 2)])
def test_per_sample_mode_and_refilled_buffers_equal_streaming(bias):
    """Also with biases, which charge v before a sample arrives: every mode resets each
    population when the sample reaches it, as the reference does."""
    rng = np.random.default_rng(5)
    layers = [Layer(6, 0, du=100, dv=500, vth=20, bias=bias), Layer(3, 1, du=2000, dv=0, vth=3)]
    graph = random_graph(rng, (1, 3, 3), 255, layers, T=8)
    images = rng.uniform(0, 1, (5, 1, 3, 3))
    streamed = run_on_lava(graph, images)
    # Source and sink of 2 samples' columns, refilled with Var.set / read between runs.
    refilled = run_payload_on_lava(graph, input_payload(graph, images), buffer_samples=2)
    per_sample = run_per_sample(graph, images[:3], probe=["lif1"])
    np.testing.assert_array_equal(refilled.output_spikes, streamed.output_spikes)
    np.testing.assert_array_equal(per_sample.output_spikes, streamed.output_spikes[:3])
    np.testing.assert_array_equal(per_sample.predictions, streamed.predictions[:3])
    assert per_sample.steps == 3 * (8 + 2)
    ref = simulate(graph, images[:3], record_states=True)
    for var, states in (("u", ref.currents), ("v", ref.voltages)):
        expected = np.concatenate([states["lif1"][w].T for w in range(3)])
        np.testing.assert_array_equal(per_sample.probes["lif1"][var], expected)
    assert_matches_reference(graph, images, streamed)


def with_recurrence(graph: Graph, population: str, rng: np.random.Generator) -> Graph:
    """`graph` with a Dense from `population` back to itself (weights in [-256, 254])."""
    nodes = list(graph.nodes)
    lif = graph.node(population)
    n = graph.shapes()[nodes.index(lif)][0]
    w = rng.integers(-256, 255, size=(n, n)).astype(np.int32)
    nodes.insert(nodes.index(lif), Dense(f"{population}_rec", w.astype(np.float64), w, 0))
    plain = [node.name for node in graph.nodes]
    edges = [*zip(plain, plain[1:], strict=False)]
    edges += [(f"{population}_rec", population), (population, f"{population}_rec")]
    return Graph(tuple(nodes), T=graph.T, edges=tuple(edges))


@pytest.mark.parametrize("bias", [None, (2000, 1)])
def test_recurrent_populations_stream_bit_exact(bias):
    """A population reading its own previous spikes (RecurrentDense, silent at each sample's
    first step, so no spike crosses from one streamed sample to the next), in streaming and in
    per-sample runs."""
    rng = np.random.default_rng(21)
    layers = [Layer(6, -4, du=300, dv=100, vth=100, bias=bias), Layer(4, 0, du=100, dv=200, vth=8)]
    graph = with_recurrence(random_graph(rng, (1, 3, 3), 15, layers, T=7), "lif0", rng)
    images = rng.uniform(0, 1, (6, 1, 3, 3))
    streamed = run_on_lava(graph, images, probe=["lif0", "lif1"])
    assert_matches_reference(graph, images, streamed)
    per_sample = run_per_sample(graph, images[:2])
    np.testing.assert_array_equal(per_sample.output_spikes, streamed.output_spikes[:2])
    plain = simulate(random_graph(np.random.default_rng(21), (1, 3, 3), 15, layers, T=7), images)
    assert not np.array_equal(plain.output_window_spikes, streamed.output_spikes)


def test_trained_digits_network_streams_bit_exact(digits_checkpoint, digits):
    from quantize.pipeline import quantize_checkpoint

    graph = quantize_checkpoint(digits_checkpoint, digits, calibration=500, progress=False).graph
    images = digits.test.images[:40]
    result = run_on_lava(graph, images)
    ref = simulate(graph, images)
    assert result.steps == 40 * graph.T + len(graph.populations)
    np.testing.assert_array_equal(
        result.output_spikes, ref.output_spikes[..., output_window(graph)]
    )
    np.testing.assert_array_equal(result.predictions, ref.predictions)
    assert result.output_spikes.any()
    assert np.mean(result.predictions == digits.test.labels[:40]) > 0.5


def test_per_step_inputs_stream_bit_exact():
    """A different input frame at every step, through Lava's source, as the reference has it."""
    rng = np.random.default_rng(8)
    graph = conv_graph(rng, T=4)
    frames = rng.uniform(0, 1, (3, 4, 2, 7, 5))
    result = run_on_lava(graph, frames, probe=["lif0"])
    assert result.output_spikes.any()
    assert_matches_reference(graph, frames, result)
    static = run_on_lava(graph, frames[:, 0]).output_spikes
    assert not np.array_equal(static, result.output_spikes)


def test_lava_dls_tiny_net_streams_bit_exact():
    """lava-dl's tiny.net, read from its netx file (input neurons, biased convolutions)."""
    from graphs import LAVA_DL, tiny_sample

    from toolchain.io.netx_read import read_netx_graph

    graph = read_netx_graph(LAVA_DL / "tiny.net")
    images = tiny_sample() * np.array([1.0, 0.6, 0.3]).reshape(3, 1, 1, 1)
    result = run_on_lava(graph, images, probe=[p.name for p in graph.populations])
    assert result.output_spikes.any()
    assert_matches_reference(graph, images, result)


def test_loihi_target_needs_lava_loihi():
    rng = np.random.default_rng(6)
    graph = random_graph(rng, (1, 2, 2), 255, [Layer(2, 0, du=0, dv=0, vth=5)], T=3)
    with pytest.raises(LavaTargetUnavailable, match="lava-loihi") as error:
        run_on_lava(graph, rng.uniform(0, 1, (1, 1, 2, 2)), target="loihi")
    assert "lava.magma.core.model.nc" in str(error.value)
    assert "--target lava-sim" in str(error.value)
    with pytest.raises(ValueError, match="unknown Lava target"):
        run_on_lava(graph, rng.uniform(0, 1, (1, 1, 2, 2)), target="gpu")


def test_unlowered_or_float_graphs_are_refused():
    w = np.ones((2, 4))
    float_graph = Graph(
        (Input("in", (1, 2, 2)), Dense("fc", w), CubaLIF("out", 2.0, 2.0, 1.0)), T=3
    )
    with pytest.raises(GraphError, match="'fc'"):
        run_on_lava(float_graph, np.zeros((1, 1, 2, 2)))
    unlowered = Graph(
        (
            Input("in", (1, 2, 2)),
            Flatten("flat"),
            Dense("fc", w, w.astype(np.int32)),
            CubaLIF("out", 2.0, 2.0, 1.0, du=0, dv=0, vth=1, scale=1.0),
        ),
        T=3,
    )
    with pytest.raises(GraphError, match="'flat'"):
        run_on_lava(unlowered, np.zeros((1, 1, 2, 2)))


@pytest.fixture
def small_graph() -> Graph:
    rng = np.random.default_rng(7)
    return random_graph(rng, (1, 2, 3), 255, [Layer(4, -1, du=300, dv=200, vth=40)], T=10)


def test_bad_probe_name_is_refused_before_running(small_graph):
    with pytest.raises(GraphError, match="nope"):
        run_on_lava(small_graph, np.zeros((2, 1, 2, 3)), probe=["nope"])


def test_timeout_stops_lava_and_says_so(small_graph):
    started = time.perf_counter()
    with pytest.raises(LavaTimeout, match="timeout_s"):
        run_on_lava(small_graph, np.full((300, 1, 2, 3), 0.5), timeout_s=1e-3)
    assert time.perf_counter() - started < 20


def test_error_inside_a_process_model_stops_lava(small_graph, monkeypatch):
    from lava.proc.lif.models import PyLifResetModelBitAcc

    def broken(self):
        raise ValueError("injected")

    monkeypatch.setattr(PyLifResetModelBitAcc, "run_spk", broken)  # forked into the children
    with pytest.raises(RuntimeError, match="injected"):
        run_on_lava(small_graph, np.zeros((2, 1, 2, 3)), timeout_s=30)


def test_interrupt_while_running_stops_lava(small_graph, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "samples_finished", interrupt)  # after the first chunk has run
    with pytest.raises(KeyboardInterrupt):
        run_on_lava(small_graph, np.zeros((2, 1, 2, 3)))


def test_an_interrupt_while_lava_stops_waits_for_the_stop(small_graph, monkeypatch):
    """Cut short, the stop would leave Lava's processes and shared memory behind (the autouse
    fixture checks the memory)."""
    processes, stopped = [], []
    shutdown = session._shutdown
    # a shell starts background jobs with SIGINT ignored, which Python then keeps: Ctrl-C's
    # handler, as in a terminal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupted_shutdown(process, *args):
        processes.append(process)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, or the worker pool stopping a worker
        shutdown(process, *args)
        stopped.append(not process.runtime._is_started)

    monkeypatch.setattr(session, "_shutdown", interrupted_shutdown)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_on_lava(small_graph, np.zeros((2, 1, 2, 3)))
        assert stopped == [True]
    finally:
        signal.signal(signal.SIGINT, previous)
        if not stopped:  # stop what the interrupted stop left, so that the test fails, not hangs
            shutdown(processes[0])


def test_worker_shards_resume_and_equal_one_runtime(small_graph, tmp_path):
    images = np.random.default_rng(3).random((9, 1, 2, 3))
    single = run_on_lava(small_graph, images)
    assert single.output_spikes.sum() > 0
    first = run_on_lava_workers(small_graph, images, workers=2, shard_size=4, shard_dir=tmp_path)
    np.testing.assert_array_equal(first.output_spikes, single.output_spikes)
    shards = sorted(p.name for p in tmp_path.glob("shard-*.npz"))
    assert shards == [
        "shard-000000-000004.npz",
        "shard-000004-000008.npz",
        "shard-000008-000009.npz",
    ]
    (tmp_path / shards[1]).unlink()
    again = run_on_lava_workers(small_graph, images, workers=2, shard_size=4, shard_dir=tmp_path)
    np.testing.assert_array_equal(again.output_spikes, single.output_spikes)
    assert again.steps == 4 * small_graph.T + 1, "only the missing shard ran"


def test_a_shard_of_another_run_is_refused(small_graph, tmp_path):
    images = np.random.default_rng(3).random((4, 1, 2, 3))
    np.savez(tmp_path / "shard-000000-000004.npz", output_spikes=np.zeros((4, 4, 10)), graph="x")
    with pytest.raises(ValueError, match="shard-000000-000004.npz: holds samples of another run"):
        run_on_lava_workers(small_graph, images, workers=1, shard_size=4, shard_dir=tmp_path)


def test_a_worker_error_names_its_samples(small_graph, monkeypatch):
    from lava.proc.lif.models import PyLifResetModelBitAcc

    def broken(self):
        raise ValueError("injected")

    monkeypatch.setattr(PyLifResetModelBitAcc, "run_spk", broken)
    with pytest.raises(RuntimeError, match=r"Lava worker, samples [02]\.\.[13]: .*injected"):
        run_on_lava_workers(small_graph, np.zeros((4, 1, 2, 3)), workers=2)
