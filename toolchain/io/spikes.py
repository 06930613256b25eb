"""Output spikes saved by `simulate --save-spikes`, `deploy --out` and the demo: one layout.

An `.npz` with `output_spikes` (N, T, *outputs), sample first and then the float model's T steps
(as `--inputs` takes frames, (N, T, *input)); `predictions` (N,); `labels` (N,) where known. The
runners hand spikes time last, (N, *outputs, T); this module alone turns them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolchain.atomic import atomic_path


def save_spikes(
    path: Path,
    output_spikes: np.ndarray,
    predictions: np.ndarray,
    labels: np.ndarray | None = None,
) -> None:
    """Writes (atomically) output spikes given time last, (N, *outputs, T), as (N, T, *outputs)."""
    arrays = {"output_spikes": np.moveaxis(output_spikes, -1, 1), "predictions": predictions}
    if labels is not None:
        arrays["labels"] = labels
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, **arrays)
