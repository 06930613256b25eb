"""A user's own inputs and labels, from .npy files: what `--inputs X.npy --labels Y.npy` read.

Inputs are static, (N, *input_shape), repeated over the graph's T steps as the dataset images
are, or per step, (N, T, *input_shape): spikes or currents, one frame per step. A dense
network's input (n, 1, 1) also takes vectors: (N, n) or (N, T, n).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class InputsError(ValueError):
    """An inputs or labels file that cannot be used; the message names the file."""


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputsError(f"{path}: not found; expected a .npy file (numpy.save)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise InputsError(f"{path}: not a readable .npy array ({err})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise InputsError(f"{path}: holds {getattr(array, 'dtype', type(array))}; need numbers")
    return array


def load_inputs(path: Path, input_shape: tuple[int, ...], steps: int) -> np.ndarray:
    """float32 inputs, (N, *input_shape) static or (N, T, *input_shape) per step."""
    array = _load(path)
    if len(input_shape) == 3 and input_shape[1:] == (1, 1) and array.shape[-1:] == input_shape[:1]:
        array = array.reshape(*array.shape, 1, 1)  # vectors for a dense network's (n, 1, 1)
    static, per_step = ", ".join(map(str, input_shape)), ", ".join(map(str, (steps, *input_shape)))
    if array.shape[1:] not in (tuple(input_shape), (steps, *input_shape)) or len(array) == 0:
        raise InputsError(
            f"{path}: shape {array.shape}; this graph takes (N, {static}) (static, repeated over "
            f"its {steps} steps) or (N, {per_step}) (one frame per step), N >= 1"
        )
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InputsError(f"{path}: holds NaN or infinite values")
    return array


def require_graded(inputs: np.ndarray, path: Path) -> np.ndarray:
    """`inputs` if a fixed-point graph can take them: in [0, 1] (graded spikes)."""
    if inputs.min() < 0 or inputs.max() > 1:
        raise InputsError(
            f"{path}: a fixed-point graph takes inputs in [0, 1] (sent as graded spikes of "
            f"round(x * levels)); these span [{inputs.min():.4g}, {inputs.max():.4g}]"
        )
    return inputs


def load_labels(path: Path, count: int, classes: int) -> np.ndarray:
    """int64 labels (N,), each in 0 .. classes - 1, for N inputs."""
    array = _load(path)
    if array.shape != (count,):
        raise InputsError(f"{path}: shape {array.shape}; need ({count},), one label per input")
    if array.dtype.kind == "f" and not np.all(array == np.round(array)):
        raise InputsError(f"{path}: labels must be whole numbers")
    labels = array.astype(np.int64)
    if labels.min() < 0 or labels.max() >= classes:
        raise InputsError(f"{path}: labels must lie in 0 .. {classes - 1} (the graph's outputs)")
    return labels
