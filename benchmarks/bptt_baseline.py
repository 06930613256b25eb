"""Plain surrogate-gradient BPTT twin of a `SpikingNetwork`, the way snnTorch users train.

The neuron runs the same forward as `toolchain.tsslbp.lif_forward`, step by step with ordinary
tensor ops on time-first steps, so autograd records the graph over all T steps:

    u_t = I_t + (1 - 1/tau_m) u^r_{t-1},  s_t = H(u_t - V_th),
    u^r_t = u_t (1 - s_t)  (hard reset, NOT detached),  a_t = a_{t-1} + (s_t - a_{t-1}) / tau_s

The Heaviside step is an autograd Function whose backward is the sigmoid surrogate of
`toolchain.tsslbp.sigmoid_surrogate`. `bptt_twin(model)` copies a network (same weights) and
makes each of its spiking layers call this neuron instead of `tsslbp_forward`; nothing global is
patched. `check_same_forward` asserts that both networks produce bit-identical spikes and PSPs.
"""

from __future__ import annotations

import copy
import types

import torch

from toolchain.network import SpikingLayer, SpikingNetwork
from toolchain.tsslbp import sigmoid_surrogate


class SurrogateSpike(torch.autograd.Function):
    """Heaviside spike [u > V_th] forward, sigmoid surrogate derivative backward."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, threshold: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.threshold = threshold
        return (u > threshold).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_spike: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad_spike * sigmoid_surrogate(u, ctx.threshold), None


def bptt_lif(
    current: torch.Tensor, *, tau_m: float, tau_s: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The LIF neuron over the last (time) axis with autograd through every step: (PSP, spikes).

    Written with the arithmetic and the memory layout of `toolchain.tsslbp` (time-first steps,
    outputs stacked time-first and viewed time-last), so that the results are bit-identical.
    """
    decay = 1.0 - 1.0 / tau_m
    steps = current.movedim(-1, 0).contiguous()
    u_reset = torch.zeros_like(steps[0])
    a = torch.zeros_like(steps[0])
    psps, spikes = [], []
    for t in range(len(steps)):
        u_t = torch.add(steps[t], u_reset, alpha=decay)
        s_t = SurrogateSpike.apply(u_t, threshold)
        u_reset = u_t * (1.0 - s_t)
        a = a + (s_t - a) / tau_s
        psps.append(a)
        spikes.append(s_t)
    return torch.stack(psps).movedim(0, -1), torch.stack(spikes).movedim(0, -1)


def _bptt_layer_forward(
    self: SpikingLayer, psp_in: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`SpikingLayer.forward` with the BPTT neuron in place of `tsslbp_forward`."""
    n = self.neuron
    return bptt_lif(self.synapse(psp_in), tau_m=n.tau_m, tau_s=n.tau_s, threshold=n.threshold)


def bptt_twin(model: SpikingNetwork) -> SpikingNetwork:
    """A deep copy of `model` (same weights, separate parameters) trained with plain BPTT.

    Only the copy's spiking-layer instances get a new `forward`; the classes are untouched.
    """
    twin = copy.deepcopy(model)
    for layer in twin.layers:
        if isinstance(layer, SpikingLayer):
            layer.forward = types.MethodType(_bptt_layer_forward, layer)  # type: ignore[method-assign]
    return twin


def _record_layers(model: SpikingNetwork) -> tuple[list[tuple[torch.Tensor, ...]], list]:
    """Forward hooks that store every spiking layer's (PSP, spikes); returns (store, handles)."""
    store: list[tuple[torch.Tensor, ...]] = []

    def hook(_module: torch.nn.Module, _inputs: object, output: tuple[torch.Tensor, ...]) -> None:
        store.append(tuple(t.detach() for t in output))

    handles = [
        layer.register_forward_hook(hook)
        for layer in model.layers
        if isinstance(layer, SpikingLayer)
    ]
    return store, handles


def layer_outputs(model: SpikingNetwork, images: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """Every spiking layer's (PSP, spikes) on `images`, in eval mode (no dropout), no grad."""
    store, handles = _record_layers(model)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return store


def check_same_forward(model: SpikingNetwork, twin: SpikingNetwork, images: torch.Tensor) -> int:
    """Asserts bit-identical spikes and PSPs in every spiking layer; returns the spike count."""
    reference, candidate = layer_outputs(model, images), layer_outputs(twin, images)
    if len(reference) != len(candidate):
        raise AssertionError(f"{len(reference)} spiking layers vs {len(candidate)} in the twin")
    spikes = 0
    for index, ((psp, s), (psp_b, s_b)) in enumerate(zip(reference, candidate, strict=True)):
        if not torch.equal(s, s_b):
            raise AssertionError(f"spiking layer {index}: spikes differ between TSSL-BP and BPTT")
        if not torch.equal(psp, psp_b):
            diff = (psp - psp_b).abs().max().item()
            raise AssertionError(f"spiking layer {index}: PSPs differ (max |diff| {diff:.3g})")
        spikes += int(s.sum())
    return spikes
