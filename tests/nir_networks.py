"""Helpers of the NIR import tests: small random networks in any library's layers, static
inputs, and our float runner's output spikes for an imported file."""

from pathlib import Path

import numpy as np
import torch

from toolchain.io.nir_read import read_nir
from toolchain.ir.float_runner import run_float

T = 12
SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "nir-paper"


def full(value: float, *shape: int) -> torch.Tensor:
    return torch.full(shape, float(value))


def dense(n_in, n_out, seed: int, gain=1.0, shift=0.2, layer=torch.nn.Linear, bias=False):
    """Random weights (leaning positive by `shift`, so that layers fire); the bias zeroed
    unless asked for."""
    torch.manual_seed(seed)
    synapse = layer(n_in, n_out)
    with torch.no_grad():
        synapse.weight.mul_(gain).add_(shift)
        if not bias:
            synapse.bias.zero_()
    return synapse


def conv(c_in: int, c_out: int, seed: int, gain: float = 1.0, layer=torch.nn.Conv2d, bias=False):
    torch.manual_seed(seed)
    synapse = layer(c_in, c_out, 3, padding=1)
    with torch.no_grad():
        synapse.weight.mul_(gain).add_(0.05)
        if not bias:
            synapse.bias.zero_()
    return synapse


def static_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, *shape)).astype(np.float32)


def ours(path: Path, x: np.ndarray, **conventions) -> np.ndarray:
    """Our float runner's output spikes (T, *out) for the static input x (1, *shape)."""
    graph = read_nir(path, steps=T, **conventions)
    images = x.reshape(1, *graph.input.shape).astype(np.float64)
    spikes = run_float(graph, images, dtype=torch.float64).spikes[graph.populations[-1].name]
    return np.moveaxis(spikes[0], -1, 0)


def norse_run(net: torch.nn.Module, x: torch.Tensor, steps: int) -> torch.Tensor:
    """A Norse network's outputs, (steps, *output), for the input x held for `steps` steps."""
    state, out = None, []
    with torch.no_grad():
        for _ in range(steps):
            y, state = net(x, state)
            out.append(y)
    return torch.stack(out)
