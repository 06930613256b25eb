"""The plan's blocks placed on Loihi 2's neuro cores: how many cores each layer takes and what
each core holds, in the columns of Intel's compiler table (AxonIn, NeuronGr, Neurons, Synapses,
AxonMap per core, and Cores), so that a user knows whether a network fits before booking chip
time. The capacities and the synaptic-memory model are `chip`'s; docs/loihi2-plan.md says how
they were fitted to the compiler's published tables and how far this is from it on each.

A dense layer is split by output neurons the way the compiler's partitioner does (its log prints
"max_ratio"): start on one core and multiply the cores by ceil(the largest usage / its limit)
until every core is within its limits. A conv layer is tiled as the compiler tiles it: a slice of
the width (a power of two), the full height, all channels, as many neurons as a tile may hold,
then output channels split further if the shared kernel does not fit a core's synapse memory.
The input is sent by the host, as Lava sends it, and takes no core.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from targets.loihi2 import chip
from targets.loihi2.plan import Block, Plan
from toolchain.ir import Conv2d, Dense


@dataclass(frozen=True)
class Placement:
    """One block on its cores; the per-core figures are those of its fullest core."""

    name: str  # the population's
    kind: str  # "dense" or "conv"
    neurons: int
    cores: int
    neurons_per_core: int
    axons_in: int  # per core: dense, the fan-in (with any recurrent one); conv, source cores
    synapse_words: int  # per core, 64-bit words of synaptic memory
    synapse_words_total: int
    axon_map: int  # per core: output axons (one per neuron)
    weight_bits: int
    synapses: int  # weights the layer holds (a conv's shared kernel counted once)
    tile: tuple[int, int, int] | None  # conv: (width, height, channels), the compiler's Conv(...)
    profiles: int = 1  # distinct (du, dv, vth, reset_sub) among the neurons
    per_neuron_bits: int = 0  # bits each neuron holds for its own parameters (chip's formats)
    delay_bits: int = 0  # bits each synapse holds for its delay, beside its weight

    @property
    def neuron_groups(self) -> int:
        return 1

    @property
    def synaptic_memory_bits(self) -> int:
        return self.synapse_words_total * chip.WORD_BITS


@dataclass(frozen=True)
class Partition:
    """Every block of a plan on its cores."""

    plan: Plan
    layers: tuple[Placement, ...]

    @property
    def cores(self) -> int:
        return sum(layer.cores for layer in self.layers)

    @property
    def chips(self) -> int:
        return max(1, math.ceil(self.cores / chip.CORES_PER_CHIP))

    def layer(self, name: str) -> Placement:
        return next(layer for layer in self.layers if layer.name == name)


def partition(plan: Plan) -> Partition:
    """Place every block of a checked plan on neuro cores."""
    layers: list[Placement] = []
    for block in plan.blocks:
        source = layers[-1] if layers else None
        placed = _conv(block, source) if isinstance(block.synapse, Conv2d) else _dense(block)
        layers.append(dataclasses.replace(placed, **_parameters(block)))
    return Partition(plan, tuple(layers))


def _parameters(block: Block) -> dict[str, int]:
    """How many parameter profiles the population's neurons have, and the bits each neuron holds
    for those of its parameters that differ between neurons."""
    population = block.population
    keys = [key for key in chip.PER_NEURON_PARAMETER_BITS if getattr(population, key) is not None]
    each = [key for key in keys if key in population.per_neuron]
    columns = [
        np.broadcast_to(np.asarray(getattr(population, key)), block.shape[:1]) for key in keys
    ]
    profiles = len({tuple(row) for row in zip(*columns, strict=True)}) if columns else 1
    return {
        "profiles": profiles,
        "per_neuron_bits": sum(chip.PER_NEURON_PARAMETER_BITS[key] for key in each),
    }


# -------------------------------------------------------------------------- synaptic memory


def weight_bits(weight_int: np.ndarray) -> int:
    """The bits a weight takes in synaptic memory: the magnitude's, once the trailing zero bits
    all weights share are dropped, and a sign bit where any is negative (netx's
    `optimize_weight_bits` arrives at the same count for the tutorials' networks); at most the
    8-bit mantissa and its sign."""
    nonzero = np.abs(np.asarray(weight_int, dtype=np.int64))
    nonzero = nonzero[nonzero != 0]
    if nonzero.size == 0:
        return 1
    shared_zeros = int(np.min(nonzero & -nonzero)).bit_length() - 1
    magnitude = int(nonzero.max()) >> shared_zeros
    bits = magnitude.bit_length() + int(np.any(np.asarray(weight_int) < 0))
    return min(bits, chip.WEIGHT_BITS + 1)


def delay_bits(synapse: Dense | Conv2d) -> int:
    """The bits each synapse of a layer with delays holds for its delay: the largest delay's
    (6 for `chip.DELAY_MAX`); 0 without. How the compiler stores delays is not published, so
    this is a model: the delay beside the weight in every synapse list entry."""
    delay = getattr(synapse, "delay", None)
    return 0 if delay is None else int(delay.max()).bit_length()


def list_words(neurons: int, bits: int) -> int:
    """64-bit words of one input axon's synapse list to `neurons` neurons of `bits`-bit weights."""
    list_bits = neurons * (bits + chip.SYNAPSE_INDEX_BITS) + chip.LIST_HEADER_BITS
    return math.ceil(list_bits / chip.WORD_BITS)


def kernel_list_words(out_channels: int, bits: int) -> int:
    """64-bit words of one input channel's list at one kernel tap (a conv's shared weights)."""
    return math.ceil(out_channels * bits / chip.WORD_BITS) + 1


# ---------------------------------------------------------------------------------- dense


def _synapses(block: Block) -> list[Dense | Conv2d]:
    """The synapses into the block's neurons: its own and any recurrent one."""
    return [block.synapse] + ([block.recurrent] if block.recurrent is not None else [])


def _fan_ins(block: Block) -> list[tuple[int, int]]:
    """(input axons, bits per synapse: weight and delay) of each synapse into the block."""
    return [
        (int(s.weight_int.shape[-1]), weight_bits(s.weight_int) + delay_bits(s))
        for s in _synapses(block)
    ]


def _dense_words(fan_ins: list[tuple[int, int]], neurons: int) -> int:
    return sum(axons * list_words(neurons, bits) for axons, bits in fan_ins)


def _dense(block: Block) -> Placement:
    neurons, fan_ins = block.neurons, _fan_ins(block)
    cores = 1
    while True:
        per_core = math.ceil(neurons / cores)
        ratio = max(
            _dense_words(fan_ins, per_core) / chip.SYNAPSE_WORDS_TARGET,
            per_core / chip.DENSE_NEURONS_PER_CORE,
        )
        if ratio <= 1 or per_core == 1:
            break
        cores = min(neurons, cores * math.ceil(ratio))
    sizes = _split(neurons, cores)
    return Placement(
        name=block.population.name,
        kind="dense",
        neurons=neurons,
        cores=cores,
        neurons_per_core=sizes[0],
        axons_in=sum(axons for axons, _ in fan_ins),
        synapse_words=_dense_words(fan_ins, sizes[0]),
        synapse_words_total=sum(_dense_words(fan_ins, size) for size in sizes),
        axon_map=sizes[0],
        weight_bits=max(weight_bits(s.weight_int) for s in _synapses(block)),
        synapses=sum(axons for axons, _ in fan_ins) * neurons,
        tile=None,
        delay_bits=max(delay_bits(s) for s in _synapses(block)),
    )


def _split(items: int, parts: int) -> list[int]:
    """`items` split as evenly as possible into `parts`, the larger parts first."""
    base, extra = divmod(items, parts)
    return [base + 1] * extra + [base] * (parts - extra)


# ----------------------------------------------------------------------------------- conv


def tile_width(channels: int, height: int, width: int) -> int:
    """The widest power-of-two slice of the width whose neurons a tile may hold (at least 1)."""
    tile = 1 << max(0, width.bit_length() - 1)  # the largest power of two <= width
    while tile > 1 and tile * height * channels >= chip.TILE_NEURONS_BELOW:
        tile //= 2
    return tile


def _source_cores(conv: Conv2d, tile: int, source: Placement | None) -> int:
    """The source cores whose spikes reach one tile (a conv axon carries the spike's position,
    so a tile takes one input axon per source core; the host's input counts as one)."""
    if source is None:
        return 1
    if source.tile is None:
        return source.cores
    span = (tile - 1) * conv.stride[1] + conv.weight_int.shape[-1]  # input columns a tile reads
    return min(source.cores, math.ceil((span - 1) / source.tile[0]) + 1)


def _conv(block: Block, source: Placement | None) -> Placement:
    conv: Conv2d = block.synapse  # type: ignore[assignment]
    channels, height, width = block.shape
    out_channels, in_channels, kh, kw = conv.weight_int.shape
    bits = weight_bits(conv.weight_int)
    tile = tile_width(channels, height, width)
    groups = 1  # output channels split further where the shared kernel does not fit
    while True:
        per_group = math.ceil(out_channels / groups)
        words = in_channels * kh * kw * kernel_list_words(per_group, bits)
        if words <= chip.SYNAPSE_WORDS_TARGET or per_group == 1:
            break
        groups = min(out_channels, groups * math.ceil(words / chip.SYNAPSE_WORDS_TARGET))
    cores = math.ceil(width / tile) * groups
    per_core = tile * height * per_group
    return Placement(
        name=block.population.name,
        kind="conv",
        neurons=block.neurons,
        cores=cores,
        neurons_per_core=per_core,
        axons_in=_source_cores(conv, tile, source),
        synapse_words=words,
        synapse_words_total=words * cores,
        axon_map=per_core,
        weight_bits=bits,
        synapses=int(conv.weight_int.size),
        tile=(tile, height, per_group),
    )
