"""Training-time image augmentation, drawn from torch's global generator (so resume is exact)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each image of (N, C, H, W) moved by its own integer (dy, dx) in [-max_shift, max_shift].

    Pixels moved in from outside are 0 (the background), none wrap around.
    """
    if max_shift == 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, (max_shift,) * 4)
    shifts = torch.randint(0, 2 * max_shift + 1, (len(images), 2))
    out = torch.empty_like(images)
    for dy, dx in shifts.unique(dim=0).tolist():
        chosen = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).nonzero().squeeze(1)
        out[chosen] = padded[chosen, :, dy : dy + height, dx : dx + width]
    return out
