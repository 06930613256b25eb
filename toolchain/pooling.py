"""Sum pooling over k x k windows (stride k), one arithmetic for training and the float runner.

The windows' elements are added in one fixed order, (0, 0), (0, 1), ..., row by row, as strided
views of the input: one pass over it, several times faster on the CPU than `avg_pool2d` on
(N, C, H, W) tensors (which then needs a multiplication by k^2 besides). The gradient is the
output's gradient copied to each element of its window (0 for rows and columns past the last
whole window, which pooling drops).
"""

from __future__ import annotations

import torch


def sum_pool(x: torch.Tensor, k: int, spatial: int = -2) -> torch.Tensor:
    """The sum of each k x k window of the two axes `spatial` and `spatial + 1` of x."""
    return _SumPool.apply(x, k, spatial % x.ndim)


def _window(x: torch.Tensor, axis: int, k: int, i: int, j: int) -> torch.Tensor:
    """The elements at offset (i, j) of every whole window: a strided view."""
    rows, cols = (x.shape[axis] // k) * k, (x.shape[axis + 1] // k) * k
    index = [slice(None)] * x.ndim
    index[axis], index[axis + 1] = slice(i, rows, k), slice(j, cols, k)
    return x[tuple(index)]


class _SumPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, k: int, axis: int) -> torch.Tensor:  # type: ignore[override]
        ctx.shape, ctx.k, ctx.axis = x.shape, k, axis
        total = _window(x, axis, k, 0, 0).clone()
        for i in range(k):
            for j in range(k):
                if i or j:
                    total += _window(x, axis, k, i, j)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        shape, k, axis = ctx.shape, ctx.k, ctx.axis
        whole = shape[axis] % k == 0 and shape[axis + 1] % k == 0
        out = grad.new_empty(shape) if whole else grad.new_zeros(shape)
        for i in range(k):
            for j in range(k):
                _window(out, axis, k, i, j).copy_(grad)
        return out, None, None
