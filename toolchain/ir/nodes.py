"""The Graph's nodes: one small frozen dataclass per primitive, validated on construction.

Semantics (float), for T steps:
- `Input` emits the analog image x every step (a graded spike of round(x * levels) in fixed
  point); with `constant_plane`, one more channel after the image's, 1 at every step.
- `Dense`, `Conv2d`, `SumPool2d`, `Flatten` are linear maps applied at every step.
- `CubaLIF` (NIR's name) filters the sum of its inputs with the synaptic trace and integrates it
  in the membrane:
      i_t = (1 - 1/tau_s) i_{t-1} + x_t / tau_s;  u_t = (1 - 1/tau_m) u^r_{t-1} + i_t
      s_t = [u_t > threshold];  u^r_t = u_t (1 - s_t);  output s_t (spikes)
  which is TSSL-BP's layer (the PSP a = filtered spikes; W a = filter of W s by linearity).
  With `reset_subtract` set, a spike subtracts it instead: u^r_t = u_t - reset_subtract s_t.
  A `bias` (per neuron of a dense population, per channel of a convolutional one) is added to
  u every step: u_t = (1 - 1/tau_m) u^r_{t-1} + i_t + bias. With `max_spikes` m > 1 a neuron
  emits a spike count, s_t = min(m, #{k >= 1 : u_t > k threshold}) (Sinabs, Rockpool): the
  reset subtracts reset_subtract s_t, or zeroes u where s_t > 0; the next synapse weighs it.
  A `readout` population never spikes (nor resets): its output is its membrane u_t, a leaky
  integrator (NIR's LI), and the prediction is the neuron whose u summed over time is largest;
  only a graph's last population reads out. A `synaptic_bias` enters the synaptic filter with
  the input, i_t = (1 - 1/tau_s) i_{t-1} + (x_t + synaptic_bias) / tau_s (a NIR Affine's bias
  before a CubaLIF). With `refractory` 1, u_t = 0 the step after a spike (snnTorch's Synaptic
  neuron resetting to zero). `tau_m`, `tau_s`, `threshold` and `reset_subtract` (and their
  integers) may differ between neurons: an array per neuron, or per channel after a convolution,
  like `bias` (`PER_NEURON`).
A fixed-point node also carries Loihi 2's integers (`targets/loihi2/formats.py` owns their
ranges and meaning): `weight_int` (and, for Dense, `weight_exp`) on synapses; `du`, `dv`, `vth`
and `scale` (integer voltage per float unit) on populations, `reset_sub` (the integer
subtracted from v on a spike) on those that reset by subtraction, and `bias_mant`, `bias_exp`
(bias_mant << bias_exp added to v every step) on those with a bias, and `synaptic_bias_int`
(added to the synaptic input a every step, before Lava's << 6) on those with a synaptic bias.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from targets.loihi2.formats import (
    BIAS_EXP_MAX,
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    DELAY_MAX,
    DU_MAX,
    DV_MAX,
    INT32_LIMIT,
    SPIKE_COUNT_MAX,
    STATE_LIMIT,
    SYNAPTIC_BIAS_LIMIT,
    VTH_MAX,
    WEIGHT_EXP_MAX,
    WEIGHT_EXP_MIN,
    WEIGHT_MAX,
    WEIGHT_MIN,
)
from toolchain.errors import UserError
from toolchain.ir.fields import shown_value
from toolchain.ir.provenance import DEFAULT_LEVELS
from toolchain.neuron import Firing


class GraphError(UserError, ValueError):
    """A node or a graph is inconsistent; the message names the node and the value."""


def _fail(node: str, message: str) -> None:
    raise GraphError(f"node {node!r}: {message}")


def _check_float_array(node: str, key: str, value: Any, ndim: int) -> None:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f" or value.ndim != ndim:
        _fail(node, f"{key} must be a {ndim}-D float array, got {_describe(value)}")
    if not np.all(np.isfinite(value)):
        _fail(node, f"{key} has non-finite values")


def _check_int_array(
    node: str,
    key: str,
    value: Any,
    shape: tuple[int, ...],
    bounds: tuple[int, int] = (WEIGHT_MIN, WEIGHT_MAX),
) -> None:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
        _fail(node, f"{key} must be an integer array, got {_describe(value)}")
    if value.shape != shape:
        _fail(node, f"{key} has shape {value.shape}, its float counterpart has {shape}")
    low, high = (int(value.min()), int(value.max())) if value.size else (0, 0)
    if low < bounds[0] or high > bounds[1]:
        _fail(node, f"{key} spans [{low}, {high}]; Loihi allows [{bounds[0]}, {bounds[1]}]")


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
    """The image fed every step; `levels`: a value x in [0, 1] is sent as round(x * levels).

    With `constant_plane`, the last channel of `shape` is not the user's: it holds 1 (sent as
    `levels`) at every step, and carries the offset of an input normalisation into the first
    synapse, w (x - m) / s = (w / s) x - (m / s) w 1, since a graded spike cannot be negative.
    """

    name: str
    shape: tuple[int, int, int]  # (C, H, W) that the next node sees, the constant plane included
    levels: int = dataclasses.field(default=DEFAULT_LEVELS, metadata={"shown": True})
    constant_plane: bool = False

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            _fail(self.name, f"shape={self.shape} must be (C, H, W) with positive sizes")
        _check_int(self.name, "levels", self.levels, 1, 2**16 - 1)
        if not isinstance(self.constant_plane, bool):
            _fail(self.name, f"constant_plane={self.constant_plane!r} must be true or false")
        if self.constant_plane and self.shape[0] < 2:
            _fail(self.name, f"shape={self.shape}: a constant plane needs an image channel too")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images a user gives."""
        channels, height, width = self.shape
        return (channels - int(self.constant_plane), height, width)

    @staticmethod
    def graded_problem(values: np.ndarray) -> str | None:
        """Why `values` cannot be sent as graded spikes (floats in [0, 1]), or None: the one
        check of what a fixed-point graph's input takes."""
        values = np.asarray(values)
        accepted = "a fixed-point graph takes inputs in [0, 1], sent as graded spikes"
        if values.dtype.kind != "f":
            return f"{accepted} of round(x * levels); these are {values.dtype}"
        if values.size and not (values.min() >= 0 and values.max() <= 1):
            span = f"[{values.min():.4g}, {values.max():.4g}]"
            return f"{accepted} of round(x * levels); these span {span}"
        return None

    def feed(self, images: np.ndarray) -> np.ndarray:
        """What the next node sees of images (N, *image_shape), or per step (N, T,
        *image_shape): the images, and the constant plane after their channels."""
        if not self.constant_plane:
            return images
        plane = np.ones((*images.shape[:-3], 1, *images.shape[-2:]), dtype=images.dtype)
        return np.concatenate([images, plane], axis=-3)


@dataclass(frozen=True, eq=False)
class Dense(Node):
    """Fully connected synapses, weight (out, in); the input is flattened in (C, H, W) order.
    `delay` (out, in), in steps: what input i sends at step t reaches output o at t + delay[o, i]
    (lava-dl's axonal and synaptic delays; Lava's DelayDense); all 0: None."""

    name: str
    weight: np.ndarray
    weight_int: np.ndarray | None = None
    weight_exp: int = 0
    delay: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_float_array(self.name, "weight", self.weight, 2)
        if self.weight_int is not None:
            _check_int_array(self.name, "weight_int", self.weight_int, self.weight.shape)
        _check_int(self.name, "weight_exp", self.weight_exp, WEIGHT_EXP_MIN, WEIGHT_EXP_MAX)
        if self.delay is not None:
            _check_int_array(self.name, "delay", self.delay, self.weight.shape, (0, DELAY_MAX))
            object.__setattr__(
                self, "delay", self.delay.astype(np.int32) if self.delay.any() else None
            )

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if math.prod(shape) != self.weight.shape[1]:
            _fail(self.name, f"weight takes {self.weight.shape[1]} inputs, gets {shape}")
        return (self.weight.shape[0],)

    @property
    def is_fixed(self) -> bool:
        return self.weight_int is not None


def _pair(node: str, key: str, value: Any, low: int, high: int) -> tuple[int, int]:
    """(h, w) from one integer for both or a pair, each checked."""
    pair = tuple(value) if isinstance(value, tuple | list) else (value, value)
    if len(pair) != 2:
        _fail(node, f"{key}={value!r} must be an integer or an (h, w) pair")
    for item in pair:
        _check_int(node, key, item, low, high)
    return (int(pair[0]), int(pair[1]))


@dataclass(frozen=True, eq=False)
class Conv2d(Node):
    """2-D convolution, weight (out, in, kh, kw), no bias. Lava's Conv has no weight exponent.
    `stride` and `padding` are (h, w) pairs; one integer stands for both."""

    name: str
    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    weight_int: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_float_array(self.name, "weight", self.weight, 4)
        object.__setattr__(self, "stride", _pair(self.name, "stride", self.stride, 1, 64))
        object.__setattr__(self, "padding", _pair(self.name, "padding", self.padding, 0, 64))
        if self.weight_int is not None:
            _check_int_array(self.name, "weight_int", self.weight_int, self.weight.shape)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        out, channels, kh, kw = self.weight.shape
        if len(shape) != 3 or shape[0] != channels:
            _fail(self.name, f"weight takes ({channels}, H, W) inputs, gets {shape}")
        (ph, pw), (sh, sw) = self.padding, self.stride
        h = (shape[1] + 2 * ph - kh) // sh + 1
        w = (shape[2] + 2 * pw - kw) // sw + 1
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


def _says(default: object, words: str) -> object:
    """A field whose meaning a refusal states in `words` (`{}` takes the value)."""
    return dataclasses.field(default=default, metadata={"says": words})


@dataclass(frozen=True, eq=False)
class CubaLIF(Node):
    """A population of current-based LIF neurons, one per element of its input."""

    name: str
    # A time constant, threshold, decay or reset amount is one number for the population, or
    # one per channel (C,) or neuron (n,) where they differ (`PER_NEURON`; equal values: one).
    tau_m: float | np.ndarray
    tau_s: float | np.ndarray
    threshold: float | np.ndarray
    du: int | np.ndarray | None = None
    dv: int | np.ndarray | None = None
    vth: int | np.ndarray | None = None
    scale: float | None = None
    # Beyond TSSL-BP's neuron; `says` is how a refusal puts it (a format that cannot state it).
    reset_subtract: float | np.ndarray | None = _says(None, "resets by subtraction")  # None: to 0
    reset_sub: int | np.ndarray | None = None
    bias: np.ndarray | None = _says(None, "has a bias")  # (C,) or (n,): per channel or neuron
    bias_mant: np.ndarray | None = None
    bias_exp: int = 0
    max_spikes: int = _says(1, "emits spike counts (up to {} per step)")  # 1: one spike a step
    synaptic_bias: np.ndarray | None = _says(None, "has a bias into its synaptic current")
    synaptic_bias_int: np.ndarray | None = None
    refractory: int = _says(0, "holds its membrane at 0 the step after a spike")  # 1: u held
    readout: bool = _says(False, "is a readout (its membrane is the output)")  # NIR's LI

    def __post_init__(self) -> None:
        for key in PER_NEURON:
            object.__setattr__(self, key, _one_or_each(self.name, key, getattr(self, key)))
        self._check_reset()
        self._check_bias()
        self._check_synaptic_bias()
        _check_int(self.name, "refractory", self.refractory, 0, 1)
        if not isinstance(self.readout, bool):
            _fail(self.name, f"readout={self.readout!r} must be true or false")
        firing = (self.reset_subtract, self.max_spikes, self.refractory)
        if self.readout and firing != (None, 1, 0):
            _fail(self.name, "a readout never spikes: no reset_subtract, max_spikes or refractory")
        bound = SPIKE_COUNT_MAX if self.vth is not None else INT32_LIMIT - 1
        _check_int(self.name, "max_spikes", self.max_spikes, 1, bound)
        tau_m, tau_s, threshold = (np.asarray(self.tau_m), np.asarray(self.tau_s), self.threshold)
        if not np.all(tau_m >= 1):  # infinite: no leak (an integrate-and-fire neuron)
            _fail(self.name, f"tau_m={shown_value(self.tau_m)} must be >= 1 (steps), or inf")
        if not np.all(np.isfinite(tau_s) & (tau_s >= 1)):
            _fail(self.name, f"tau_s={shown_value(self.tau_s)} must be >= 1 (steps)")
        if not np.all(np.isfinite(threshold) & (np.asarray(threshold) > 0)):
            _fail(self.name, f"threshold={shown_value(threshold)} must be positive")
        ints = (self.du, self.dv, self.vth, self.scale)
        if all(v is None for v in ints):
            return
        if any(v is None for v in ints):
            _fail(self.name, "du, dv, vth and scale are set together or not at all")
        _check_ints(self.name, "du", self.du, 0, DU_MAX)
        _check_ints(self.name, "dv", self.dv, 0, DV_MAX)
        _check_ints(self.name, "vth", self.vth, 1, VTH_MAX)
        if not (math.isfinite(self.scale) and self.scale > 0):
            _fail(self.name, f"scale={self.scale} must be positive")

    def _check_reset(self) -> None:
        subtract = self.reset_subtract
        if subtract is not None and not np.all(np.isfinite(subtract) & (np.asarray(subtract) > 0)):
            _fail(
                self.name,
                f"reset_subtract={shown_value(subtract)} must be positive (or None: reset to 0)",
            )
        if (self.reset_sub is not None) != (subtract is not None and self.vth is not None):
            _fail(self.name, "reset_sub is set exactly when a fixed population has reset_subtract")
        if self.reset_sub is not None:
            _check_ints(self.name, "reset_sub", self.reset_sub, 1, STATE_LIMIT)

    def _check_bias(self) -> None:
        if self.bias is not None:
            _check_float_array(self.name, "bias", self.bias, 1)
        if (self.bias_mant is not None) != (self.bias is not None and self.vth is not None):
            _fail(self.name, "bias_mant is set exactly when a fixed population has a bias")
        if self.bias_mant is not None:
            bounds = (BIAS_MANT_MIN, BIAS_MANT_MAX)
            _check_int_array(self.name, "bias_mant", self.bias_mant, self.bias.shape, bounds)
        _check_int(self.name, "bias_exp", self.bias_exp, 0, BIAS_EXP_MAX)

    def _check_synaptic_bias(self) -> None:
        bias, ints = self.synaptic_bias, self.synaptic_bias_int
        if bias is not None:
            _check_float_array(self.name, "synaptic_bias", bias, 1)
        if (ints is not None) != (bias is not None and self.vth is not None):
            _fail(self.name, "synaptic_bias_int is set exactly when a fixed population has one")
        if ints is not None:
            bounds = (-SYNAPTIC_BIAS_LIMIT, SYNAPTIC_BIAS_LIMIT)
            _check_int_array(self.name, "synaptic_bias_int", ints, bias.shape, bounds)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        for key in ("bias", "synaptic_bias", *self.per_neuron):
            values = getattr(self, key)
            if values is not None and values.shape != shape[:1]:
                wanted = shape[:1]
                _fail(self.name, f"{key} has shape {values.shape}; inputs {shape} need {wanted}")
        return shape

    @property
    def is_fixed(self) -> bool:
        return self.vth is not None

    @property
    def firing(self) -> Firing:
        return Firing(self.reset_subtract, self.max_spikes, self.refractory)

    @property
    def per_neuron(self) -> tuple[str, ...]:
        """The fields of `PER_NEURON` that differ between the population's neurons."""
        return tuple(key for key in PER_NEURON if isinstance(getattr(self, key), np.ndarray))


PER_NEURON = ("tau_m", "tau_s", "threshold", "reset_subtract", "du", "dv", "vth", "reset_sub")
_INTEGER = frozenset(("du", "dv", "vth", "reset_sub"))


def _one_or_each(node: str, key: str, value: Any) -> Any:
    """A per-neuron field as one number where every neuron has the same (Python's int or
    float), else a read-only 1-D array (int64 or float64)."""
    if value is None or not isinstance(value, np.ndarray | list | tuple):
        return value
    values = np.asarray(value)
    if values.ndim == 0 and values.dtype.kind in "biuf":
        values = values.reshape(1)
    if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "biuf":
        _fail(node, f"{key} must be one number or a 1-D array of them, got {_describe(values)}")
    integer = key in _INTEGER
    if integer and values.dtype.kind == "f":
        _fail(node, f"{key} must hold integers, got {_describe(values)}")
    if np.all(values == values[0]):
        return int(values[0]) if integer else float(values[0])
    values = values.astype(np.int64 if integer else np.float64)
    values.flags.writeable = False
    return values


def _check_ints(node: str, key: str, value: Any, low: int, high: int) -> None:
    """An integer field, or each of a per-neuron array, within [low, high]."""
    if isinstance(value, np.ndarray):
        _check_int_array(node, key, value, value.shape, (low, high))
    else:
        _check_int(node, key, value, low, high)


SYNAPSES = (Dense, Conv2d)
