"""Training methods: how a spiking layer's gradient is computed. Each is one module with a
forward `current (..., T) -> (PSP, spikes)`; the config's `[train] method` picks one here.

To add a method: write `methods/<name>.py` with that forward and register it below.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from toolchain.train.methods.bptt import bptt_forward
from toolchain.train.methods.tsslbp import MODES, tsslbp_forward

SpikingForward = Callable[..., tuple[torch.Tensor, torch.Tensor]]

METHODS: tuple[str, ...] = ("tsslbp", "bptt")


def spiking_forward(method: str, mode: str = "final") -> SpikingForward:
    """The layer forward of a method; `mode` selects TSSL-BP's backward variant (ablations)."""
    if method == "tsslbp":
        return partial(tsslbp_forward, mode=mode)
    if method == "bptt":
        return bptt_forward
    raise ValueError(f"method={method!r}: one of {', '.join(METHODS)}")


__all__ = ["METHODS", "MODES", "SpikingForward", "spiking_forward"]
