"""A user's own inputs and labels, from .npy files: what `--inputs X.npy --labels Y.npy` read.

Inputs are static, (N, *input_shape), repeated over the graph's T steps as the dataset images
are, or per step, (N, T, *input_shape): spikes or currents, one frame per step. A dense
network's input (n, 1, 1) also takes vectors: (N, n) or (N, T, n).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from toolchain.errors import UserError
from toolchain.resources import require_memory


class InputsError(UserError, ValueError):
    """An inputs or labels file that cannot be used; the message names the file."""


def _load(path: Path) -> np.ndarray:
    """The array of a .npy file, mapped rather than read: its header is checked against the
    file's size and the memory it will take before anything is allocated."""
    if not path.is_file():
        raise InputsError(f"{path}: not found; expected a .npy file (numpy.save)")
    _check_size(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        reason = str(err) or type(err).__name__
        raise InputsError(f"{path}: not a readable .npy array ({reason})") from None
    if isinstance(array, np.lib.npyio.NpzFile):
        names = ", ".join(array.files) or "none"
        array.close()
        raise InputsError(
            f"{path}: is a .npz archive (arrays: {names}); save the one array as a .npy file "
            "(numpy.save)"
        )
    if array.dtype.kind not in "biuf":
        raise InputsError(f"{path}: holds {array.dtype}; need numbers")
    require_memory(array.size * 8, f"{path}: its {array.shape} array")
    return array


def _check_size(path: Path) -> None:
    """A .npy header must not promise more data than its file holds."""
    fmt = np.lib.format
    with path.open("rb") as handle:
        if handle.read(len(fmt.MAGIC_PREFIX)) != fmt.MAGIC_PREFIX:
            return  # not a .npy: np.load says what it is
        handle.seek(0)
        try:
            version = fmt.read_magic(handle)
            read_header = (
                fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
        except (ValueError, OSError, EOFError) as err:
            raise InputsError(f"{path}: not a readable .npy header ({err})") from None
        promised = math.prod(shape) * dtype.itemsize
        held = path.stat().st_size - handle.tell()
    if promised > held:
        raise InputsError(
            f"{path}: its header describes a {shape} array of {dtype} ({promised} bytes); the "
            f"file holds {held}: truncated or damaged"
        )


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
