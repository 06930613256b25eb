"""The sigmoid surrogate derivative of the spike, as the authors' code computes it."""

from __future__ import annotations

import torch

SURROGATE_ALPHA = 0.2  # width of the sigmoid surrogate, in units of the membrane potential


def sigmoid_surrogate(u: torch.Tensor, threshold: float) -> torch.Tensor:
    """sigma'((u - V_th)/alpha)/alpha with the argument clipped to [-8, 8], as the authors' code."""
    z = ((threshold - u) / SURROGATE_ALPHA).clamp(-8.0, 8.0)
    sig = torch.sigmoid(z)
    return sig * (1.0 - sig) / SURROGATE_ALPHA
