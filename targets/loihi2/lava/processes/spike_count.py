"""A Loihi 2 CUBA LIF population that emits spike counts as graded spikes.

Sinabs and Rockpool neurons emit, per step, as many spikes as thresholds their voltage crosses
(Sinabs' MultiSpike; Rockpool's `max_spikes_per_dt`) and subtract as many thresholds. This
project-owned process sends that count, min(max_spikes, #{k >= 1 : v > k (vth << 6)}), as the
payload of one graded spike (the next synapse has `num_message_bits` > 0, so it weighs the
payload), then subtracts `reset_sub` per spike, or zeroes v where it fired when `reset_sub` is
0. Its fixed-point model is Lava's `PyLifResetModelBitAcc` with only the spike and the reset
changed, the same arithmetic as the reference simulator. On a Loihi 2 chip this needs a
microcoded neuron program with graded spikes, which cannot be built or tested here.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifResetModelBitAcc
from lava.proc.lif.process import LIFReset


class LIFSpikeCount(LIFReset):
    """`LIFReset` whose output is a spike count up to `max_spikes`; reset_sub 0: reset to 0."""

    def __init__(self, *, reset_sub: int, max_spikes: int, **params) -> None:
        super().__init__(**params)
        self.reset_sub = Var(shape=(1,), init=reset_sub)
        self.max_spikes = Var(shape=(1,), init=max_spikes)


@implements(proc=LIFSpikeCount, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLifSpikeCountModelBitAcc(PyLifResetModelBitAcc):
    implements_process = None  # the parent's is LIFReset; Lava refuses to change an inherited one
    reset_sub: int = LavaPyType(int, np.int32, precision=24)
    max_spikes: int = LavaPyType(int, np.int32, precision=8)

    def spiking_activation(self) -> np.ndarray:
        counts = (self.v.astype(np.int64) - 1) // self.effective_vth
        return np.clip(counts, 0, self.max_spikes).astype(np.int32)

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        if not np.any(self.reset_sub):
            self.v[spike_vector > 0] = 0
        else:
            self.v -= (spike_vector * self.reset_sub).astype(self.v.dtype)
