"""Networks whose neurons each have their own time constants and thresholds, drawn at random as
training leaves them, built in each library and exported by its own exporter: the imported
graph gives the library's own spikes (float64), quantises with one voltage scale per population
(per-neuron du, dv, vth and reset amounts), and runs on Lava (`LIFVariant`) equal to the
reference simulator on every spike. SpikingJelly's neurons hold one time constant and threshold
per layer (its `BaseNode` asserts a float threshold), so its network draws them per layer."""

import nir
import numpy as np
import pytest
import torch
from nir_networks import (
    T,
    dense,
    norse_export,
    norse_run,
    ours,
    rockpool_linear,
    sinabs_run_and_export,
    snntorch_run_and_export,
    spikingjelly_run_and_export,
    static_input,
)

from quantize.scales import quantize_graph
from targets.loihi2.plan import needs_variant
from targets.loihi2.simulator import simulate
from toolchain.io import load_onnx, save_onnx
from toolchain.io.nir_read import read_nir
from toolchain.io.nir_write import save_nir
from toolchain.ir import Graph
from toolchain.ir.float_runner import run_float
from toolchain.ir.lowering import lower


def drawn(low: float, high: float, n: int, seed: int) -> torch.Tensor:
    """n values in [low, high), float32 as the libraries keep their parameters."""
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, generator=generator)


def deploys_bit_exact(path, convention: str, n_in: int, tmp_path) -> Graph:
    """The imported float graph quantised on random inputs; Lava equals the reference on every
    output spike (or count), the float graph agrees with most, and the fixed graph survives an
    ONNX round trip. Returns the fixed graph."""
    import targets.loihi2.lava  # noqa: F401
    from targets.loihi2.lava.runner import run_on_lava

    graph = lower(read_nir(path, convention=convention, steps=T))
    images = np.random.default_rng(5).random((6, n_in, 1, 1)).astype(np.float32)
    fixed, _ = quantize_graph(graph, images)
    assert all(needs_variant(p) for p in fixed.populations if p.per_neuron)
    reference = simulate(fixed, images)
    assert reference.output_window_spikes.any()
    lava = run_on_lava(fixed, images)
    np.testing.assert_array_equal(lava.output_spikes, reference.output_window_spikes)
    floating = run_float(graph, images).spikes[graph.populations[-1].name]
    assert (floating == reference.output_window_spikes).mean() > 0.9
    save_onnx(fixed, tmp_path / "fixed.onnx")
    assert load_onnx(tmp_path / "fixed.onnx") == fixed
    return fixed


def per_neuron_fields(path, convention: str) -> list[tuple[str, ...]]:
    return [p.per_neuron for p in read_nir(path, convention=convention).populations]


@pytest.mark.conformance(
    "snnTorch", "per-neuron parameters", "own spikes", "quantises", "Lava bit-exact"
)
@pytest.mark.conformance("ONNX", "per-neuron parameters", "round trip")
def test_snntorch_leaky_and_synaptic_per_neuron(tmp_path):
    import snntorch as snn

    net = torch.nn.Sequential(
        dense(6, 8, seed=1, gain=2.0),
        snn.Leaky(
            beta=drawn(0.45, 0.95, 8, 1),
            threshold=drawn(0.3, 1.1, 8, 2),
            reset_mechanism="subtract",
            init_hidden=True,
        ),
        dense(8, 5, seed=2, gain=2.0),
        snn.Synaptic(
            alpha=drawn(0.2, 0.8, 5, 3),
            beta=drawn(0.45, 0.95, 5, 4),
            threshold=drawn(0.3, 1.1, 5, 5),
            init_hidden=True,
        ),
    )
    x, path = static_input((6,), seed=2), tmp_path / "net.nir"
    theirs = snntorch_run_and_export(net, x, path)
    assert 0.05 < theirs.mean() < 0.95
    np.testing.assert_array_equal(ours(path, x, convention="snntorch"), theirs)
    assert per_neuron_fields(path, "snntorch") == [
        ("tau_m", "reset_subtract"),  # the late subtraction, 1 / beta per neuron
        ("tau_m", "tau_s", "reset_subtract"),
    ]
    fixed = deploys_bit_exact(path, "snntorch", 6, tmp_path)
    assert fixed.populations[1].per_neuron == (
        "tau_m",
        "tau_s",
        "reset_subtract",
        *"du dv".split(),
        "reset_sub",
    )


@pytest.mark.conformance(
    "Norse", "per-neuron parameters", "own spikes", "quantises", "Lava bit-exact"
)
def test_norse_lif_cells_per_neuron(tmp_path):
    import norse.torch as norse

    def cell(n: int, seed: int):
        p = norse.LIFParameters(
            tau_mem_inv=drawn(100, 300, n, seed),
            tau_syn_inv=drawn(150, 450, n, seed + 1),
            v_th=drawn(0.2, 0.6, n, seed + 2),
            v_leak=torch.zeros(n),
        )
        return norse.LIFCell(p, dt=1e-3)

    net = norse.SequentialState(
        dense(6, 8, 3, 3.0, 0.2), cell(8, 10), dense(8, 4, 4, 3.0, 0.2), cell(4, 20)
    )
    x, path = static_input((6,), seed=1), tmp_path / "net.nir"
    theirs = norse_run(net, torch.from_numpy(x), T)[:, 0].numpy()
    assert 0.05 < theirs.mean() < 0.95
    norse_export(net, x, path)
    np.testing.assert_array_equal(ours(path, x, convention="norse"), theirs)
    assert per_neuron_fields(path, "norse") == [("tau_m", "tau_s")] * 2
    deploys_bit_exact(path, "norse", 6, tmp_path)


@pytest.mark.conformance(
    "Sinabs", "per-neuron parameters", "own spikes", "quantises", "Lava bit-exact"
)
def test_sinabs_lif_per_neuron_counts(tmp_path):
    import sinabs.layers as sl

    def lif(n: int, seed: int):
        return sl.LIFSqueeze(
            tau_mem=drawn(2.0, 8.0, n, seed), spike_threshold=drawn(0.3, 0.8, n, seed + 1),
            batch_size=1,
        )  # fmt: skip

    net = torch.nn.Sequential(
        dense(6, 8, seed=1, gain=4.0, shift=1.5), lif(8, 30),
        dense(8, 4, seed=2, gain=2.0, shift=0.5), lif(4, 40),
    )  # fmt: skip
    x, path = static_input((6,)), tmp_path / "net.nir"
    theirs = sinabs_run_and_export(net, x, path)
    assert theirs.max() >= 2
    np.testing.assert_array_equal(ours(path, x, convention="sinabs"), theirs)
    assert per_neuron_fields(path, "sinabs") == [("tau_m",)] * 2
    deploys_bit_exact(path, "sinabs", 6, tmp_path)


@pytest.mark.conformance(
    "Rockpool", "per-neuron parameters", "own spikes", "quantises", "Lava bit-exact"
)
def test_rockpool_lif_per_neuron(tmp_path):
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, to_nir

    def lif(n: int, seed: int):
        return LIFTorch(
            n,
            tau_mem=drawn(0.005, 0.03, n, seed),
            tau_syn=drawn(0.003, 0.008, n, seed + 1),
            threshold=drawn(0.5, 1.5, n, seed + 2),
        )

    net = Sequential(
        rockpool_linear(6, 8, seed=1, gain=1.0, shift=0.3), lif(8, 50),
        rockpool_linear(8, 4, seed=2, gain=0.5, shift=0.15), lif(4, 60),
    )  # fmt: skip
    x, path = static_input((6,)), tmp_path / "net.nir"
    with torch.no_grad():
        out, _, _ = net(torch.from_numpy(np.repeat(x[:, None], T, axis=1)))
    theirs = out[0].numpy()
    assert theirs.max() >= 2
    nir.write(path, to_nir(net))
    np.testing.assert_array_equal(ours(path, x, convention="rockpool"), theirs)
    assert per_neuron_fields(path, "rockpool") == [("tau_m", "tau_s")] * 2
    deploys_bit_exact(path, "rockpool", 6, tmp_path)


@pytest.mark.conformance(
    "SpikingJelly",
    "per-neuron parameters",
    absent="its neurons hold one time constant and threshold per layer (BaseNode asserts a "
    "float threshold); a different one in every layer imports, quantises and runs on Lava",
)
@pytest.mark.conformance("SpikingJelly", "LIF", "own spikes", "quantises", "Lava bit-exact")
@pytest.mark.parametrize("kind", ["LIFNode", "ParametricLIFNode"])
def test_spikingjelly_time_constants_and_thresholds_per_layer(tmp_path, kind):
    from spikingjelly.activation_based import neuron

    def make(tau: float, threshold: float):
        if kind == "LIFNode":
            return neuron.LIFNode(tau=tau, v_threshold=threshold)
        return neuron.ParametricLIFNode(init_tau=tau, v_threshold=threshold)

    net = torch.nn.Sequential(
        dense(6, 8, 5, 1.5, 0.2), make(2.3, 0.37), dense(8, 4, 6, 1.5, 0.2), make(3.7, 0.61)
    )
    x, path = static_input((6,), seed=2), tmp_path / "net.nir"
    theirs = spikingjelly_run_and_export(net, x, path)
    assert 0.05 < theirs.mean() < 0.95
    np.testing.assert_array_equal(ours(path, x, convention="spikingjelly"), theirs)
    deploys_bit_exact(path, "spikingjelly", 6, tmp_path)


@pytest.mark.conformance("NIR", "per-neuron parameters", "round trip")
def test_per_neuron_parameters_round_trip_through_our_nir(tmp_path):
    """A per-neuron graph written by our NIR writer reads back to the same spikes."""
    import snntorch as snn

    net = torch.nn.Sequential(
        dense(6, 8, seed=1, gain=2.0),
        snn.Leaky(beta=drawn(0.45, 0.95, 8, 7), threshold=drawn(0.3, 1.1, 8, 8), init_hidden=True,
                  reset_mechanism="zero"),
    )  # fmt: skip
    x, path = static_input((6,), seed=2), tmp_path / "net.nir"
    theirs = snntorch_run_and_export(net, x, path)
    graph = read_nir(path, convention="snntorch", reset="zero", steps=T)
    assert graph.populations[0].per_neuron == ("tau_m",)
    save_nir(graph, tmp_path / "ours.nir")
    np.testing.assert_array_equal(ours(tmp_path / "ours.nir", x), theirs)
