"""What goes into a Loihi 2 network and what comes out of it, for the reference simulator and the
Lava runner alike: the input checks, the graded-spike payload, the source stream in Lava's
layout, the dtype of the output and every sample's output window.

Input: images (N, C, H, W) in [0, 1], sent at each of a sample's T steps, or frames
(N, T, C, H, W), one per step; each value x travels as the graded spike round(x * levels)
(`formats.input_payload`), with the input's constant plane where it has one. The stream sends
sample w at Lava steps wT + 1 .. wT + T (`timing`).
"""

from __future__ import annotations

import math

import numpy as np

from targets.loihi2 import formats
from targets.loihi2.plan import from_lava_order, lava_shape, to_lava_order
from targets.loihi2.timing import output_columns
from toolchain.ir import Conv2d, CubaLIF, Graph


def checked_images(graph: Graph, images: np.ndarray) -> np.ndarray:
    """`images` if the graph can take them: (N, *input) or (N, T, *input), floats in [0, 1]."""
    images = np.asarray(images)
    shape = graph.input.image_shape
    if images.shape[1:] not in (shape, (graph.T, *shape)):
        raise ValueError(
            f"images have shape {images.shape}, expected (N, *{shape}) or (N, {graph.T}, *{shape})"
        )
    problem = graph.input.graded_problem(images)
    if problem:
        raise ValueError(f"images: {problem}")
    return images


def input_payload(graph: Graph, images: np.ndarray) -> np.ndarray:
    """The graded spike payload (int64) for this graph of images (N, C, H, W) in [0, 1], sent
    at every step, or of inputs per step (N, T, C, H, W), returned time last: (N, C, H, W, T)."""
    return payload(graph, checked_images(graph, images))


def payload(graph: Graph, images: np.ndarray, dtype: type = np.int64) -> np.ndarray:
    """`input_payload` of images already checked, in `dtype`."""
    sent = formats.input_payload(graph.input.feed(images), graph.input.levels, dtype)
    return sent if images.ndim == 4 else np.moveaxis(sent, 1, -1)


def spike_dtype(population: CubaLIF) -> type:
    """What a population sends per step: spikes or counts up to 255, or a read-out's v."""
    return np.int64 if population.readout else np.uint8


def output_dtype(graph: Graph) -> type:
    """The dtype of a graph's output per step."""
    return spike_dtype(graph.populations[-1])


def source_shape(graph: Graph) -> tuple[int, ...]:
    """The input payload's shape in graph order: (C, H, W) before a Conv, else (C*H*W,)."""
    if isinstance(graph.nodes[1], Conv2d):
        return tuple(graph.input.shape)
    return (math.prod(graph.input.shape),)


def stream_columns(
    payload: np.ndarray, T: int, start: int, count: int, shape: tuple[int, ...]
) -> np.ndarray:
    """Source columns start .. start+count-1 of the stream (*lava_shape(shape), count) int32.

    payload: (N, *shape) static payloads (sent T steps each) or (N, *shape, T) sequences.
    Column j carries sample j // T at its step j % T; columns past N*T are zeros.
    """
    n = len(payload)
    columns = np.arange(start, start + count)
    sample, step = columns // T, columns % T
    valid = sample < n
    out = np.zeros((*lava_shape(shape), count), dtype=np.int32)
    if not valid.any():
        return out
    idx = np.flatnonzero(valid)
    if payload.ndim == len(shape) + 1:
        values = payload[sample[idx]]  # (k, *shape)
    else:
        values = np.moveaxis(payload, -1, 1)[sample[idx], step[idx]]  # (k, *shape)
    out[..., idx] = np.moveaxis(to_lava_order(values, shape), 0, -1).astype(np.int32)
    return out


def output_windows(
    recorded: np.ndarray, shape: tuple[int, ...], samples: int, graph: Graph
) -> np.ndarray:
    """A stream's recording of the output population (*lava_shape(shape), steps) -> every
    sample's output window (samples, n_out, T), neurons in graph order, in `output_dtype`."""
    steps = recorded.shape[-1]
    flat = from_lava_order(np.moveaxis(recorded, -1, 0), shape).reshape(steps, -1).T
    columns = output_columns(samples, graph.T, len(graph.populations))
    return flat[:, columns].transpose(1, 0, 2).astype(output_dtype(graph))
