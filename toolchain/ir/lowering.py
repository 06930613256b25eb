"""Lowering for hardware: fold pooling, flatten and their scale into the next synapse.

Pooling and flatten have no neurons, so they cannot exist on the chip; being linear, they fold
exactly into the synapse that follows them:
- k x k sum-pool (weight c) then Dense W: one Dense with W'[o, ch, h, w] = c W[o, ch, h//k, w//k];
- k x k sum-pool then Conv2d K (stride s, padding p): a Conv2d with kernel
  K'[o, ch, k m + a, k n + b] = c K[o, ch, m, n] (0 <= a, b < k), stride k s, padding k p;
- consecutive pools merge (sizes multiply, weights multiply); Flatten is implicit in Dense.
Afterwards every synapse connects one neuron population (or the input) to the next.
"""

from __future__ import annotations

import numpy as np

from toolchain.ir import Conv2d, Dense, Flatten, Graph, GraphError, Node, SumPool2d


def _fold_into_dense(dense: Dense, pool: SumPool2d, pooled_shape: tuple[int, ...]) -> Dense:
    channels, height, width = pooled_shape
    weight = dense.weight.reshape(-1, channels, height, width)
    k = pool.size
    expanded = np.repeat(np.repeat(weight, k, axis=2), k, axis=3) * pool.weight
    delay = None  # each input of a pooled window keeps its window's delay
    if dense.delay is not None:
        per_window = dense.delay.reshape(-1, channels, height, width)
        delay = np.repeat(np.repeat(per_window, k, axis=2), k, axis=3).reshape(len(weight), -1)
    weight = expanded.reshape(len(weight), -1).astype(dense.weight.dtype)
    return Dense(dense.name, weight, delay=delay)


def _fold_into_conv(conv: Conv2d, pool: SumPool2d) -> Conv2d:
    k = pool.size
    kernel = np.repeat(np.repeat(conv.weight, k, axis=2), k, axis=3) * pool.weight
    return Conv2d(
        conv.name,
        kernel.astype(conv.weight.dtype),
        stride=(conv.stride[0] * k, conv.stride[1] * k),
        padding=(conv.padding[0] * k, conv.padding[1] * k),
    )


def pooled_conv(conv: Conv2d, pool: SumPool2d) -> Conv2d:
    """A convolution followed by sum pooling (stride = size, no padding), as one convolution:
    output o of the pool sums the conv at o*p + a (a < p), which reads the input at
    (o*p + a)*s - P + k; so the kernel tap j = a*s + k gathers every W[k] with that sum, the
    stride is p*s and the padding stays. The output size is the pool's (both floor)."""
    p = pool.size
    out, cin, kh, kw = conv.weight.shape
    (sh, sw) = conv.stride
    kernel = np.zeros((out, cin, (p - 1) * sh + kh, (p - 1) * sw + kw), conv.weight.dtype)
    for a in range(p):
        for b in range(p):
            kernel[:, :, a * sh : a * sh + kh, b * sw : b * sw + kw] += conv.weight
    return Conv2d(
        conv.name,
        (kernel * pool.weight).astype(conv.weight.dtype),
        stride=(sh * p, sw * p),
        padding=conv.padding,
    )


def _merge(first: SumPool2d, second: SumPool2d) -> SumPool2d:
    return SumPool2d(first.name, first.size * second.size, first.weight * second.weight)


def lower(graph: Graph) -> Graph:
    """The equivalent graph with no SumPool2d or Flatten node. Float graphs only."""
    if graph.is_fixed and any(isinstance(n, Dense | Conv2d) for n in graph.nodes):
        raise GraphError("lower the float graph, then quantise: integer weights cannot be folded")
    if not graph.is_chain:
        if graph.is_lowered:
            return graph
        raise GraphError(f"graph {graph.name!r}: pooling is folded in feed-forward chains only")
    shapes = graph.shapes()
    nodes: list[Node] = [graph.nodes[0]]
    pending: SumPool2d | None = None
    pooled_input: tuple[int, ...] = ()
    for index, node in enumerate(graph.nodes[1:], start=1):
        if isinstance(node, Flatten):
            continue
        if isinstance(node, SumPool2d):
            pending = node if pending is None else _merge(pending, node)
            if pending is node:
                pooled_input = shapes[index - 1]
            continue
        if pending is not None:
            if isinstance(node, Dense):
                node = _fold_into_dense(node, pending, _pooled(pooled_input, pending))
            elif isinstance(node, Conv2d):
                node = _fold_into_conv(node, pending)
            else:
                raise GraphError(f"node {pending.name!r}: pooling must be followed by a synapse")
            pending = None
        nodes.append(node)
    return graph.with_nodes(tuple(nodes))


def _pooled(shape: tuple[int, ...], pool: SumPool2d) -> tuple[int, ...]:
    return (shape[0], shape[1] // pool.size, shape[2] // pool.size)
