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

Every per-block fact (shapes, message bits, LIF or `LIFVariant`) comes from the plan
(`targets.loihi2.plan`), the source stream from `targets.loihi2.stream`; the source RingBuffer
sends column (t - 1) % buffer at step t.

`targets.loihi2.lava` must be imported before anything from `lava` (this module's package does
that).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from targets.loihi2.formats import DELAY_MAX, message_bits
from targets.loihi2.plan import Block, lava_shape, plan, to_lava_order
from targets.loihi2.stream import source_shape
from targets.loihi2.timing import reset_offset, resets_every_population
from toolchain.errors import UserError
from toolchain.ir import Dense, Graph, GraphError

HW_MODULE = "lava.magma.core.model.nc"
TARGETS = ("lava-sim", "loihi")


class LavaTargetUnavailable(UserError, RuntimeError):
    """The requested Lava target cannot run here (Loihi 2 hardware without lava-loihi)."""


@dataclass
class LavaNetwork:
    """The processes of one built network; `source` is the process to run and stop."""

    graph: Graph
    blocks: tuple[Block, ...]
    source: Any
    sink: Any
    lifs: dict[str, Any]
    monitors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def buffer(self) -> int:
        """Columns of the source and sink RingBuffers."""
        return int(self.source.data.shape[-1])


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

    blocks = plan(graph).blocks
    names = [block.population.name for block in blocks]
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
    for k, block in enumerate(blocks, start=1):
        resets = _resets(k, reset_interval)
        connection = _synapse(block, port.shape, resets)
        port.connect(connection.s_in)
        params = dict(
            shape=block.lava_shape,
            **{key: _one_or_each(getattr(block.population, key), block) for key in DECAYS},
            **_bias(block),
            name=block.population.name,
        )
        if block.variant:
            from targets.loihi2.lava.processes.variant import LIFVariant

            lif = LIFVariant(**params, **_variant(block), **resets)
        elif reset_interval is None:
            lif = LIF(**params)
        else:
            lif = LIFReset(**params, **resets)
        connection.a_out.connect(lif.a_in)
        if block.recurrent is not None:
            own_bits = message_bits(False, block.population.max_spikes)
            _close_loop(lif, block.recurrent, resets, own_bits)
        lifs[block.population.name] = lif
        port = lif.s_out
        nxt = blocks[k].synapse if k < len(blocks) else None
        if isinstance(nxt, Dense) and len(block.lava_shape) > 1:
            port = port.flatten()  # C-order over (W, H, C); the Dense columns follow it
    sink = Sink(shape=blocks[-1].lava_shape, buffer=sink_buffer)
    lifs[blocks[-1].population.name].s_out.connect(sink.a_in)
    monitors: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(probe):
        monitors[name] = {}
        for var in ("u", "v"):
            monitor = Monitor()
            monitor.probe(getattr(lifs[name], var), probe_steps)
            monitors[name][var] = monitor
    return LavaNetwork(graph, blocks, source, sink, lifs, monitors)


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


def _bias(block: Block) -> dict[str, Any]:
    """Lava's bias_mant (in the population's Lava shape) and bias_exp; 0 without a bias."""
    population = block.population
    if population.bias_mant is None:
        return {"bias_mant": 0, "bias_exp": 0}
    return {"bias_mant": _per_neuron(population.bias_mant, block), "bias_exp": population.bias_exp}


def _lava_columns(matrix: np.ndarray, block: Block) -> np.ndarray:
    """A Dense's (out, in) integers with the columns in the order its source's spikes arrive:
    a Conv population's flattened in Lava's (W, H, C) order, where the graph's columns are in
    (C, H, W) order (the input payload is sent that way)."""
    matrix = matrix.astype(np.int32)
    if not block.first and len(block.in_shape) == 3:
        c, h, w = block.in_shape
        matrix = matrix[:, np.arange(c * h * w).reshape(c, h, w).transpose(2, 1, 0).ravel()]
    return np.ascontiguousarray(matrix)


DECAYS = ("du", "dv", "vth")


def _one_or_each(value: int | np.ndarray, block: Block) -> int | np.ndarray:
    """A parameter of the population: one int, or per neuron in Lava's shape (`LIFVariant`)."""
    return _per_neuron(value, block) if isinstance(value, np.ndarray) else int(value)


def _per_neuron(values: np.ndarray, block: Block) -> np.ndarray:
    """Per-channel (or per-neuron) integers over the population, in Lava's shape."""
    per_channel = values.reshape(-1, *[1] * (len(block.shape) - 1))
    spread = to_lava_order(np.broadcast_to(per_channel, block.shape), block.shape)
    return np.ascontiguousarray(spread, np.int32)


def _variant(block: Block) -> dict[str, Any]:
    """`LIFVariant`'s parameters for a population."""
    population = block.population
    synaptic_bias = population.synaptic_bias_int
    return {
        "reset_sub": _one_or_each(
            0 if population.reset_sub is None else population.reset_sub, block
        ),
        "max_spikes": int(population.max_spikes),
        "synaptic_bias": 0 if synaptic_bias is None else _per_neuron(synaptic_bias, block),
        "refractory": int(population.refractory),
        "readout": int(population.readout),
    }


def _synapse(block: Block, in_shape: tuple[int, ...], resets: dict[str, int]) -> Any:
    """The Lava Dense (SampleDelayDense with delays, emptied with its population's resets) or
    Conv of a block's synapse."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense as LavaDense
    from lava.utils.weightutils import SignMode

    node, bits = block.synapse, block.message_bits
    if isinstance(node, Dense):
        params = dict(
            weights=_lava_columns(node.weight_int, block),
            num_message_bits=bits,
            num_weight_bits=9,
            sign_mode=SignMode.MIXED,
            weight_exp=int(node.weight_exp),
        )
        if node.delay is None:
            return LavaDense(**params)
        from targets.loihi2.lava.processes.sample_delay_dense import SampleDelayDense

        delays = _lava_columns(node.delay, block).astype(int)  # DelayDense wants int, not int32
        return SampleDelayDense(**params, delays=delays, max_delay=DELAY_MAX, **resets)
    kernel = node.weight_int[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    return Conv(
        weight=np.ascontiguousarray(kernel, dtype=np.int32),
        input_shape=tuple(in_shape),
        stride=node.stride[::-1],  # Lava's (x, y) = (w, h)
        padding=node.padding[::-1],
        num_message_bits=bits,
        name=node.name,
    )
