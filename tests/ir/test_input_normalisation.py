"""Input normalisation, (x - mean) / std before the first layer: the config, the fold into the
first synapse with a constant input plane, and that plane through every runner and file format
(float runner = the trained network; reference simulator = Lava; ONNX and netx keep it; NIR
carries it as the first population's synaptic bias)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import ROOT

from quantize.scales import quantize_graph
from targets.loihi2.simulator import simulate
from targets.loihi2.stream import input_payload
from toolchain.io import read_graph, save_onnx
from toolchain.io.netx_read import read_netx_graph
from toolchain.io.netx_write import how_to_run, save_netx
from toolchain.io.nir_read import read_nir
from toolchain.io.nir_write import NirExportError, save_nir
from toolchain.ir import CubaLIF, Dense, Flatten, Graph, GraphError, Input, SumPool2d
from toolchain.ir.float_runner import run_float
from toolchain.ir.lowering import lower
from toolchain.train.config import Config, ConfigError, InputConfig, load_config
from toolchain.train.network import SpikingNetwork
from toolchain.train.to_graph import graph_from_model

NORMALISED = InputConfig(mean=0.1307, std=0.3081)


def network(layers: list[dict], norm: InputConfig, seed: int = 0) -> SpikingNetwork:
    base = load_config(ROOT / "examples" / "digits_mlp.toml").to_dict()
    config = Config.from_dict({**base, "layers": layers, "input": dataclasses.asdict(norm)})
    torch.manual_seed(seed)
    model = SpikingNetwork(config, (1, 8, 8)).double()
    for layer in model.layers:
        if hasattr(layer, "weight") and isinstance(layer.weight, torch.nn.Parameter):
            layer.weight.data *= 3.0  # enough drive that most neurons spike sometimes
    return model.eval()


CONV_FIRST = [
    {"type": "conv", "out": 4, "kernel": 3, "padding": 1},
    {"type": "pool"},
    {"type": "dense", "out": 10},
]
DENSE_FIRST = [{"type": "dense", "out": 20}, {"type": "dense", "out": 10}]


@pytest.mark.parametrize("layers", [CONV_FIRST, DENSE_FIRST], ids=["conv", "dense"])
@pytest.mark.parametrize("norm", [NORMALISED, InputConfig(std=0.5)], ids=["offset", "scale"])
def test_the_float_graph_spikes_as_the_normalised_network(layers, norm, digits):
    """The fold w (x - m)/s = (w/s) x - (m/s) w 1, padding included, gives the trained
    network's own spikes in every layer."""
    model = network(layers, norm)
    graph = graph_from_model(model)
    assert graph.input.constant_plane == (norm.mean != 0)
    assert graph.input.image_shape == (1, 8, 8)
    images = digits.test.images[:60].astype(np.float64)
    with torch.no_grad():
        _, trained = model(torch.from_numpy(images), return_spikes=True)
    ran = run_float(graph, images, dtype=torch.float64)
    for expected, population in zip(trained, graph.populations, strict=True):
        np.testing.assert_array_equal(ran.spikes[population.name], expected.numpy())
    assert 0.05 < trained[0].mean() < 0.95


def test_without_normalisation_the_graph_has_no_plane():
    graph = graph_from_model(network(DENSE_FIRST, InputConfig()))
    assert not graph.input.constant_plane and graph.input.shape == (1, 8, 8)


@pytest.fixture(scope="module")
def fixed_conv(digits):
    graph = lower(graph_from_model(network(CONV_FIRST, NORMALISED)))
    fixed, _ = quantize_graph(graph, digits.train.images[:200])
    return fixed


def test_the_plane_is_sent_as_full_scale_graded_spikes(fixed_conv, digits):
    images = digits.test.images[:3]
    payload = input_payload(fixed_conv, images)
    levels = fixed_conv.input.levels
    assert payload.shape == (3, 2, 8, 8)
    assert (payload[:, 1] == levels).all()
    np.testing.assert_array_equal(payload[:, 0], np.rint(images[:, 0] * levels))


def test_the_quantised_network_keeps_the_float_predictions(fixed_conv, digits):
    float_graph = graph_from_model(network(CONV_FIRST, NORMALISED))
    images = digits.test.images[:200]
    fixed = simulate(fixed_conv, images).predictions
    agreement = np.mean(fixed == run_float(float_graph, images).predictions)
    assert agreement > 0.9


def test_lava_streams_the_plane_bit_exactly(fixed_conv, digits):
    from lava_checks import assert_matches_reference

    from targets.loihi2.lava.runner import run_on_lava

    images = digits.test.images[:5]
    populations = [p.name for p in fixed_conv.populations]
    result = run_on_lava(fixed_conv, images, probe=populations)
    assert result.output_spikes.any()
    assert_matches_reference(fixed_conv, images, result)


def test_onnx_and_netx_keep_the_plane(fixed_conv, tmp_path, digits):
    save_onnx(fixed_conv, tmp_path / "fixed.onnx")
    back = read_graph(tmp_path / "fixed.onnx")
    assert back.input.constant_plane and back.input.shape == (2, 8, 8)
    images = digits.test.images[:20]
    np.testing.assert_array_equal(
        simulate(back, images).output_spikes, simulate(fixed_conv, images).output_spikes
    )
    netx = read_netx_graph(save_netx(fixed_conv, tmp_path / "fixed.net"))
    assert netx.input.shape == (2, 8, 8)
    assert "constant plane" in how_to_run(fixed_conv, "fixed.net")["input_payload"]


UNPADDED_CONV_FIRST = [{**CONV_FIRST[0], "padding": 0}, *CONV_FIRST[1:]]


@pytest.mark.parametrize("layers", [UNPADDED_CONV_FIRST, DENSE_FIRST], ids=["conv", "dense"])
def test_nir_export_carries_the_plane_as_the_first_synaptic_bias(tmp_path, digits, layers):
    """NIR cannot state the plane: the file's first synapse has the plane's weights summed as
    its bias (into the first population's synaptic filter), and reads back to every spike."""
    graph = graph_from_model(network(layers, NORMALISED))
    save_nir(graph, tmp_path / "model.nir")
    back = read_nir(tmp_path / "model.nir")
    assert not back.input.constant_plane and back.input.shape == (1, 8, 8)
    assert np.any(back.populations[0].synaptic_bias)
    images = digits.test.images[:50]
    ours = run_float(graph, images, dtype=torch.float64).spikes
    theirs = run_float(back, images, dtype=torch.float64).spikes
    for name, spikes in ours.items():
        np.testing.assert_array_equal(theirs[name], spikes)
        assert spikes.any()


def test_nir_export_refuses_the_plane_through_padding_or_pooling(tmp_path):
    graph = graph_from_model(network(CONV_FIRST, NORMALISED))
    with pytest.raises(NirExportError, match="constant plane passes a padded convolution"):
        save_nir(graph, tmp_path / "model.nir")
    pooled_first = Graph(
        (
            Input("in", (2, 8, 8), constant_plane=True),
            SumPool2d("pool", 2),
            Flatten("flat"),
            Dense("fc", np.ones((3, 32))),
            CubaLIF("lif", 4.0, 2.0, 1.0),
        ),
        T=4,
    )
    with pytest.raises(NirExportError, match="node 'fc': an input normalisation's plane is"):
        save_nir(pooled_first, tmp_path / "model.nir")
    assert not (tmp_path / "model.nir").exists()


def test_the_config_checks_the_normalisation():
    base = load_config(ROOT / "examples" / "digits_mlp.toml").to_dict()
    with pytest.raises(ConfigError, match="input.std=0"):
        Config.from_dict({**base, "input": {"mean": 0.1, "std": 0}})
    with pytest.raises(ConfigError, match="input: unknown keys"):
        Config.from_dict({**base, "input": {"offset": 0.1}})
    pool_first = [{"type": "pool"}, *CONV_FIRST]
    with pytest.raises(ConfigError, match="first layer .* must be conv or dense, not pool"):
        Config.from_dict({**base, "layers": pool_first, "input": {"mean": 0.1}})
    assert Config.from_dict(base).input.is_identity  # configs written before [input] load


def test_an_input_node_checks_its_plane(digits):
    with pytest.raises(GraphError, match="a constant plane needs an image channel too"):
        Input("in", (1, 8, 8), constant_plane=True)
    with pytest.raises(GraphError, match="constant_plane=1 must be true or false"):
        Input("in", (2, 8, 8), constant_plane=1)
    graph = graph_from_model(network(CONV_FIRST, NORMALISED))
    with pytest.raises(
        ValueError, match=r"expected \(N, \*\(1, 8, 8\)\) or \(N, 5, \*\(1, 8, 8\)\)"
    ):
        input_payload(graph, np.zeros((2, 2, 8, 8)))  # the plane is the runners' to add
