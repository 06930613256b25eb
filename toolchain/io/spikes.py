"""Output spikes saved by `simulate --save-spikes`, `deploy --out` and the demo: one layout.

An `.npz` with `output_spikes` (N, T, *outputs), sample first and then the float model's T steps
(as `--inputs` takes frames, (N, T, *input)); `predictions` (N,); `labels` (N,) where known;
`output_scale` where the outputs are a fixed-point read-out's integer membrane: the float
membrane is output_spikes / output_scale. The runners hand spikes time last, (N, *outputs, T);
this module alone turns them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolchain.atomic import atomic_path
from toolchain.ir import Graph


def output_scale(graph: Graph) -> float | None:
    """Integers per float unit of the outputs where they are a fixed read-out's membrane."""
    last = graph.populations[-1]
    return last.scale if last.readout and graph.is_fixed else None


def save_spikes(
    path: Path,
    output_spikes: np.ndarray,
    predictions: np.ndarray,
    labels: np.ndarray | None = None,
    scale: float | None = None,
) -> None:
    """Writes (atomically) output spikes given time last, (N, *outputs, T), as (N, T, *outputs);
    `scale`: `output_scale` of the graph that gave them."""
    arrays = {"output_spikes": np.moveaxis(output_spikes, -1, 1), "predictions": predictions}
    if labels is not None:
        arrays["labels"] = labels
    if scale is not None:
        arrays["output_scale"] = np.float64(scale)
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, **arrays)
