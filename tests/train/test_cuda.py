"""Training on a GPU (`snn-deploy train --device cuda`): TSSL-BP and BPTT give on CUDA what they
give on the CPU. Skipped where torch sees no CUDA device (CI never has one); run on a GPU machine
with `python -m pytest tests/test_cuda.py`."""

import numpy as np
import pytest
import torch
from conftest import ROOT

from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import load_config
from toolchain.train.loop import train
from toolchain.train.methods import MODES, spiking_forward
from toolchain.train.to_graph import graph_from_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def currents(device: str) -> torch.Tensor:
    """Random float64 currents (neurons, T) with silent neurons and last-step spikes."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 1.5, (2000, 8))
    x[:100] = -1.0  # silent
    x[100:200, :-1], x[100:200, -1] = 0.0, 5.0  # a spike at the last step only
    return torch.tensor(x, device=device, requires_grad=True)


@pytest.mark.parametrize("method, mode", [*(("tsslbp", m) for m in MODES), ("bptt", "final")])
def test_forward_and_backward_on_cuda_equal_the_cpu(method, mode):
    forward = spiking_forward(method, mode)
    grads, outputs = [], []
    for device in ("cpu", "cuda"):
        current = currents(device)
        psp, spikes = forward(current, tau_m=5.0, tau_s=3.0, threshold=1.0)
        weights = torch.linspace(-1, 1, psp.numel(), dtype=psp.dtype, device=device)
        (psp.flatten() * weights).sum().backward()
        outputs.append((psp.detach().cpu(), spikes.detach().cpu()))
        grads.append(current.grad.cpu())
    assert torch.equal(outputs[0][1], outputs[1][1])
    torch.testing.assert_close(outputs[1][0], outputs[0][0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)
    assert grads[0].abs().sum() > 0


def test_training_on_cuda_learns_as_on_the_cpu(tmp_path, digits):
    """Float32 sums run in another order on the GPU, so the runs drift apart a little; both
    learn, and the GPU's checkpoint loads and deploys on a machine without one."""
    config = load_config(ROOT / "examples" / "digits_mlp.toml").with_epochs(8)
    runs = {
        device: train(config, tmp_path / device, dataset=digits, progress=False, device=device)
        for device in ("cpu", "cuda")
    }
    cpu, cuda = runs["cpu"].test_accuracy, runs["cuda"].test_accuracy
    assert cuda > 0.85 and abs(cuda - cpu) < 0.03
    checkpoint = Checkpoint.load(runs["cuda"].checkpoint)
    assert all(t.device.type == "cpu" for t in checkpoint.model.values())
    assert graph_from_checkpoint(checkpoint).populations


@pytest.mark.parametrize("name", ["mlp", "convnet", "mnist-cnn"])
def test_the_simulators_torch_backend_on_cuda_equals_the_cpu(name):
    """The fixed-point simulator's torch backend on the GPU gives the numpy path's integers:
    every window's spikes, u and v, the predictions and the counts."""
    from graphs import convnet, mlp

    from targets.loihi2.simulator import simulate
    from targets.loihi2.timing import population_window
    from toolchain.io import read_graph

    graph = {
        "mlp": mlp,
        "convnet": convnet,
        "mnist-cnn": lambda: read_graph(ROOT / "examples/pretrained/mnist_cnn/fixed.onnx"),
    }[name]()
    rng = np.random.default_rng(1)
    levels = graph.input.levels
    images = rng.integers(0, levels + 1, (64, *graph.input.image_shape)) / levels
    options = {"record": True, "record_states": True}
    cpu = simulate(graph, images, **options)
    gpu = simulate(graph, images, **options, backend="torch", device="cuda")
    for i, population in enumerate(graph.populations):
        window, key = population_window(graph, i), population.name
        for field in ("spikes", "currents", "voltages_before_reset"):
            ours, theirs = getattr(gpu, field)[key], getattr(cpu, field)[key]
            np.testing.assert_array_equal(ours[..., window], theirs[..., window])
    np.testing.assert_array_equal(gpu.predictions, cpu.predictions)
    assert gpu.spike_counts == cpu.spike_counts
