"""Our netx exports on the real lava-dl 0.6.0: `netx.hdf5.Network` loads each file as its root
attribute `load_with` says, is fed graded spikes as `input_payload` says, and computes on Lava
(fixed point) every layer's spikes, currents and voltages in each layer's window exactly as our
reference simulator does, one sample per run and several samples back to back in one run: the
MLP and the CNN (rectangular strides and padding) of tests/test_netx.py, the digits network
trained and quantised with --netx through the command line, the MNIST MLP after an epoch and the
shipped MNIST CNN, both quantised with --netx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from graphs import convnet, mlp, replace_node
from graphs import netx_lif as lif
from netx_runner import (
    assert_netx_equals_ours,
    load_with,
    requires_lava_dl,
    root_attribute,
    run_netx,
)

from targets.loihi2.simulator import simulate
from targets.loihi2.stream import input_payload
from targets.loihi2.timing import steps_for
from toolchain.cli import main
from toolchain.data.datasets import load_dataset
from toolchain.io import read_graph
from toolchain.io.netx_write import save_netx
from toolchain.ir import Dense, Graph

pytestmark = [pytest.mark.interop, requires_lava_dl]

ROOT = Path(__file__).resolve().parents[2]
STREAM = 5  # samples back to back in one run
PER_RUN = 2  # samples run one per run


def spiking_mlp() -> Graph:
    """tests/test_netx.py's MLP, whose second layer never reaches its threshold, with one that
    it reaches (its first layer's currents wrap and its voltages saturate, on Lava as here)."""
    return replace_node(mlp(), 4, lif("lif2", du=4095, dv=0, vth=50))


@pytest.fixture(scope="module")
def digits_net(tmp_path_factory) -> Path:
    """The README's chain: train the shipped digits config, quantise with --netx, export."""
    out = tmp_path_factory.mktemp("digits")
    config = ROOT / "examples" / "digits_mlp.toml"
    commands = [
        ["train", "--config", str(config), "--out", str(out), "--quiet"],
        ["quantize", str(out / "checkpoint.pt"), "--out", str(out / "netx.onnx"), "--netx"],
        ["export", str(out / "netx.onnx"), "--format", "netx", "--out", str(out / "digits.net")],
    ]
    for command in commands:
        assert main(command) == 0, command
    return out / "digits.net"


def quantised_for_netx(out: Path, checkpoint: Path) -> Path:
    """`quantize --netx` then `export --format netx` of a checkpoint, through the command line."""
    commands = [
        ["quantize", str(checkpoint), "--out", str(out / "netx.onnx"), "--netx", "--quiet"],
        ["export", str(out / "netx.onnx"), "--format", "netx", "--out", str(out / "net.net")],
    ]
    for command in commands:
        assert main(command) == 0, command
    return out / "net.net"


@pytest.fixture(scope="module")
def mnist_mlp_net(tmp_path_factory) -> Path:
    """The MNIST MLP config trained for one epoch (enough to spike like a trained network)."""
    out = tmp_path_factory.mktemp("mnist-mlp")
    config = ROOT / "examples" / "mnist_mlp.toml"
    assert (
        main(["train", "--config", str(config), "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    )
    return quantised_for_netx(out, out / "checkpoint.pt")


@pytest.fixture(scope="module")
def mnist_cnn_net(tmp_path_factory) -> Path:
    """The shipped MNIST CNN (examples/pretrained/mnist_cnn/model.pt)."""
    out = tmp_path_factory.mktemp("mnist-cnn")
    return quantised_for_netx(out, ROOT / "examples" / "pretrained" / "mnist_cnn" / "model.pt")


@pytest.fixture(params=["mlp", "convnet", "digits", "mnist-mlp", "mnist-cnn"])
def exported(request, tmp_path) -> tuple[Path, Graph, np.ndarray]:
    """A netx file we wrote, the graph it holds and STREAM images for it."""
    if request.param == "digits":
        path = request.getfixturevalue("digits_net")
        images = request.getfixturevalue("digits").test.images[:STREAM]
        return path, read_graph(path.with_name("netx.onnx")), images
    if request.param.startswith("mnist"):
        path = request.getfixturevalue(f"{request.param.replace('-', '_')}_net")
        images = load_dataset("mnist").test.images[:STREAM]
        return path, read_graph(path.with_name("netx.onnx")), images
    graph = {"mlp": spiking_mlp, "convnet": convnet}[request.param]()
    images = np.random.default_rng(3).random((STREAM, *graph.input.shape))
    return save_netx(graph, tmp_path / f"{request.param}.net"), graph, images


def netx_payload(graph: Graph, images: np.ndarray, steps: int) -> np.ndarray:
    """`input_payload` for `net.inp`: round(x * levels) at every step of its sample, 0 after,
    laid out (W, H, C) before a conv and flattened in (C, H, W) order before a dense layer."""
    payload = input_payload(graph, images)
    if isinstance(graph.nodes[1], Dense):
        per_sample = payload.reshape(len(payload), -1)
    else:
        per_sample = payload.transpose(0, 3, 2, 1)
    out = np.zeros((*per_sample.shape[1:], steps), dtype=np.int64)
    for w, frame in enumerate(per_sample):
        out[..., w * graph.T : (w + 1) * graph.T] = frame[..., None]
    return out


def check(path: Path, graph: Graph, images: np.ndarray, out_dir: Path) -> None:
    network = load_with(path)
    bits = int(graph.input.levels).bit_length()
    assert network == {"input_message_bits": bits, "reset_interval": graph.T, "reset_offset": 1}
    c, h, w = graph.input.shape
    text = root_attribute(path, "input_payload")
    layout = (
        f"flattened in (C, H, W) order, {c * h * w} values"
        if isinstance(graph.nodes[1], Dense)
        else f"(W, H, C) = ({w}, {h}, {c})"
    )
    assert f"round(x * {graph.input.levels})" in text and layout in text
    steps = steps_for(len(images), graph.T, len(graph.populations))
    out_dir.mkdir()
    theirs = run_netx(path, steps, network, out_dir, payload=netx_payload(graph, images, steps))
    ours = simulate(graph, images, record=True, record_states=True)
    assert assert_netx_equals_ours(graph, ours, theirs, shift=0) > 0
    assert ours.output_window_spikes.sum(axis=(1, 2)).all()  # every sample reaches the output


def test_one_sample_per_run(exported, tmp_path):
    path, graph, images = exported
    for w in range(PER_RUN):
        check(path, graph, images[w : w + 1], tmp_path / f"sample{w}")


@pytest.mark.conformance(
    "lava-dl netx",
    {
        "mlp": "LIF",
        "digits": "LIF",
        "mnist-mlp": "LIF",
        "convnet": "convolution",
        "mnist-cnn": "convolution",
    },
    "round trip",
)
def test_samples_streamed_in_one_run(exported, tmp_path):
    path, graph, images = exported
    check(path, graph, images, tmp_path / "stream")
