"""Surrogate-gradient BPTT, the way snnTorch users train: autograd through every step.

The forward pass is the neuron core's (`toolchain.neuron.lif_sequence`), the same as
TSSL-BP's, with a spike function whose backward is the sigmoid surrogate; the reset is not
detached, so the gradient also flows through u^r_t = u_t (1 - s_t):

    dL/du_t = phi'(u_t) [e_t - (1 - 1/tau_m) u_t G_{t+1}] + (1 - s_t)(1 - 1/tau_m) G_{t+1}

(tsslbp.md 2.3). It saves every step's tensors for autograd; TSSL-BP saves three per layer.
"""

from __future__ import annotations

import torch

from toolchain.neuron import lif_sequence, time_first, time_last
from toolchain.train.methods.surrogate import sigmoid_surrogate


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


def bptt_forward(
    current: torch.Tensor, *, tau_m: float, tau_s: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spiking layer: input current (..., T) -> (PSP, spikes), autograd through all steps."""
    psp, spikes, _ = lif_sequence(
        time_first(current),
        tau_m=tau_m,
        tau_s=tau_s,
        threshold=threshold,
        spike=SurrogateSpike.apply,
    )
    return time_last(psp), time_last(spikes)
