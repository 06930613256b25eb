"""Build Lava 0.10.0 processes from a lowered fixed-point Graph.

The network is the one the reference simulator (`targets.loihi2.simulator`) models bit for bit:

    RingBuffer source (int32 graded payloads) -> Dense | Conv -> LIF -> Dense | Conv -> LIF ...
    -> sink RingBuffer on the output population

- Dense: `sign_mode=MIXED, num_weight_bits=9`, so every integer weight in [-256, 254] is kept as
  it is, `weight_exp` from the graph, `num_message_bits=16` on the input synapse (graded
  payloads) and 0 (binary spikes) after a population.
- Conv: Lava convolves over (W, H, C) with kernels (out, kw, kh, in), flipped: the graph's
  (out, in, kh, kw) kernel becomes `W[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)`; its populations
  have Lava's (W, H, C) shape. A Dense after a Conv population reads that population's spikes
  flattened in (W, H, C) order, so its weight columns (graph order (C, H, W)) are permuted.
- LIF: the graph's du, dv, vth, bias_mant and bias_exp (per channel of a convolutional
  population, broadcast over its (W, H, C)); with a bias, per-sample runs also reset each
  population at its window (the bias charges v before the sample arrives). A population that
  resets by subtraction, emits spike counts, has a bias into its synaptic current or a
  refractory step, or reads out its membrane is a `LIFVariant` (`processes/variant.py`), the
  same model with those changed; counts travel as graded spikes (`num_message_bits` 8 on the
  synapses they feed), a readout's v as a graded spike to the sink. For streaming many samples
  through one compiled network,
  `LIFReset(reset_interval=T, reset_offset=(k + 1) % T)` zeroes u and v of population k (1-based)
  before its update at the steps t with t % T == (k + 1) % T: population k processes sample w at
  steps w*T + k + 1 .. w*T + k + T (one step of delay per synapse), so each sample starts from
  the zero state, as in the reference. Lava's fixed-point LIFReset model (`PyLifResetModelBitAcc`)
  is `AbstractPyLifModelFixed`'s dynamics with that reset in front: identical to LIF's otherwise.

Stream layout (`stream_columns`): sample w's payload is sent at steps w*T + 1 .. w*T + T, zeros
after the last sample; the source RingBuffer sends column (t - 1) % buffer at step t.

`targets.loihi2.lava` must be imported before anything from `lava` (this module's package does
that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from targets.loihi2.formats import conv_sum_problem, largest_payload, message_bits
from targets.loihi2.timing import reset_offset, resets_every_population
from toolchain.errors import UserError
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph, GraphError

HW_MODULE = "lava.magma.core.model.nc"
TARGETS = ("lava-sim", "loihi")


class LavaTargetUnavailable(UserError, RuntimeError):
    """The requested Lava target cannot run here (Loihi 2 hardware without lava-loihi)."""


@dataclass(frozen=True)
class Layer:
    """A synapse and the population it feeds, with the population's shapes."""

    synapse: Dense | Conv2d
    population: CubaLIF
    shape: tuple[int, ...]  # graph order: (n,) or (C, H, W)
    in_shape: tuple[int, ...]  # the synapse's source, graph order
    recurrent: Dense | None = None  # the population's own spikes of the previous step
    source_spikes: int = 1  # the largest spike count the source population sends (1: spikes)

    @property
    def lava_shape(self) -> tuple[int, ...]:
        return lava_shape(self.shape)


@dataclass
class LavaNetwork:
    """The processes of one built network; `source` is the process to run and stop."""

    graph: Graph
    layers: list[Layer]
    source: Any
    sink: Any
    lifs: dict[str, Any]
    monitors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def buffer(self) -> int:
        """Columns of the source and sink RingBuffers."""
        return int(self.source.data.shape[-1])


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Graph shape (C, H, W) -> Lava's (W, H, C); (n,) stays."""
    return tuple(reversed(shape)) if len(shape) == 3 else tuple(shape)


def to_lava_order(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Values (..., *shape) in graph order -> (..., *lava_shape(shape))."""
    if len(shape) != 3:
        return x
    lead = x.ndim - 3
    return x.transpose(*range(lead), lead + 2, lead + 1, lead)


def from_lava_order(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Values (..., *lava_shape(shape)) -> (..., *shape) in graph order."""
    return to_lava_order(x, lava_shape(shape))  # reversing the three axes is its own inverse


def source_shape(graph: Graph) -> tuple[int, ...]:
    """The input payload's shape in graph order: (C, H, W) before a Conv, else (C*H*W,)."""
    if isinstance(graph.nodes[1], Conv2d):
        return tuple(graph.input.shape)
    return (math.prod(graph.input.shape),)


def deployable_layers(graph: Graph) -> list[Layer]:
    """The (synapse, population) pairs of a lowered fixed-point graph; GraphError otherwise."""
    shapes = graph.shapes()
    layers = []
    source_spikes = 1
    for index, (synapse, population) in enumerate(graph.deployable_layers(recurrent=True)):
        if isinstance(synapse, Conv2d):
            problem = conv_sum_problem(
                synapse.weight_int, largest_payload(graph.input.levels, index == 0, source_spikes)
            )
            if problem:
                raise GraphError(f"node {synapse.name!r}: {problem}")
        shape = shapes[graph.nodes.index(population)]
        in_shape = shapes[graph.nodes.index(graph.node(graph.sources(synapse.name)[0]))]
        recurrent = graph.recurrent_synapse(population)
        if recurrent is not None and len(shape) != 1:
            raise GraphError(
                f"node {recurrent.name!r}: a recurrent synapse on Lava needs a dense population"
            )
        layers.append(Layer(synapse, population, shape, in_shape, recurrent, source_spikes))
        source_spikes = population.max_spikes
    return layers


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


def run_config(target: str) -> Any:
    """The Lava run configuration of a target: "lava-sim" (CPU, fixed_pt) or "loihi"."""
    if target == "lava-sim":
        from lava.magma.core.run_configs import Loihi2SimCfg

        return Loihi2SimCfg(select_tag="fixed_pt")
    if target == "loihi":
        try:
            __import__(HW_MODULE)
        except ImportError as error:
            raise LavaTargetUnavailable(
                "target 'loihi': running on Loihi 2 hardware needs Intel's proprietary"
                f" lava-loihi extension (available to INRC members); the module {HW_MODULE!r}"
                f" is not importable ({error}). Use --target lava-sim to run the same network"
                " bit-accurately on the CPU (Lava's fixed_pt simulation)."
            ) from error
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg()
    raise ValueError(f"unknown Lava target {target!r}; expected one of {TARGETS}")


def build_network(
    graph: Graph,
    source_data: np.ndarray,
    *,
    sink_buffer: int,
    reset_interval: int | None = None,
    probe: Sequence[str] = (),
    probe_steps: int = 0,
) -> LavaNetwork:
    """Create (not run) the processes for `graph`, fed by `source_data` (*lava_in, buffer).

    reset_interval: None for plain LIF populations (one sample per run), else T: LIFReset
    populations that start every sample window from zero (streaming).
    probe: population names whose u and v are recorded by Monitors for `probe_steps` steps.
    """
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF, LIFReset
    from lava.proc.monitor.process import Monitor

    layers = deployable_layers(graph)
    names = [layer.population.name for layer in layers]
    unknown = [name for name in probe if name not in names]
    if unknown:
        raise GraphError(f"cannot probe {unknown}: not populations of the graph ({names})")
    expected = lava_shape(source_shape(graph))
    if source_data.shape[:-1] != expected:
        raise ValueError(f"source data has shape {source_data.shape}, expected (*{expected}, S)")

    if reset_interval is None and resets_every_population(graph):
        reset_interval = graph.T
    source = Source(data=np.ascontiguousarray(source_data, dtype=np.int32))
    port = source.s_out
    lifs: dict[str, Any] = {}
    for k, layer in enumerate(layers, start=1):
        bits = message_bits(k == 1, layer.source_spikes)
        connection = _synapse(layer, port.shape, k == 1, bits)
        port.connect(connection.s_in)
        params = dict(
            shape=layer.lava_shape,
            du=int(layer.population.du),
            dv=int(layer.population.dv),
            vth=int(layer.population.vth),
            **_bias(layer),
            name=layer.population.name,
        )
        resets = _resets(k, reset_interval)
        if _is_variant(layer.population):
            from targets.loihi2.lava.processes.variant import LIFVariant

            lif = LIFVariant(**params, **_variant(layer), **resets)
        elif reset_interval is None:
            lif = LIF(**params)
        else:
            lif = LIFReset(**params, **resets)
        connection.a_out.connect(lif.a_in)
        if layer.recurrent is not None:
            own_bits = message_bits(False, layer.population.max_spikes)
            _close_loop(lif, layer.recurrent, resets, own_bits)
        lifs[layer.population.name] = lif
        port = lif.s_out
        nxt = layers[k].synapse if k < len(layers) else None
        if isinstance(nxt, Dense) and len(layer.lava_shape) > 1:
            port = port.flatten()  # C-order over (W, H, C); the Dense columns follow it
    sink = Sink(shape=layers[-1].lava_shape, buffer=sink_buffer)
    lifs[layers[-1].population.name].s_out.connect(sink.a_in)
    monitors: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(probe):
        monitors[name] = {}
        for var in ("u", "v"):
            monitor = Monitor()
            monitor.probe(getattr(lifs[name], var), probe_steps)
            monitors[name][var] = monitor
    return LavaNetwork(graph, layers, source, sink, lifs, monitors)


def _resets(population: int, reset_interval: int | None) -> dict[str, int]:
    """When population `population` (1-based) is reset: at its sample windows, or never."""
    from targets.loihi2.lava.processes.variant import NEVER

    if reset_interval is None:
        return {"reset_interval": NEVER, "reset_offset": 0}
    return {
        "reset_interval": reset_interval,
        "reset_offset": reset_offset(population, reset_interval),
    }


def _close_loop(lif: Any, recurrent: Dense, resets: dict[str, int], bits: int) -> None:
    """lif.s_out -> RecurrentDense -> lif.a_in, silent at the population's reset steps."""
    from lava.utils.weightutils import SignMode

    from targets.loihi2.lava.processes.recurrent_dense import RecurrentDense

    loop = RecurrentDense(
        weights=np.ascontiguousarray(recurrent.weight_int.astype(np.int32)),
        num_message_bits=bits,
        num_weight_bits=9,
        sign_mode=SignMode.MIXED,
        weight_exp=int(recurrent.weight_exp),
        name=recurrent.name,
        **resets,
    )
    lif.s_out.connect(loop.s_in)
    loop.a_out.connect(lif.a_in)


def _bias(layer: Layer) -> dict[str, Any]:
    """Lava's bias_mant (in the population's Lava shape) and bias_exp; 0 without a bias."""
    population = layer.population
    if population.bias_mant is None:
        return {"bias_mant": 0, "bias_exp": 0}
    return {"bias_mant": _per_neuron(population.bias_mant, layer), "bias_exp": population.bias_exp}


def _per_neuron(values: np.ndarray, layer: Layer) -> np.ndarray:
    """Per-channel (or per-neuron) integers over the population, in Lava's shape."""
    per_channel = values.reshape(-1, *[1] * (len(layer.shape) - 1))
    spread = to_lava_order(np.broadcast_to(per_channel, layer.shape), layer.shape)
    return np.ascontiguousarray(spread, np.int32)


def _is_variant(population: CubaLIF) -> bool:
    """Whether Lava's LIF cannot run it as it is: it needs `LIFVariant`."""
    return (
        population.reset_sub is not None
        or population.max_spikes > 1
        or population.synaptic_bias_int is not None
        or bool(population.refractory)
        or population.readout
    )


def _variant(layer: Layer) -> dict[str, Any]:
    """`LIFVariant`'s parameters for a population."""
    population = layer.population
    synaptic_bias = population.synaptic_bias_int
    return {
        "reset_sub": int(population.reset_sub or 0),
        "max_spikes": int(population.max_spikes),
        "synaptic_bias": 0 if synaptic_bias is None else _per_neuron(synaptic_bias, layer),
        "refractory": int(population.refractory),
        "readout": int(population.readout),
    }


def _synapse(layer: Layer, in_shape: tuple[int, ...], first: bool, bits: int) -> Any:
    """The Lava Dense or Conv of a layer's synapse; `bits`: its `num_message_bits`."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense as LavaDense
    from lava.utils.weightutils import SignMode

    node = layer.synapse
    if isinstance(node, Dense):
        weight = node.weight_int.astype(np.int32)
        if not first and len(layer.in_shape) == 3:
            # A Conv population's spikes arrive flattened in Lava's (W, H, C) order; the
            # graph's columns are in (C, H, W) order (the input payload is sent that way).
            c, h, w = layer.in_shape
            weight = weight[:, np.arange(c * h * w).reshape(c, h, w).transpose(2, 1, 0).ravel()]
        return LavaDense(
            weights=np.ascontiguousarray(weight),
            num_message_bits=bits,
            num_weight_bits=9,
            sign_mode=SignMode.MIXED,
            weight_exp=int(node.weight_exp),
        )
    kernel = node.weight_int[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    return Conv(
        weight=np.ascontiguousarray(kernel, dtype=np.int32),
        input_shape=tuple(in_shape),
        stride=node.stride[::-1],  # Lava's (x, y) = (w, h)
        padding=node.padding[::-1],
        num_message_bits=bits,
        name=node.name,
    )
