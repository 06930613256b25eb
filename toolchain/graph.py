"""The Graph: a typed, validated description of a feed-forward spiking network.

Every stage reads or writes a Graph: training builds a float one, quantisation adds the integers
in Loihi's formats, the simulators and exporters read it. Nodes form a chain, each consuming the
previous node's output. One small frozen dataclass per primitive, validated on construction.

Semantics (float), for T steps, with the input image x held constant:
- `Input` emits the analog x every step (a graded spike of round(x * levels) in fixed point).
- `Dense`, `Conv2d`, `SumPool2d`, `Flatten` are linear maps applied at every step.
- `CubaLIF` filters its input with the synaptic trace and integrates it in the membrane:
      i_t = (1 - 1/tau_s) i_{t-1} + x_t / tau_s;  u_t = (1 - 1/tau_m) u^r_{t-1} + i_t
      s_t = [u_t > threshold];  u^r_t = u_t (1 - s_t);  output s_t (spikes)
  which is TSSL-BP's layer (the PSP a = filtered spikes; W a = filter of W s by linearity).
Fixed point (Loihi 2, Lava `fixed_pt`), with the integers carried by the same nodes:
- `Dense` / `Conv2d`: `weight_int` in [-256, 254], sum shifted by `weight_exp` (dense only).
- `CubaLIF`: current decay `du` (factor 4096 - (du + 1)), voltage decay `dv` (4096 - dv),
  threshold mantissa `vth` (spike when v > vth << 6); `scale` = integer voltage per float unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

WEIGHT_MIN, WEIGHT_MAX = -256, 254  # mixed-sign 8-bit mantissa (netx keeps odd values)
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7
DU_MAX, DV_MAX = 4095, 4096
VTH_MAX = 2**17 - 1  # 17-bit mantissa; vth << 6 stays below 2**23
STATE_BITS = 24


class GraphError(ValueError):
    """A node or a graph is inconsistent; the message names the node and the value."""


def _fail(node: str, message: str) -> None:
    raise GraphError(f"node {node!r}: {message}")


def _check_float_array(node: str, key: str, value: Any, ndim: int) -> None:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f" or value.ndim != ndim:
        _fail(node, f"{key} must be a {ndim}-D float array, got {_describe(value)}")
    if not np.all(np.isfinite(value)):
        _fail(node, f"{key} has non-finite values")


def _check_int_array(node: str, key: str, value: Any, shape: tuple[int, ...]) -> None:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
        _fail(node, f"{key} must be an integer array, got {_describe(value)}")
    if value.shape != shape:
        _fail(node, f"{key} has shape {value.shape}, the float weight has {shape}")
    low, high = (int(value.min()), int(value.max())) if value.size else (0, 0)
    if low < WEIGHT_MIN or high > WEIGHT_MAX:
        _fail(
            node, f"{key} spans [{low}, {high}]; Loihi weights lie in [{WEIGHT_MIN}, {WEIGHT_MAX}]"
        )


def _check_int(node: str, key: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        _fail(node, f"{key}={value!r} must be an integer")
    if not low <= value <= high:
        _fail(node, f"{key}={value} is outside [{low}, {high}]")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return repr(value)


class Node:
    """Base of all nodes: field-wise equality, arrays compared by dtype and value."""

    name: str

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None  # type: ignore[assignment]

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    @property
    def is_fixed(self) -> bool:
        """True where the node carries its integer form (or needs none)."""
        return True


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b)
        )
    return a == b


@dataclass(frozen=True, eq=False)
class Input(Node):
    """The image fed every step; `levels`: a value x in [0, 1] is sent as round(x * levels)."""

    name: str
    shape: tuple[int, int, int]  # (C, H, W)
    levels: int = 255

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            _fail(self.name, f"shape={self.shape} must be (C, H, W) with positive sizes")
        _check_int(self.name, "levels", self.levels, 1, 2**16 - 1)


@dataclass(frozen=True, eq=False)
class Dense(Node):
    """Fully connected synapses, weight (out, in); the input is flattened in (C, H, W) order."""

    name: str
    weight: np.ndarray
    weight_int: np.ndarray | None = None
    weight_exp: int = 0

    def __post_init__(self) -> None:
        _check_float_array(self.name, "weight", self.weight, 2)
        if self.weight_int is not None:
            _check_int_array(self.name, "weight_int", self.weight_int, self.weight.shape)
        _check_int(self.name, "weight_exp", self.weight_exp, WEIGHT_EXP_MIN, WEIGHT_EXP_MAX)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if math.prod(shape) != self.weight.shape[1]:
            _fail(self.name, f"weight takes {self.weight.shape[1]} inputs, gets {shape}")
        return (self.weight.shape[0],)

    @property
    def is_fixed(self) -> bool:
        return self.weight_int is not None


@dataclass(frozen=True, eq=False)
class Conv2d(Node):
    """2-D convolution, weight (out, in, kh, kw), no bias. Lava's Conv has no weight exponent."""

    name: str
    weight: np.ndarray
    stride: int = 1
    padding: int = 0
    weight_int: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_float_array(self.name, "weight", self.weight, 4)
        _check_int(self.name, "stride", self.stride, 1, 64)
        _check_int(self.name, "padding", self.padding, 0, 64)
        if self.weight_int is not None:
            _check_int_array(self.name, "weight_int", self.weight_int, self.weight.shape)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        out, channels, kh, kw = self.weight.shape
        if len(shape) != 3 or shape[0] != channels:
            _fail(self.name, f"weight takes ({channels}, H, W) inputs, gets {shape}")
        pad, stride = self.padding, self.stride
        h = (shape[1] + 2 * pad - kh) // stride + 1
        w = (shape[2] + 2 * pad - kw) // stride + 1
        if h < 1 or w < 1:
            _fail(self.name, f"kernel {kh}x{kw} does not fit input {shape}")
        return (out, h, w)

    @property
    def is_fixed(self) -> bool:
        return self.weight_int is not None


@dataclass(frozen=True, eq=False)
class SumPool2d(Node):
    """`weight` times the sum of each size x size window, stride = size. Folded away by lowering."""

    name: str
    size: int = 2
    weight: float = 1.1

    def __post_init__(self) -> None:
        _check_int(self.name, "size", self.size, 1, 64)
        if not math.isfinite(self.weight):
            _fail(self.name, f"weight={self.weight} must be finite")

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) != 3 or shape[1] % self.size or shape[2] % self.size:
            _fail(self.name, f"input {shape} is not (C, H, W) divisible by {self.size}")
        return (shape[0], shape[1] // self.size, shape[2] // self.size)

    @property
    def is_fixed(self) -> bool:
        return False  # no neurons to hold it on the chip: lower it into the next synapse


@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """(C, H, W) -> (C*H*W,) in (C, H, W) order."""

    name: str

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(shape),)


@dataclass(frozen=True, eq=False)
class CubaLIF(Node):
    """A population of current-based LIF neurons, one per element of its input."""

    name: str
    tau_m: float
    tau_s: float
    threshold: float
    du: int | None = None
    dv: int | None = None
    vth: int | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        for key in ("tau_m", "tau_s"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 1):
                _fail(self.name, f"{key}={value} must be >= 1 (steps)")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            _fail(self.name, f"threshold={self.threshold} must be positive")
        ints = (self.du, self.dv, self.vth, self.scale)
        if all(v is None for v in ints):
            return
        if any(v is None for v in ints):
            _fail(self.name, "du, dv, vth and scale are set together or not at all")
        _check_int(self.name, "du", self.du, 0, DU_MAX)
        _check_int(self.name, "dv", self.dv, 0, DV_MAX)
        _check_int(self.name, "vth", self.vth, 1, VTH_MAX)
        if not (math.isfinite(self.scale) and self.scale > 0):
            _fail(self.name, f"scale={self.scale} must be positive")

    @property
    def is_fixed(self) -> bool:
        return self.vth is not None


SYNAPSES = (Dense, Conv2d)
NODE_TYPES: dict[str, type[Node]] = {
    cls.__name__: cls for cls in (Input, Dense, Conv2d, SumPool2d, Flatten, CubaLIF)
}


@dataclass(frozen=True, eq=False)
class Graph:
    """A chain of nodes from one Input to a CubaLIF output population, run for T steps."""

    nodes: tuple[Node, ...]
    T: int
    name: str = "network"

    def __post_init__(self) -> None:
        if not self.nodes or not isinstance(self.nodes[0], Input):
            raise GraphError("a graph starts with an Input node")
        if not isinstance(self.nodes[-1], CubaLIF):
            raise GraphError(f"the last node {self.nodes[-1].name!r} must be a CubaLIF population")
        if not isinstance(self.T, int) or self.T < 1:
            raise GraphError(f"T={self.T!r} must be an int >= 1")
        names = [node.name for node in self.nodes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise GraphError(f"node names must be unique, repeated: {duplicates}")
        for index, node in enumerate(self.nodes):
            if index and isinstance(node, Input):
                _fail(node.name, "only the first node may be an Input")
            if isinstance(node, CubaLIF) and not isinstance(self.nodes[index - 1], SYNAPSES):
                _fail(node.name, "a CubaLIF population must follow a Dense or Conv2d synapse")
        self.shapes()  # validates every node against its input

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Graph)
            and self.T == other.T
            and self.name == other.name
            and len(self.nodes) == len(other.nodes)
            and all(a == b for a, b in zip(self.nodes, other.nodes, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]

    def shapes(self) -> list[tuple[int, ...]]:
        """The output shape of every node, in order."""
        shape: tuple[int, ...] = self.nodes[0].shape  # type: ignore[attr-defined]
        out = [shape]
        for node in self.nodes[1:]:
            shape = node.output_shape(shape)
            out.append(shape)
        return out

    @property
    def input(self) -> Input:
        return self.nodes[0]  # type: ignore[return-value]

    @property
    def populations(self) -> list[CubaLIF]:
        return [node for node in self.nodes if isinstance(node, CubaLIF)]

    @property
    def is_lowered(self) -> bool:
        """Every synapse connects one population (or the input) directly to the next."""
        return not any(isinstance(node, SumPool2d | Flatten) for node in self.nodes)

    @property
    def is_fixed(self) -> bool:
        return all(node.is_fixed for node in self.nodes)

    def layers(self) -> list[tuple[Dense | Conv2d, CubaLIF]]:
        """The (synapse, population) pairs of a lowered graph, in order.

        Refuses a graph that is not lowered, naming the pooling or flatten node to fold.
        """
        for before, node in zip(self.nodes, self.nodes[1:], strict=False):
            if isinstance(node, SumPool2d | Flatten):
                raise GraphError(
                    f"graph is not lowered: node {node.name!r} ({type(node).__name__}) must be"
                    " folded into the next synapse first"
                )
            if isinstance(node, SYNAPSES) and isinstance(before, SYNAPSES):
                raise GraphError(
                    f"graph is not lowered: node {node.name!r} ({type(node).__name__}) follows"
                    f" node {before.name!r}; every synapse must feed a CubaLIF population"
                )
        return [
            (self.nodes[i - 1], node)
            for i, node in enumerate(self.nodes)
            if isinstance(node, CubaLIF)
        ]  # type: ignore[misc]

    def deployable_layers(self) -> list[tuple[Dense | Conv2d, CubaLIF]]:
        """`layers()` of a lowered fixed-point graph; names the first node without integers."""
        layers = self.layers()
        for node in self.nodes:
            if not node.is_fixed:
                missing = "du/dv/vth/scale" if isinstance(node, CubaLIF) else "weight_int"
                raise GraphError(
                    f"graph is not fixed-point: node {node.name!r} ({type(node).__name__}) has"
                    f" no {missing}; quantise it first"
                )
        return layers

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise GraphError(f"no node named {name!r}; nodes: {[n.name for n in self.nodes]}")
