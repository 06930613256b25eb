"""The sigmoid surrogate derivative of the spike, as the authors' code computes it."""

from __future__ import annotations

import torch

SURROGATE_ALPHA = 0.2  # width of the sigmoid surrogate, in units of the membrane potential


def clamped_sigmoid(u: torch.Tensor, threshold: float) -> torch.Tensor:
    """sigma((V_th - u)/alpha) with the argument clipped to [-8, 8], in one new buffer."""
    return torch.rsub(u, threshold).div_(SURROGATE_ALPHA).clamp_(-8.0, 8.0).sigmoid_()


def sigmoid_surrogate(u: torch.Tensor, threshold: float) -> torch.Tensor:
    """sigma'((u - V_th)/alpha)/alpha with the argument clipped to [-8, 8], as the authors' code.
    (The fused TSSL-BP kernel forms sig (1 - sig) / alpha from `clamped_sigmoid` the same way.)"""
    sig = clamped_sigmoid(u, threshold)
    return sig.mul_(1.0 - sig).div_(SURROGATE_ALPHA)
