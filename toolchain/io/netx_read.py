"""lava-dl netx files (`NET.net`, `NET.h5`) read as fixed-point Graphs, so that `inspect`,
`simulate`, `compare` and `deploy` run them and the reference simulator gives netx's spikes.

What netx builds from a file (lava-dl 0.6.0 with Lava 0.10.0; read from its source and checked
against the ground truth its wheel ships, see issue 12's notes): per layer a Dense (integer
weights, lossless) or a Conv (the stored (out, in, kh, kw) kernel, PyTorch's cross-correlation),
each followed by a CUBA LIF with du = iDecay - 1, dv = vDecay, vth = vThMant and a bias added
to v as bias << 6; a flatten layer is the (C, H, W) order our Dense reads anyway. The integers
map one to one onto ours; the float parameters are derived from them (scale = vth << 6, so the
float threshold is 1), for float runs and comparisons.

Input neurons. netx drives an input layer's neurons through their bias: the sample is written
into `bias_mant`, so v += bias << 6 every step while u stays 0. With iDecay 4096 (u forgets
everything each step, as in lava-dl's examples) the same v comes from a synapse of weight 1 into
u = a_in << 6, so the input layer becomes Input -> identity synapse -> those neurons, and a
sample x in [0, 1] is sent as round(x * 255), the integer netx would write into the bias.
Everything then happens one step later than in netx, as the payload crosses one more synapse.

No input layer (lava-dl's netx tutorials, which SLAYER feeds its binary spikes directly): the
first layer must be dense, and its inFeatures binary spikes are the input (levels 1).

A last layer whose threshold v cannot reach (vThMant beyond 17 bits: vth << 6 is past v's 24-bit
range, as SLAYER's `cuba.Affine` heads write 2^18 - 1) never spikes: it is a read-out whose
membrane is the output, in SLAYER's units (scale 64: the float membrane is v / 64).

A last dense layer without neurons (lava-dl's `mnist.net` test network) is, in netx, a non-leaky
integrator: iDecay 0 (u keeps all of itself: u_t = u_{t-1} + a_t << 6), vDecay 4096 (v = u every
step) and vThMant 2^17, one past what v can reach, so it never spikes and its v is the sum of its
inputs. It reads as a read-out with u = a << 6 (du 4095) summed into v (dv 0): the same v, in
SLAYER's units (scale 64), while the sum stays within 24 bits (past them netx's u wraps where our
v saturates). With a bias it is refused: netx adds it to v once, not into the sum.

Supported: an input layer without neurons or with iDecay-4096 neurons, dense, conv (groups 1,
dilation 1, any stride and padding) and flatten layers, CUBA (or LOIHI, the same neuron in
netx) neurons with refDelay 1 and binary spikes. Refused, with the layer and the field: other
layer types (pool, average, concat, ...), other neuron types (sigma-delta, ...), synaptic
delays on conv layers (netx ignores them), refractory delays above 1, graded spikes, layers
without neurons other than the last dense one, input neurons whose current decays. Delays on a
dense layer (SLAYER's `delay=True`: one per output neuron; or per input, or per synapse) are
the Dense's delays, as netx spreads them over its DelayDense.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from targets.loihi2.formats import (
    ACT_SHIFT,
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    DECAY_UNITY,
    DELAY_MAX,
    INT32_LIMIT,
    VTH_MAX,
    current_decay,
    input_unit,
    per_output,
    voltage_decay,
    weight_factor,
)
from toolchain.errors import UserError
from toolchain.io.hdf5 import READ_ERRORS, check_self_contained
from toolchain.io.netx_write import read_netx
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph, GraphError, Input, Node
from toolchain.ir.provenance import (
    DEFAULT_LEVELS,
    INPUT_LEVELS,
    NETX_DEFAULT_STEPS,
    PREDICTION,
    TIME_STEPS,
    library_prediction,
    written_here,
)

NEURON_TYPES = ("CUBA", "LOIHI")  # netx builds the same LIF for both
NETX_BIAS_EXP = ACT_SHIFT  # netx sends bias << 6 into v


class NetxImportError(UserError, ValueError):
    """A netx file this toolchain cannot read; the message names the file, layer and field."""


def read_netx_graph(
    path: Path | str, *, steps: int | None = None, levels: int | None = None
) -> Graph:
    """The fixed-point Graph of a netx file (module docstring); `levels`: the integer bias a
    sample x = 1 gives the input neurons (default: the file's, else 255)."""
    path = Path(path)
    check_self_contained(path)
    try:
        data = read_netx(path)
    except (OSError, KeyError, ValueError) as error:
        raise NetxImportError(f"{path}: not a readable netx file ({error})") from None
    try:
        return _graph(data, path.stem, steps, levels)
    except (NetxImportError, GraphError) as error:
        raise NetxImportError(f"{path}: {error}") from None
    except READ_ERRORS as error:
        # a field of a type or shape no netx writer stores: damaged, or not netx
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise NetxImportError(
            f"{path}: a field cannot be read as netx stores it ({reason})"
        ) from None


def _graph(data: dict[str, Any], name: str, steps: int | None, asked: int | None) -> Graph:
    attrs, layers = data["attrs"], data["layer"]
    if not layers:
        raise NetxImportError("the file holds no layer")
    first = 1
    if _text(layers[0].get("type")) == "input":
        neurons = "neuron" in layers[0]
        levels = asked or int(attrs.get(INPUT_LEVELS, DEFAULT_LEVELS if neurons else 1))
        if asked is not None and not neurons:
            raise NetxImportError(_BINARY_INPUT)
        shape = _shape(layers[0]["shape"])
        nodes: list[Node] = [Input("input", shape, levels)]
        if neurons:
            nodes += _input_neurons(layers[0], shape, levels)
    else:
        if asked is not None:
            raise NetxImportError(_BINARY_INPUT)
        first, levels = 0, 1
        nodes = [Input("input", _fed_shape(layers[0]), levels)]
    for index, layer in enumerate(layers[first:], start=first):
        kind = _text(layer.get("type"))
        if kind == "flatten":
            continue  # our Dense reads its input in the same (C, H, W) order
        if kind not in ("dense", "conv"):
            raise NetxImportError(
                f"layer {index}: type {kind!r} is not supported; accepted: input, dense, conv, "
                "flatten"
            )
        try:
            last = index == len(layers) - 1
            nodes += _layer(index, layer, kind, levels, first=len(nodes) == 1, last=last)
        except (NetxImportError, GraphError):
            raise
        except READ_ERRORS as error:
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            raise NetxImportError(f"layer {index}: a field cannot be read ({reason})") from None
    T = steps or int(attrs.get(TIME_STEPS, NETX_DEFAULT_STEPS))
    # a file of ours records its rule; SLAYER's networks predict by spike rate (`Rate`)
    rule = attrs[PREDICTION] if written_here(attrs) else library_prediction(readout=False)
    return Graph(tuple(nodes), T=T, name=name, prediction=_text(rule))


_BINARY_INPUT = (
    "layer 0 has no input neurons: the file's input is binary spikes into its first synapse, "
    "so --levels does not apply; it sets the integer bias a sample x = 1 gives input neurons"
)


def _fed_shape(layer: dict) -> tuple[int, int, int]:
    """The input of a file without an input layer (SLAYER feeds the first layer's binary spikes
    directly, as in lava-dl's netx tutorials): a dense layer's input features."""
    kind = _text(layer.get("type"))
    if kind != "dense" or "inFeatures" not in layer:
        raise NetxImportError(
            f"layer 0: a {kind} layer with no input layer before it, so the file does not say "
            "the input's shape; accepted: an input layer first, or a dense layer with inFeatures"
        )
    return (int(np.asarray(layer["inFeatures"]).reshape(-1)[0]), 1, 1)


def _input_neurons(layer: dict, shape: tuple[int, int, int], levels: int) -> list[Node]:
    """The input layer's neurons behind an identity synapse (module docstring)."""
    i_decay = _shared(0, layer["neuron"], "iDecay") if "iDecay" in layer["neuron"] else 0
    if i_decay != DECAY_UNITY:
        raise NetxImportError(
            f"layer 0: input neurons with iDecay {i_decay}; accepted: {DECAY_UNITY} (netx drives "
            "them through v, which an input synapse into u reproduces only without a current "
            "decay)"
        )
    channels, height, width = shape
    if height * width == 1:
        identity = {"weight": np.eye(channels), "neuron": layer["neuron"]}
        return _layer(0, identity, "dense", levels, first=True)
    kernel = np.eye(channels).reshape(channels, channels, 1, 1)
    return _layer(0, {"weight": kernel, "neuron": layer["neuron"]}, "conv", levels, first=True)


def _layer(
    index: int, layer: dict, kind: str, levels: int, first: bool, last: bool = False
) -> list[Node]:
    neuron = layer.get("neuron")
    outputs = np.asarray(layer["weight"]).shape[0] if np.ndim(layer["weight"]) > 1 else 1
    if neuron is None:
        population = _integrator(index, layer, kind, last)
    else:
        population = _population(index, layer, neuron, outputs, last)
    names = layer.get("attrs", {})
    synapse_name = names.get("synapse", f"layer{index}")
    weight_int = np.rint(_numbers(index, layer, "weight")).astype(np.int32)
    if kind == "dense" and weight_int.ndim == 1:  # netx: (in,) for a single output
        weight_int = weight_int.reshape(1, -1)
    unit = input_unit(levels, first)
    weight = weight_int / per_output(
        weight_factor(population.scale, population.tau_s, unit, 0), weight_int
    )
    if kind == "dense":
        delay = _delays(index, layer, weight_int.shape)
        return [Dense(synapse_name, weight, weight_int, 0, delay), population]
    if "delay" in layer and np.any(layer["delay"]):
        raise NetxImportError(
            f"layer {index}: a conv layer with delays, which netx ignores; accepted: delays on "
            "dense layers"
        )
    weight_int, weight = weight_int.reshape(weight_int.shape[:4]), weight.reshape(weight.shape[:4])
    stride, padding = _pair(index, "stride", layer), _pair(index, "padding", layer)
    for field, wanted in (("dilation", 1), ("groups", 1)):
        if field in layer and np.any(np.asarray(layer[field]) != wanted):
            raise NetxImportError(f"layer {index}: {field} must be {wanted}")
    return [Conv2d(synapse_name, weight, stride, padding, weight_int), population]


def _population(index: int, layer: dict, neuron: dict, outputs: int, last: bool = False) -> CubaLIF:
    kind = _text(neuron.get("type"))
    if kind not in NEURON_TYPES:
        raise NetxImportError(
            f"layer {index}: neuron type {kind!r}; accepted: {', '.join(NEURON_TYPES)}"
        )
    if int(neuron.get("refDelay", 1)) != 1:
        raise NetxImportError(f"layer {index}: refDelay {neuron['refDelay']}; accepted: 1")
    if bool(neuron.get("gradedSpike", False)):
        raise NetxImportError(f"layer {index}: graded spikes are not supported")
    i_decay, dv, vth = (
        _parameter(index, neuron, key, outputs) for key in ("iDecay", "vDecay", "vThMant")
    )
    if not np.all((i_decay >= 1) & (i_decay <= DECAY_UNITY)):
        raise NetxImportError(
            f"layer {index}: iDecay {_span(i_decay)}; accepted: 1 .. {DECAY_UNITY}"
        )
    # a threshold v never reaches: a read-out (module docstring)
    readout = bool(np.all(vth > VTH_MAX)) and last
    if not (np.all((vth >= 1) & (vth <= VTH_MAX)) or readout):
        raise NetxImportError(
            f"layer {index}: vThMant {_span(vth)}; accepted: 1 .. {VTH_MAX}, or beyond for "
            "every neuron of the last layer (a read-out that never spikes, such as SLAYER's "
            "cuba.Affine head)"
        )
    # The float voltage in units of the (lowest) threshold: SLAYER's own units, 1 << 6 each, in
    # a read-out
    scale = float(1 << ACT_SHIFT) if readout else float(np.min(vth) << ACT_SHIFT)
    biases = _bias(index, layer, scale)
    name = layer.get("attrs", {}).get("population", f"layer{index}_neuron")
    with np.errstate(divide="ignore"):
        tau_m = np.where(dv == 0, math.inf, DECAY_UNITY / np.maximum(dv, 1))
    vth = np.minimum(vth, VTH_MAX)  # a read-out's threshold plays no part
    return CubaLIF(
        name,
        tau_m,
        DECAY_UNITY / i_decay,
        1.0 if readout else (vth << ACT_SHIFT) / scale,
        i_decay - 1,
        dv,
        vth,
        scale,
        **biases,
        readout=readout,
    )


def _delays(index: int, layer: dict, shape: tuple[int, int]) -> np.ndarray | None:
    """A dense layer's delays in steps, (out, in), as netx spreads them: one for every synapse,
    one per output neuron (SLAYER's axonal delays), one per input, or the whole matrix."""
    if "delay" not in layer:
        return None
    delay = np.rint(_numbers(index, layer, "delay")).astype(np.int32)
    if delay.min() < 0 or delay.max() > DELAY_MAX:
        raise NetxImportError(
            f"layer {index}: delays {delay.min()} .. {delay.max()}; accepted: 0 .. {DELAY_MAX} "
            "(netx clamps longer ones)"
        )
    if delay.size == 1:
        return np.full(shape, delay.reshape(-1)[0], np.int32)
    if delay.ndim == 1 and delay.size in shape:
        rows = delay.size == shape[0]
        return np.broadcast_to(delay.reshape(-1, 1) if rows else delay.reshape(1, -1), shape).copy()
    if delay.shape == shape:
        return delay
    raise NetxImportError(
        f"layer {index}: delays of shape {delay.shape}; accepted: one, one per output "
        f"({shape[0]}) or input ({shape[1]}), or {shape}"
    )


def _integrator(index: int, layer: dict, kind: str, last: bool) -> CubaLIF:
    """A dense last layer without neurons: netx's non-leaky integrator (module docstring), read
    out as v = the sum of every step's input, in SLAYER's units."""
    biased = "bias" in layer and np.any(layer["bias"])
    if kind != "dense" or not last or biased:
        raise NetxImportError(
            f"layer {index}: a {kind} layer without neurons{' and with a bias' if biased else ''};"
            " accepted: the last, dense, without a bias (netx's non-leaky integrator, read out)"
        )
    name = layer.get("attrs", {}).get("population", f"layer{index}_neuron")
    du, dv = current_decay(1.0), voltage_decay(math.inf)  # u = a << 6; v += u, never spiking
    return CubaLIF(name, math.inf, 1.0, 1.0, du, dv, VTH_MAX, float(1 << ACT_SHIFT), readout=True)


def _parameter(index: int, neuron: dict, key: str, outputs: int) -> int | np.ndarray:
    """A neuron parameter: one for the layer, or one per neuron (per channel of a convolution)
    where SLAYER trained them without `shared_param`; equal values are one."""
    values = np.rint(_numbers(index, neuron, key)).reshape(-1).astype(np.int64)
    if values.size and np.all(values == values[0]):
        return int(values[0])
    if values.size != outputs:
        raise NetxImportError(
            f"layer {index}: {key} has {values.size} values; accepted: one, or one per output "
            f"neuron or channel ({outputs})"
        )
    return values


def _span(values: int | np.ndarray) -> str:
    low, high = int(np.min(values)), int(np.max(values))
    return str(low) if low == high else f"{low} .. {high} (per neuron)"


def _shared(index: int, neuron: dict, key: str) -> int:
    """A neuron parameter shared by the layer (SLAYER writes one per neuron without
    `shared_param`; equal values are one)."""
    values = np.unique(_numbers(index, neuron, key))
    if values.size != 1:
        raise NetxImportError(
            f"layer {index}: {key} differs between neurons ({values.size} values); accepted: one "
            "value for the layer"
        )
    return int(values[0])


def _numbers(index: int, group: dict, key: str) -> np.ndarray:
    """A stored dataset as finite float64 numbers, or an error naming layer, key and why."""
    stored = np.asarray(group[key])
    if stored.dtype.kind not in "biuf":
        raise NetxImportError(f"layer {index}: {key} holds {stored.dtype}; accepted: numbers")
    values = stored.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise NetxImportError(f"layer {index}: {key} holds NaN or infinite values")
    if values.size and np.abs(values).max() >= INT32_LIMIT:
        raise NetxImportError(
            f"layer {index}: {key} holds {np.abs(values).max():.4g}; netx stores integers of 32 "
            "bits at most"
        )
    return values


def _bias(index: int, layer: dict, scale: float) -> dict[str, Any]:
    if "bias" not in layer or not np.any(layer["bias"]):
        return {}
    mant = np.rint(_numbers(index, layer, "bias")).reshape(-1).astype(np.int32)
    if mant.min() < BIAS_MANT_MIN or mant.max() > BIAS_MANT_MAX:
        raise NetxImportError(f"layer {index}: biases beyond 13 bits are not supported")
    bias = mant * 2.0**NETX_BIAS_EXP / scale
    return {"bias": bias, "bias_mant": mant, "bias_exp": NETX_BIAS_EXP}


def _shape(stored: Any) -> tuple[int, int, int]:
    shape = [int(n) for n in np.asarray(stored).reshape(-1)]
    return (shape[0], 1, 1) if len(shape) == 1 else tuple(shape)  # type: ignore[return-value]


def _pair(index: int, field: str, layer: dict) -> tuple[int, int]:
    """A stride or padding, stored (H, W) like ours; one value stands for both."""
    values = np.asarray(layer.get(field, [1, 1] if field == "stride" else [0, 0])).reshape(-1)
    if len(values) not in (1, 2):
        raise NetxImportError(f"layer {index}: {field} {values.tolist()}; accepted: [h, w]")
    return (int(values[0]), int(values[-1]))


def _text(value: Any) -> str:
    """netx strings: a fixed-length (1,) bytes dataset or a variable-length scalar."""
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else str(value)
