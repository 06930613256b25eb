"""Populations that reset by subtraction: the node's rules, the float runner against an
independent recurrence, the quantiser's integer, and netx's refusal. (Lava against the
reference simulator: test_reference_vs_lava.py and test_lava_deploy.py; snnTorch's own
spikes: test_nir_import.py.)"""

import numpy as np
import pytest
import torch

from quantize.scales import quantize_graph
from targets.loihi2.netx import NetxExportError, save_netx
from toolchain.ir import CubaLIF, Dense, Graph, GraphError, Input
from toolchain.ir.float_runner import run_float


def one_layer(reset_subtract: float | None, tau_m: float = 4.0, tau_s: float = 2.0) -> Graph:
    weight = np.random.default_rng(0).uniform(-0.6, 1.0, (5, 6))
    nodes = (
        Input("in", (6, 1, 1)),
        Dense("fc", weight),
        CubaLIF("lif", tau_m, tau_s, 1.0, reset_subtract=reset_subtract),
    )
    return Graph(nodes, T=15)


def recurrence(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The neuron of toolchain.ir.nodes written out step by step in numpy: (N, 5, T)."""
    weight, lif = graph.nodes[1].weight, graph.nodes[2]
    drive = x.reshape(len(x), -1) @ weight.T
    i = u = np.zeros_like(drive)
    spikes = []
    for _ in range(graph.T):
        i = (1 - 1 / lif.tau_s) * i + drive / lif.tau_s
        u = (1 - 1 / lif.tau_m) * u + i
        s = u > lif.threshold
        u = u - lif.reset_subtract * s if lif.reset_subtract else np.where(s, 0.0, u)
        spikes.append(s)
    return np.stack(spikes, -1).astype(np.uint8)


@pytest.mark.parametrize("reset_subtract", [None, 1.0, 2.5])
def test_float_runner_follows_the_recurrence(reset_subtract):
    graph = one_layer(reset_subtract)
    x = np.random.default_rng(1).random((20, 6, 1, 1))
    spikes = run_float(graph, x, dtype=torch.float64).spikes["lif"]
    np.testing.assert_array_equal(spikes, recurrence(graph, x))
    assert 0.1 < spikes.mean() < 0.9


def test_the_reset_changes_the_spikes():
    x = np.random.default_rng(1).random((20, 6, 1, 1))
    runs = [run_float(one_layer(r), x).spikes["lif"] for r in (None, 1.0, 2.5)]
    assert not np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[1], runs[2])


def test_the_quantiser_scales_the_subtracted_amount():
    x = np.random.default_rng(2).random((30, 6, 1, 1))
    fixed, _ = quantize_graph(one_layer(1.5), x)
    lif = fixed.populations[0]
    assert lif.reset_sub == round(lif.scale * 1.5) and lif.reset_subtract == 1.5
    assert quantize_graph(one_layer(None), x)[0].populations[0].reset_sub is None


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"reset_subtract": -1.0}, "reset_subtract=-1.0 must be positive"),
        ({"reset_subtract": float("nan")}, "reset_subtract=nan must be positive"),
        ({"reset_sub": 100}, "reset_sub is set exactly when"),
        ({"reset_subtract": 1.0, "du": 1, "dv": 1, "vth": 10, "scale": 1.0}, "reset_sub is set"),
        (
            {"reset_subtract": 1.0, "reset_sub": 0, "du": 1, "dv": 1, "vth": 10, "scale": 1.0},
            r"reset_sub=0 is outside \[1, 8388607\]",
        ),
    ],
)
def test_bad_reset_fields_are_refused_by_name(fields, message):
    with pytest.raises(GraphError, match=f"node 'lif': {message}"):
        CubaLIF("lif", 4.0, 2.0, 1.0, **fields)


def test_netx_refuses_subtraction(tmp_path):
    x = np.random.default_rng(2).random((30, 6, 1, 1))
    fixed, _ = quantize_graph(one_layer(1.5), x)
    with pytest.raises(NetxExportError, match="node 'lif': resets by subtraction"):
        save_netx(fixed, tmp_path / "x.net")
    assert list(tmp_path.iterdir()) == []
