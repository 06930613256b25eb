"""A lowered fixed-point Graph as a lava-dl netx hdf5 file, loadable by `netx.hdf5.Network`.

lava-dl (0.6.0) is not installable here, so the layout follows its reader as documented in
`../shared/reference/lava-fixed-point.md` (sections 4.2-4.4) and the netx/Lava sources it
describes; `read_netx` reads a file back for the tests.

Layout (the file written by `save_netx`):

    /                      attrs: format, producer, version, graph_name, time_steps,
                                  input_levels, input_message_bits, and in words load_with,
                                  input_payload, output_window (`how_to_run`; netx ignores all)
    /layer                 one numbered group per layer, nothing else (netx counts its members)
    /layer/0               type b"input"; shape (C, H, W); no `neuron` group
    /layer/k  (k >= 1)     one per (synapse, population) pair, or a flatten, in graph order:
      dense:   type b"dense", shape [out], inFeatures, outFeatures, weight (out, in) float64
      conv:    type b"conv", shape [C, H, W] (output), inChannels, outChannels,
               kernelSize [kh, kw], stride [sh, sw], padding [ph, pw], dilation [1, 1], groups 1,
               weight (out, in, kh, kw) float64
      flatten: type b"flatten", shape [C*H*W]
      dense and conv also hold `neuron/`: type b"CUBA", iDecay = du + 1 (the 12-bit fraction
               of the current lost per step, `formats.current_lost`), vDecay = dv,
               vThMant = vth, refDelay 1, gradedSpike False (scalars, as SLAYER writes them)
    every layer group has attrs `node` / `synapse`, `population` naming the Graph nodes.

Strings are what SLAYER's `export_hdf5` writes: a fixed-length ascii dataset of shape (1,) and
dtype S10 (netx's `NetDict` decodes element 0). Integers are int64 datasets (scalars 0-d),
`weight` float64 datasets holding integer values (netx casts them with `astype(int)`).

Input layer. `layer/0` (type input, shape, no neuron group) creates no Lava process: netx
0.6.0 only takes `input_shape = shape[::-1]` from it, which a conv first layer needs (otherwise
the user has to pass `input_shape=(W, H, C)` to `netx.hdf5.Network`). `save_netx(...,
input_layer=False)` leaves it out.

Graded input. Our `Input` sends the integer payload round(x * levels) of the image into the first
synapse every step. In netx the first dense/conv layer's synapse receives whatever `net.inp`
gets, so that layer is written like any other and the user feeds the integer payloads as graded
spikes: `netx.hdf5.Network(path, input_message_bits=b)` with b > 0, e.g. the root attribute
`input_message_bits` = levels.bit_length(), and a RingBuffer of int32 payloads of shape
(n_in, T) for a dense first layer (the image flattened in (C, H, W) order), or (W, H, C, T) for a
conv first layer (netx/Lava tensors are (x, y, z) = (W, H, C): `payload.transpose(2, 1, 0)`).

Conv kernels (reasoning, as lava-dl cannot be run here). netx `create_conv` reads the stored
kernel S (out, in, a, b) and gives Lava's Conv K = S[:, :, ::-1, ::-1].transpose(0, 3, 2, 1),
i.e. K[o, x, y, i] = S[o, i, a-1-y, b-1-x] in Lava's (out, X, Y, in) = (out, W, H, in) order.
Lava's Conv computes a true convolution in that order; its torch path evaluates it as
F.conv2d (a cross-correlation on (C, H, W) tensors) with the kernel
K[:, ::-1, ::-1].transpose(0, 3, 2, 1), whose element [o, i, h, w] is K[o, b-1-w, a-1-h, i] =
S[o, i, h, w]. The two flips cancel: Lava computes exactly PyTorch's conv2d with kernel S in
(out, in, kh, kw) order, which is our Conv2d. So `weight` is our `weight_int`, unchanged.
Shapes are stored (C, H, W) and netx reverses them to (W, H, C); stride, padding and dilation
are stored in (H, W) order and netx reverses them to (x, y), as our Lava network does.
Lava's Conv applies no weight exponent and no weight-bit truncation: the stored integers are the
effective ones.

Flatten. netx connects a conv output (W, H, C) to a dense input only after a `flatten` layer,
which it implements as `transpose([2, 1, 0]).flatten()`: the dense input vector is the conv
output in (C, H, W) C-order, the order our Dense columns use. So a flatten layer is written
between a conv and a following dense layer (and only there) and the Dense weight is stored
unchanged.

Dense weights. netx derives its own weight exponent (`optimize_weight_bits`: it shifts the stored
weights up to use all the bits and shifts the sum back) and stores no exponent for dense
layers; the effective weight is exactly the stored integer, odd values included, for integers in
[-256, 254]. Our Dense sums W.s and shifts the sum by `weight_exp` e. That is the stored weight
W * 2**e when that is an integer in [-256, 254] (for e < 0 every weight must be a multiple of
2**-e: then the sum is too and the arithmetic right shift drops nothing); such exponents are
folded into the stored weight, others are refused. An all-zero dense matrix is refused too
(netx's `optimize_weight_bits` takes log2 of 255/0 and fails).

Refused (`NetxExportError`, a `GraphError`, the message names the node and what is accepted): a
graph that is not lowered (SumPool2d, Flatten nodes), not fixed point (a synapse without
`weight_int`, a CubaLIF without du/dv/vth), an unrepresentable Dense `weight_exp`, an all-zero
Dense weight, and any dense matrix that netx + Lava would not apply exactly (checked by replaying
netx's optimize_weight_bits and Lava's Dense clip/truncation, `netx_dense_effective`): in our
weight range only matrices with no positive weight can fail: a negative maximum with a minimum of
-2**k (netx scales it to -256, Lava's inhibitory Dense clips that to -255), and many with a
maximum of 0 (netx takes them as mixed-sign, Lava as inhibitory: its truncation shift can go
negative or the clip bite).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from targets.loihi2.formats import current_lost
from targets.loihi2.plan import RULES, Block, PlanError, Rule, plan
from targets.loihi2.timing import input_steps, output_columns
from toolchain.atomic import atomic_path
from toolchain.io.netx_weights import NetxExportError, dense_weight
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, Input, SumPool2d
from toolchain.ir.fields import says, set_fields
from toolchain.ir.provenance import (
    GRAPH_NAME,
    INPUT_LEVELS,
    PREDICTION,
    PRODUCER,
    PRODUCER_KEY,
    TIME_STEPS,
    VERSION_KEY,
    version,
)

FORMAT = "lava-dl netx hdf5"
STRING_DTYPE = "S10"  # SLAYER's export_hdf5: create_dataset('type', (1,), 'S10', [...])
REF_DELAY = 1


def _refuse(node: str, message: str) -> None:
    raise NetxExportError(f"node {node!r}: {message}")


# ------------------------------------------------------------------------------------ checking


def _check_graph(graph: Graph) -> None:
    """netx's own words for graphs that are not a chain of fixed-point blocks."""
    for node in graph.nodes:
        if isinstance(node, SumPool2d | Flatten):
            _refuse(
                node.name,
                f"{type(node).__name__} has no neurons on the chip; netx export accepts lowered "
                "graphs only (Input, then Dense or Conv2d synapses each followed by a CubaLIF): "
                "lower the float graph, then quantise",
            )
    for node in graph.nodes:
        if not node.is_fixed:
            what = "weight_int" if isinstance(node, Dense | Conv2d) else "du, dv, vth and scale"
            _refuse(
                node.name,
                f"{type(node).__name__} has no {what}; netx export accepts fixed-point graphs "
                "only (quantise the graph first)",
            )
    chain = graph.feed_forward_nodes  # a population's own recurrent synapse aside
    for index in range(1, len(chain), 2):
        following = chain[index + 1] if index + 1 < len(chain) else None
        if not isinstance(following, CubaLIF):
            _refuse(
                chain[index].name,
                "netx layers are a synapse and its neurons: every Dense or Conv2d must be "
                "followed by a CubaLIF population",
            )


class NetxRuleError(PlanError, NetxExportError):
    """A block that netx's CUBA neuron cannot state."""


# What netx's CUBA neuron states; any other field of a population set is refused.
NETX_FIELDS = frozenset(("tau_m", "tau_s", "threshold", "du", "dv", "vth", "scale"))
ON_LAVA = "deploy it on Lava, where it runs as LIFVariant"


def netx_cuba_neuron(block: Block) -> None:
    """netx's neuron is Lava's CUBA LIF without a bias: the first field beyond it is refused."""
    population = block.population
    for name, _, _ in set_fields(population):
        if name not in NETX_FIELDS:
            raise NetxRuleError(
                "netx_cuba_neuron",
                population.name,
                f"{says(population, name)}, which netx's CUBA neuron cannot state ({ON_LAVA})",
                name,
                "the fields of netx's CUBA neuron",
            )


NETX_RULES: tuple[Rule, ...] = (netx_cuba_neuron,)


# ------------------------------------------------------------------------------------- writing


def _string(group: h5py.Group, key: str, value: str) -> None:
    group.create_dataset(key, (1,), STRING_DTYPE, [value.encode("ascii")])


def _integer(group: h5py.Group, key: str, value: Any) -> None:
    group.create_dataset(key, data=np.asarray(value, dtype=np.int64))


def _neuron(group: h5py.Group, node: CubaLIF) -> None:
    neuron = group.create_group("neuron")
    _string(neuron, "type", "CUBA")
    _integer(neuron, "iDecay", current_lost(node.du))  # netx gives Lava's LIF du = iDecay - 1
    _integer(neuron, "vDecay", node.dv)
    _integer(neuron, "vThMant", node.vth)
    _integer(neuron, "refDelay", REF_DELAY)
    neuron.create_dataset("gradedSpike", data=np.bool_(False))


def _layers(graph: Graph, input_layer: bool) -> list[dict[str, Any]]:
    """Every layer as (key -> value) in file order, checked before anything is written."""
    source: Input = graph.input
    layers: list[dict[str, Any]] = []
    if input_layer:
        layers.append(
            {"type": "input", "shape": list(source.shape), "attrs": {"node": source.name}}
        )
    previous: type | None = None
    for block in plan(graph, (*RULES, *NETX_RULES)).blocks:
        synapse, population = block.synapse, block.population
        attrs = {"synapse": synapse.name, "population": population.name}
        if isinstance(synapse, Dense):
            if previous is Conv2d:
                layers.append(
                    {
                        "type": "flatten",
                        "shape": [int(np.prod(block.in_shape))],
                        "attrs": {"node": f"{synapse.name}:flatten"},
                    }
                )
            out_features, in_features = synapse.weight_int.shape
            layer = {
                "type": "dense",
                "shape": list(block.shape),
                "inFeatures": in_features,
                "outFeatures": out_features,
                "weight": dense_weight(synapse),
            }
            if synapse.delay is not None:  # netx's DelayDense takes the (out, in) matrix
                layer["delay"] = synapse.delay
        else:
            out_channels, in_channels, kh, kw = synapse.weight_int.shape
            layer = {
                "type": "conv",
                "shape": list(block.shape),
                "inChannels": in_channels,
                "outChannels": out_channels,
                "kernelSize": [kh, kw],
                "stride": list(synapse.stride),
                "padding": list(synapse.padding),
                "dilation": [1, 1],
                "groups": 1,
                "weight": synapse.weight_int,
            }
        layer["neuron"] = population
        layer["attrs"] = attrs
        layers.append(layer)
        previous = type(synapse)
    return layers


def _write_layer(group: h5py.Group, layer: dict[str, Any]) -> None:
    for key, value in layer.items():
        if key == "type":
            _string(group, key, value)
        elif key == "weight":
            group.create_dataset(key, data=np.asarray(value, dtype=np.float64))
        elif key == "neuron":
            _neuron(group, value)
        elif key == "attrs":
            for name, text in value.items():
                group.attrs[name] = text
        else:
            _integer(group, key, value)


def how_to_run(graph: Graph, name: str) -> dict[str, str]:
    """What a netx user must pass and feed to get this graph's spikes; stored as root
    attributes, since netx's defaults (no reset, 0 message bits) give wrong spikes silently."""
    T, L = graph.T, len(graph.populations)
    first, last = output_columns(1, T, L)[0][[0, -1]] + 1  # sample 0's steps
    sent = input_steps(T)
    bits = int(graph.input.levels).bit_length()
    c, h, w = graph.input.shape
    layout = (
        f"laid out (W, H, C) = ({w}, {h}, {c}) (the image's (C, H, W) transposed)"
        if isinstance(graph.nodes[1], Conv2d)
        else f"flattened in (C, H, W) order, {c * h * w} values (net.inp is flat before a dense)"
    )
    plane = (
        f"; the last channel is not the image's: it is {graph.input.levels} everywhere (a "
        "constant plane carrying the input normalisation's offset)"
        if graph.input.constant_plane
        else ""
    )
    return {
        "load_with": (
            f"netx.hdf5.Network(net_config='{name}', input_message_bits={bits}, "
            f"reset_interval={T}, reset_offset=1)"
        ),
        "input_payload": (
            f"graded spikes round(x * {graph.input.levels}) of each input x in [0, 1], {layout}, "
            f"the same payload at each of the {T} steps of a sample: sample s at steps "
            f"{T}s+{sent[0]} .. {T}s+{sent[1]}{plane}"
        ),
        "output_window": (
            f"sample s's output spikes at steps {T}s+{first} .. {T}s+{last} "
            f"({L} layers, one step of delay each)"
        ),
    }


def save_netx(graph: Graph, path: Path | str, *, input_layer: bool = True) -> Path:
    """Write the lowered fixed-point `graph` as a netx hdf5 file at `path`, atomically."""
    _check_graph(graph)
    layers = _layers(graph, input_layer)
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs[PRODUCER_KEY] = PRODUCER
            f.attrs[VERSION_KEY] = version()
            f.attrs[GRAPH_NAME] = graph.name
            f.attrs[TIME_STEPS] = graph.T
            f.attrs[INPUT_LEVELS] = graph.input.levels
            f.attrs[PREDICTION] = graph.prediction
            f.attrs["input_message_bits"] = int(graph.input.levels).bit_length()
            for key, text in how_to_run(graph, path.name).items():
                f.attrs[key] = text
            root = f.create_group("layer")
            for index, layer in enumerate(layers):
                _write_layer(root.create_group(str(index)), layer)
    return path


# ------------------------------------------------------------------------------------- reading


def _read_group(group: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in group.items():
        out[key] = _read_group(item) if isinstance(item, h5py.Group) else item[()]
    if group.attrs:
        out["attrs"] = {key: _attr(value) for key, value in group.attrs.items()}
    return out


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_netx(path: Path | str) -> dict[str, Any]:
    """The file as nested dicts of raw stored values (numpy arrays and scalars, as h5py reads
    them): {"attrs": root attributes, "layer": [layer 0, layer 1, ...]}, each layer a dict of its
    datasets, `neuron` a dict, group attributes under "attrs"."""
    with h5py.File(path, "r") as f:
        root = f["layer"]
        count = len(root)
        if sorted(root.keys(), key=int) != [str(i) for i in range(count)]:
            raise ValueError(f"{path}: layer groups must be numbered 0..{count - 1}")
        return {
            "attrs": {key: _attr(value) for key, value in f.attrs.items()},
            "layer": [_read_group(root[str(i)]) for i in range(count)],
        }
