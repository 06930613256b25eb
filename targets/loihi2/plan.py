"""The Loihi 2 plan of a lowered fixed-point Graph: the one checked description of what the chip
holds, which the reference simulator, the Lava builder and the netx writer all read.

`plan(graph)` pairs every synapse with the population it feeds, a `Block` (as lava-dl treats a
synapse and its neuron as one block), and works out once what each back-end needs: the shapes
in graph order and in Lava's (W, H, C) layout, the largest integer its source sends per step and
the message bits that carry it, whether Lava's stock LIF runs the population or it needs the
project's `LIFVariant`, and the columns of its time window. Then every rule of `RULES` checks
every block: each rule is a small named function that refuses with a `PlanError` naming the
rule, the block, the value and the limit. A target's format adds its own rules (the netx writer:
`toolchain.io.netx_write.NETX_RULES`). The partition onto neuro cores and its cost model (issue
24) will add per-core facts to the blocks and rules of their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from targets.loihi2 import formats
from targets.loihi2.timing import population_window, resets_every_population, steps_for
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph, GraphError
from toolchain.ir.fields import set_fields


class PlanError(GraphError):
    """A graph that breaks a design rule; the message names the rule, block, value and limit."""

    def __init__(self, rule: str, block: str, what: str, value: object, limit: object) -> None:
        super().__init__(f"node {block!r}: {what} ({rule}: {value}, limit {limit})")
        self.rule, self.block, self.value, self.limit = rule, block, value, limit


# ------------------------------------------------------------------------------ Lava's layout


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


# What Lava's stock LIF takes (with LIFReset's periodic reset); any other field of a population
# set (a reset by subtraction, spike counts, a synaptic bias, a refractory step, a read-out, or a
# field added later) needs the project's `LIFVariant`.
LIF_FIELDS = frozenset(
    ("tau_m", "tau_s", "threshold", "du", "dv", "vth", "scale", "bias", "bias_mant", "bias_exp")
)


def needs_variant(population: CubaLIF) -> bool:
    """Whether Lava's LIF cannot run the population as it is, so that it needs `LIFVariant`."""
    return bool(variant_fields(population) or per_neuron_lif_fields(population))


def variant_fields(population: CubaLIF) -> list[str]:
    """The set fields Lava's LIF does not take."""
    return [name for name, _, _ in set_fields(population) if name not in LIF_FIELDS]


# Lava's LIF declares one du, dv and vth for the population (Vars of shape (1,)).
LIF_SHARED = ("du", "dv", "vth")


def per_neuron_lif_fields(population: CubaLIF) -> list[str]:
    """Lava's LIF parameters that differ between the population's neurons."""
    return [name for name in population.per_neuron if name in LIF_SHARED]


# ------------------------------------------------------------------------------------ blocks


@dataclass(frozen=True)
class Block:
    """A synapse and the population it feeds, as the chip holds them."""

    index: int  # 0-based, in the order a sample passes through them
    synapse: Dense | Conv2d
    population: CubaLIF
    shape: tuple[int, ...]  # the population's, graph order: (n,) or (C, H, W)
    in_shape: tuple[int, ...]  # the synapse's source, graph order
    recurrent: Dense | None  # the population's own spikes of the previous step
    source_payload: int  # the largest integer one source element sends per step
    message_bits: int  # Lava's num_message_bits of the synapse (0: binary spikes)
    variant: bool  # `needs_variant`
    window: slice  # the columns of a sample's recording that hold its float steps 0 .. T-1

    @property
    def first(self) -> bool:
        """Fed by the input's graded spikes."""
        return self.index == 0

    @property
    def neurons(self) -> int:
        return math.prod(self.shape)

    @property
    def lava_shape(self) -> tuple[int, ...]:
        return lava_shape(self.shape)

    @property
    def sum_bound(self) -> int:
        """No synaptic sum of this block can exceed it."""
        return formats.sum_bound(self.synapse.weight_int, self.source_payload)


@dataclass(frozen=True)
class Plan:
    """Every block of a graph, checked against `RULES`."""

    graph: Graph
    blocks: tuple[Block, ...]

    @property
    def steps_per_sample(self) -> int:
        """Lava steps one sample takes through every block."""
        return steps_for(1, self.graph.T, len(self.blocks))

    @property
    def resets(self) -> bool:
        """Whether every population must be reset when a sample reaches it."""
        return resets_every_population(self.graph)

    def block(self, population: str) -> Block:
        return next(b for b in self.blocks if b.population.name == population)


def plan(graph: Graph, rules: Sequence[Rule] | None = None) -> Plan:
    """The checked plan of a lowered fixed-point graph; GraphError for one that is not (naming
    the node), PlanError for one that breaks a rule of `rules` (default `RULES`)."""
    pairs = graph.deployable_layers(recurrent=True)
    shapes = graph.shapes()
    blocks, source_spikes = [], 1
    for index, (synapse, population) in enumerate(pairs):
        first = index == 0
        blocks.append(
            Block(
                index=index,
                synapse=synapse,
                population=population,
                shape=shapes[graph.nodes.index(population)],
                in_shape=shapes[graph.nodes.index(graph.node(graph.sources(synapse.name)[0]))],
                recurrent=graph.recurrent_synapse(population),
                source_payload=formats.largest_payload(graph.input.levels, first, source_spikes),
                message_bits=formats.message_bits(first, source_spikes),
                variant=needs_variant(population),
                window=population_window(graph, index),
            )
        )
        source_spikes = population.max_spikes
    checked = Plan(graph, tuple(blocks))
    for block in checked.blocks:  # the first block's first broken rule is the one reported
        for rule in RULES if rules is None else rules:
            rule(block)
    return checked


# ----------------------------------------------------------------------------- design rules

Rule = Callable[[Block], None]


def conv_sums_in_int32(block: Block) -> None:
    """Lava's Conv casts its sum to int32, which is undefined beyond it."""
    if isinstance(block.synapse, Conv2d) and block.sum_bound >= formats.INT32_LIMIT:
        raise PlanError(
            "conv_sums_in_int32",
            block.synapse.name,
            "a convolution's sums reach 2^31, where Lava's Conv casts them to int32",
            block.sum_bound,
            formats.INT32_LIMIT - 1,
        )


def no_delay_in_a_loop(block: Block) -> None:
    """A population's own spikes come back one step later; no delay is modelled on that loop."""
    recurrent = block.recurrent
    if recurrent is not None and recurrent.delay is not None:
        raise PlanError(
            "no_delay_in_a_loop",
            recurrent.name,
            "a recurrent synapse with delays",
            int(recurrent.delay.max()),
            0,
        )


RULES: tuple[Rule, ...] = (conv_sums_in_int32, no_delay_in_a_loop)
