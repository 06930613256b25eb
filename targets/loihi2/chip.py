"""What one Loihi 2 chip and one of its neuro cores hold, and the figures of the partition model:
every limit the plan checks, with its source. Intel's compiler is closed; where a figure is
inferred, the comment says from what (see docs/loihi2-plan.md for the fit and its errors).

Sources:
  [brief]   Intel, "Taking Neuromorphic Computing to the Next Level with Loihi 2" (2021).
  [mnist]   lava-dl `tutorials/lava/lib/dl/netx/mnist/run.ipynb`: the compiler's "Per core
            utilization" table (percentages) of a 784-128-64-10 network.
  [oxford]  lava-dl `tutorials/lava/lib/dl/netx/oxford/run.ipynb`: its "Per core distribution"
            table and the partitioner's `SynMem` violations (200-256-200).
  [pilot]   lava-dl `tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb` and
            `pilotnet_sdnn/benchmark.ipynb`: their tables (conv tiles such as Conv(4, 32, 24)),
            violations and measured power.
  [lava]    Lava 0.10 `proc/dense`, `proc/lif`; lava-dl 0.6 `netx/utils.py` (delays).
"""

from __future__ import annotations

from targets.loihi2 import formats

CORES_PER_CHIP = 128  # [brief]: 128 neuro cores in an 8 x 16 mesh

# Per neuro core, in the units of the compiler's tables. Each capacity follows from a row of
# [mnist] (one core per row): 10 neurons are 0.24 % -> 4096; 784 input axons 4.90 %, 64 output
# axons 0.40 % and 2688 synapse words 16.80 % -> 16000.
NEURONS_PER_CORE = 4096
NEURON_GROUPS_PER_CORE = 8  # [mnist]: one group is 12.50 %
AXONS_IN_PER_CORE = 16000
AXON_MAP_PER_CORE = 16000
SYNAPSE_WORDS_PER_CORE = 16000  # 64-bit words: 128 KB of synaptic memory
# The partitioner splits a layer until each core's synapse words are at most this: the cost
# table's `SynMem` register in [oxford] and [pilot] ("registers['SynMem']=12000").
SYNAPSE_WORDS_TARGET = 12000

# Inferred: no dense core in the published tables holds 128 or more neurons, and the compiler put
# [oxford]'s 200 -> 256 layer on 3 cores of 85 where 2 cores of 128 are within every other limit
# it shows (8200 of 12000 synapse words). So a dense layer's core holds at most 127 of its neurons.
DENSE_NEURONS_PER_CORE = 127

# Synaptic memory, fitted to every dense row and violation of [mnist], [oxford] and [pilot]:
# an input axon's list costs ceil((n * (b + 12) + 16) / 64) words for n neurons of b-bit weights
# (a 12-bit neuron index per synapse, a 16-bit list header, 64-bit words). A convolution's
# kernel is shared: one list per input channel and kernel tap, ceil(C_out * b / 64) + 1 words.
WORD_BITS = 64
SYNAPSE_INDEX_BITS = 12
LIST_HEADER_BITS = 16

# Conv layers are tiled as the compiler does in [pilot]: a slice of the width, the full height,
# all channels; the width a power of two. No tile it chose holds 4096 neurons (PilotNet's 64 x 4
# x 22 layer gets tiles 8 wide, 2048 neurons, where 16 would make 4096), so a tile holds fewer.
TILE_NEURONS_BELOW = NEURONS_PER_CORE

# Formats the cores run without custom microcode [lava]
WEIGHT_BITS = 8  # mantissa; our weights are integers in [-256, 255] with one exponent
STATE_BITS = 24  # u and v
MESSAGE_BITS = 24  # graded spikes
DELAY_MAX = formats.DELAY_MAX  # synaptic and axonal delays, lava-dl netx (`Delay(max_delay=62)`)
# A parameter that differs between a layer's neurons is held per neuron, in its format's bits
# [lava] (LIF's du, dv: 12; vth: 17; our reset amount: 24, as u and v); the chip's own placement
# of such tables is not published, so the plan counts the bits and the distinct profiles.
PER_NEURON_PARAMETER_BITS = {"du": 12, "dv": 12, "vth": 17, "reset_sub": 24}
