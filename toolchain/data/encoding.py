"""Input encodings: how a static image becomes the network's input over T steps.

`analog`: the image itself every step (TSSL-BP's direct encoding, tsslbp.md 1.4); on the chip
a graded spike of round(x * levels) per pixel and step (`targets.loihi2.formats.input_payload`).
"""

from __future__ import annotations

import torch


def repeat_over_time(images: torch.Tensor, steps: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W, T): the same image at every step, without a copy."""
    return images.unsqueeze(-1).expand(*images.shape, steps)


ENCODING = "direct: analog image every step as a graded spike of round(x*levels)"
