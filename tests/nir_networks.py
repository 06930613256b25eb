"""Helpers of the NIR import tests: small random networks in any library's layers, static
inputs, and our float runner's output spikes for an imported file."""

from pathlib import Path

import nir
import numpy as np
import torch

from toolchain.io.nir_fixups import writable
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


def snntorch_run_and_export(net, x: np.ndarray, path: Path) -> np.ndarray:
    """snnTorch's own output spikes (T, *out) for the static input x, and the net exported."""
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    utils.reset(net)
    with torch.no_grad():
        out = [net(torch.from_numpy(x)) for _ in range(T)]
    theirs = torch.stack([o[0] if isinstance(o, tuple) else o for o in out])[:, 0].numpy()
    utils.reset(net)
    nir.write(path, export_to_nir(net, torch.from_numpy(x), ignore_dims=[0]))
    return theirs


def norse_export(net, x: np.ndarray, path: Path) -> None:
    from norse.torch.utils.export_nir import to_nir

    graph = to_nir(net, torch.from_numpy(x[0]), dt=1e-3)
    graph.infer_types()
    nir.write(path, graph)


def spikingjelly_run_and_export(net, x: np.ndarray, path: Path) -> np.ndarray:
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    functional.set_step_mode(net, "m")
    functional.reset_net(net)
    steps = torch.from_numpy(np.repeat(x[None], T, axis=0))  # (T, 1, *shape)
    with torch.no_grad():
        theirs = net(steps)[:, 0].numpy()
    functional.reset_net(net)
    nir.write(path, export_to_nir(net, steps, dt=1e-4))
    return theirs


def sinabs_run_and_export(net: torch.nn.Module, x: np.ndarray, path: Path) -> np.ndarray:
    """Sinabs' output (T, *out) for the static input x (1, *shape), and its NIR file. Its
    Squeeze layers take (batch * time, ...). Sinabs 3.1.3 writes 0-d parameters and neurons
    without shapes, which `nir.write` refuses: they are given as 1-element arrays and the shape
    of the node before (the values unchanged)."""
    import sinabs

    steps = torch.from_numpy(np.repeat(x, T, axis=0))
    with torch.no_grad():
        theirs = net(steps).numpy()
    sinabs.reset_states(net)
    graph = sinabs.to_nir(net, steps[:1])
    nir.write(path, writable(graph))
    return theirs


def rockpool_linear(n_in: int, n_out: int, seed: int, gain: float, shift: float):
    from rockpool.nn.modules import LinearTorch

    torch.manual_seed(seed)
    weight = (torch.rand(n_in, n_out) - 0.5) * gain + shift
    return LinearTorch((n_in, n_out), weight=weight)
