"""Loihi 2's design rules: what a placed block must meet to run on the chip. Each rule is a small
named function of a block and its placement that raises `PlanError` (rule, layer, value, limit);
`violations` collects every one, `require_fit` raises the first, so that `deploy --target loihi`
refuses a graph before it looks for Intel's lava-loihi, on any machine.

What the graph's own ranges already guarantee is not repeated here: 8-bit weight mantissas and
their exponents, 17-bit thresholds and 13-bit biases within the 24-bit state, spike counts in 8
and the input's payload in 16 of the 24 message bits (`toolchain.ir.nodes` refuses anything
else), and synaptic delays up to `chip.DELAY_MAX`.
"""

from __future__ import annotations

from collections.abc import Callable

from targets.loihi2 import chip
from targets.loihi2.partition import Partition, Placement
from targets.loihi2.plan import Block, PlanError, per_neuron_lif_fields, variant_fields
from toolchain.ir import Conv2d
from toolchain.ir.fields import described_field, says

ChipRule = Callable[[Block, Placement], None]


def neurons_fit_a_core(block: Block, placed: Placement) -> None:
    """A conv tile is at least one column of the output (full height, all channels)."""
    if isinstance(block.synapse, Conv2d):
        channels, height, _ = block.shape
        if channels * height >= chip.TILE_NEURONS_BELOW:
            raise PlanError(
                "neurons_fit_a_core",
                placed.name,
                "one column of the conv output (height x channels) does not fit a neuro core",
                channels * height,
                chip.TILE_NEURONS_BELOW - 1,
            )


def axons_fit_a_core(block: Block, placed: Placement) -> None:
    """Every input axon of a dense layer reaches every core it is split over."""
    if placed.axons_in > chip.AXONS_IN_PER_CORE:
        raise PlanError(
            "axons_fit_a_core",
            placed.name,
            "its fan-in needs more input axons than a neuro core has",
            placed.axons_in,
            chip.AXONS_IN_PER_CORE,
        )


def synapses_fit_a_core(block: Block, placed: Placement) -> None:
    """Split as far as it goes (one neuron, or one output channel, per core), a core's synapse
    lists must still fit its synaptic memory."""
    if placed.synapse_words > chip.SYNAPSE_WORDS_PER_CORE:
        raise PlanError(
            "synapses_fit_a_core",
            placed.name,
            "its synapses need more 64-bit words than a neuro core's synaptic memory holds",
            placed.synapse_words,
            chip.SYNAPSE_WORDS_PER_CORE,
        )


def runs_without_microcode(block: Block, placed: Placement) -> None:
    """Loihi 2 runs Lava's CUBA LIF as it ships; the project's `LIFVariant` behaviours would
    need custom neuron microcode, which no public toolchain compiles."""
    if block.variant:
        fields = variant_fields(block.population)
        described = [name for name in fields if described_field(block.population, name)]
        what = [says(block.population, name) for name in described or fields]
        each = per_neuron_lif_fields(block.population)
        if each:
            what.append(f"sets {', '.join(each)} per neuron")
        raise PlanError(
            "runs_without_microcode",
            placed.name,
            "its neuron model needs custom microcode on the chip",
            "; ".join(what),
            "Lava's CUBA LIF",
        )


CHIP_RULES: tuple[ChipRule, ...] = (
    neurons_fit_a_core,
    axons_fit_a_core,
    synapses_fit_a_core,
    runs_without_microcode,
)


def violations(placed: Partition) -> list[PlanError]:
    """Every broken rule of every block, in graph order."""
    found = []
    for block, layer in zip(placed.plan.blocks, placed.layers, strict=True):
        for rule in CHIP_RULES:
            try:
                rule(block, layer)
            except PlanError as error:
                found.append(error)
    return found


def require_fit(placed: Partition) -> None:
    """Raise the first broken rule (for commands that must not start a chip run)."""
    found = violations(placed)
    if found:
        raise found[0]
