"""Energy and time per inference from a placed network's counted activity, by a per-event model:
every event costs the energy and time SANA-FE's Loihi architecture file gives it.

The per-event figures are Loihi 1's (Davies et al., "Loihi: A Neuromorphic Manycore Processor
with On-Chip Learning", IEEE Micro 2018, from SPICE simulation), as SANA-FE (Boyle et al., IEEE
TCAD 2025) tabulates them in its `arch/loihi.yaml`; SANA-FE predicts Loihi's energy within 12 %
and latency within 25 % on its applications. Intel publishes no Loihi 2 table at this detail.
The static power is Loihi 2's: the idle power Intel's profiler measured for one chip in lava-dl's
PilotNet SNN benchmark (`tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb`, 0.232 W),
shared equally by its 128 neuro cores and counted for the cores the network holds.

Time: each layer's work is spread evenly over its cores, the cores run in parallel, and a step
lasts as long as the busiest core plus the barrier that ends it; an inference is T steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from targets.loihi2 import chip
from targets.loihi2.activity import Activity
from targets.loihi2.partition import Partition

MODEL = "SANA-FE Loihi 1 per-event table (Davies et al. 2018) + Loihi 2 measured static power"

# energy per event, joules (SANA-FE arch/loihi.yaml)
SYNAPTIC_OP_DENSE_J = 35.5e-12
SYNAPTIC_OP_CONV_J = 24.0e-12
NEURON_UPDATE_J = 21.6e-12
SPIKE_OUT_J = 69.3e-12
MESSAGE_J = 111.0e-12  # a spike message leaving its core for another

# time per event, seconds (same file)
SYNAPTIC_OP_DENSE_S = 4.0e-9
SYNAPTIC_OP_CONV_S = 3.1e-9
NEURON_UPDATE_S = 3.7e-9
SPIKE_OUT_S = 30.0e-9
MESSAGE_IN_S = 20.0e-9
BARRIER_S = 0.6e-6  # the time-step barrier, SANA-FE's smallest figure (up to 1.8 us)

STATIC_W_PER_CORE = 0.232 / chip.CORES_PER_CHIP  # Loihi 2, measured (module docstring)


@dataclass(frozen=True)
class Cost:
    model: str
    energy_per_inference_j: float
    dynamic_energy_per_inference_j: float
    time_per_step_s: float
    inferences_per_s: float


def estimate(placed: Partition, activity: Activity) -> Cost:
    """Energy and time of one inference of `placed` doing `activity`."""
    dynamic, busiest = 0.0, 0.0
    for layer, events in zip(placed.layers, activity.layers, strict=True):
        conv = layer.kind == "conv"
        op_j = SYNAPTIC_OP_CONV_J if conv else SYNAPTIC_OP_DENSE_J
        op_s = SYNAPTIC_OP_CONV_S if conv else SYNAPTIC_OP_DENSE_S
        dynamic += (
            events.synaptic_ops * op_j
            + events.neuron_updates * NEURON_UPDATE_J
            + events.output_spikes * SPIKE_OUT_J
            + events.messages_out * MESSAGE_J
        )
        work = (
            events.synaptic_ops * op_s
            + events.neuron_updates * NEURON_UPDATE_S
            + events.output_spikes * SPIKE_OUT_S
            + events.input_messages * MESSAGE_IN_S
        )
        busiest = max(busiest, work / (activity.steps * layer.cores))
    step = busiest + BARRIER_S
    inference = step * activity.steps
    static = STATIC_W_PER_CORE * placed.cores * inference
    return Cost(MODEL, dynamic + static, dynamic, step, 1.0 / inference)
