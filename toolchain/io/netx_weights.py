"""What netx and Lava's fixed-point Dense make of a stored dense matrix, and the matrix to store
for one of our Dense synapses (see `toolchain.io.netx_write` for the reasoning)."""

from __future__ import annotations

import numpy as np

from targets.loihi2.formats import WEIGHT_MAX, WEIGHT_MIN
from toolchain.ir import Dense, GraphError


class NetxExportError(GraphError):
    """The graph cannot be written as a netx hdf5 file; the message names the node."""


def _refuse(node: str, message: str) -> None:
    raise NetxExportError(f"node {node!r}: {message}")


def dense_weight(node: Dense) -> np.ndarray:
    """The integer weights netx must hold so that its dense layer computes ours exactly."""
    weight = node.weight_int.astype(np.int64)
    exp = node.weight_exp
    accepted = (
        f"netx stores no dense weight exponent, so W * 2**weight_exp must be an integer in "
        f"[{WEIGHT_MIN}, {WEIGHT_MAX}]; quantise with `snn-deploy quantize ... --netx`, which "
        "keeps every dense exponent at 0"
    )
    if exp > 0:
        weight = weight << exp
    elif exp < 0:
        step = 1 << -exp
        if np.any(weight % step):
            _refuse(
                node.name,
                f"weight_exp={exp} floors the sum, and weight_int holds values that are not "
                f"multiples of {step}; {accepted}",
            )
        weight = weight // step
    if weight.size and (weight.min() < WEIGHT_MIN or weight.max() > WEIGHT_MAX):
        _refuse(
            node.name,
            f"weight_exp={exp} makes the weights span [{weight.min()}, {weight.max()}]; {accepted}",
        )
    if not np.any(weight):
        _refuse(
            node.name,
            "all weights are zero; netx's optimize_weight_bits cannot scale an all-zero dense "
            "matrix (it needs at least one non-zero weight)",
        )
    effective = netx_dense_effective(weight)
    if effective is None or not np.array_equal(effective, weight):
        if effective is None:
            what = "netx's optimize_weight_bits and Lava's Dense cannot keep them"
        else:
            at = tuple(int(i) for i in np.argwhere(effective != weight)[0])
            what = f"netx and Lava's Dense would apply {effective[at]} instead of {weight[at]}"
        _refuse(
            node.name,
            f"weights in [{weight.min()}, {weight.max()}] without a positive one: {what} "
            "(netx and Lava pick different sign modes for a maximum of 0, and Lava's inhibitory "
            "Dense clips netx's scaled -256 to -255); accepted: dense weights that netx and "
            "Lava keep exactly, e.g. any in-range matrix with at least one positive weight",
        )
    return weight


def netx_dense_effective(weight: np.ndarray) -> np.ndarray | None:
    """The per-synapse integer weights that `netx.hdf5.Network` + Lava's fixed-point Dense apply
    for a stored dense matrix, or None where they are not integers or netx fails.

    Replays netx's `optimize_weight_bits` (its sign mode: max < 0 inhibitory, min >= 0
    excitatory, else mixed; scale_bits = floor(log2(scale)) + signed with scale 127/max and
    128/|min| (mixed), 255/max (excitatory), 256/|min| (inhibitory); num_weight_bits = 8 -
    scale_bits - (trailing zero bits - signed); weights << scale_bits; weight_exp = -scale_bits),
    then Lava's Dense (its own sign mode: min >= 0 excitatory, max <= 0 inhibitory, else mixed;
    clip to [-256, 255], [0, 255] or [-255, 0]; drop 8 - num_weight_bits + mixed LSBs) and the
    arithmetic shift of the sum by weight_exp, exact only if every weight is a multiple of it.
    (lava-dl 0.6.0 first clips mixed matrices to [-256, 254]: a no-op on our weights.)"""
    weight = np.asarray(weight, dtype=np.int64)
    high, low = int(weight.max()), int(weight.min())
    if high == low == 0:
        return None
    signed = int(high >= 0 and low < 0)  # netx: max < 0 inhibitory, min >= 0 excitatory
    if high < 0:
        scale = -256 / low
    elif low >= 0:
        scale = 255 / high
    else:
        scale = min(127 / high if high > 0 else np.inf, -128 / low)
    scale_bits = int(np.floor(np.log2(scale))) + signed
    zeros = 8
    while zeros > 0 and np.any(weight % (1 << zeros)):
        zeros -= 1
    num_weight_bits = 8 - scale_bits - (zeros - signed)
    if scale_bits < 0:
        return None  # netx left-shifts by a negative amount
    shifted = weight << scale_bits
    inhibitory = low < 0 and high <= 0  # Lava's sign mode
    mixed = int(low < 0 < high)
    magnitude = -shifted if inhibitory else shifted
    magnitude = np.clip(magnitude, -256 * mixed, 255)
    drop = 8 - num_weight_bits + mixed
    if drop < 0:
        return None  # Lava would shift by a negative amount
    magnitude = (magnitude >> drop) << drop
    kept = -magnitude if inhibitory else magnitude
    if np.any(kept % (1 << scale_bits)):
        return None
    return kept >> scale_bits
