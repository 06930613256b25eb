"""A Dense with synaptic delays that forgets the previous sample's delayed spikes.

Lava's DelayDense keeps what each delay has yet to deliver in a buffer; in a stream of samples,
spikes late in one sample would arrive in the next, which its population has just been reset
for. `SampleDelayDense` is Lava's bit-accurate DelayDense that empties that buffer at the step
its source's new sample begins, before it adds that step's spikes (the step before its
population's reset, `reset_offset - 1`), so that every sample sees only its own spikes, as in
the reference simulator. On a chip the same is clearing the delay buffer at a sample boundary.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.models import PyDelayDenseModelBitAcc
from lava.proc.dense.process import DelayDense


class SampleDelayDense(DelayDense):
    """DelayDense with its population's `reset_interval` and `reset_offset`."""

    def __init__(self, *, reset_interval: int, reset_offset: int, **params) -> None:
        super().__init__(reset_interval=reset_interval, reset_offset=reset_offset, **params)


@implements(proc=SampleDelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PySampleDelayDenseModelBitAcc(PyDelayDenseModelBitAcc):
    implements_process = None  # the parent's is DelayDense; Lava refuses to change an inherited one

    def calc_act(self, s_in: np.ndarray) -> np.ndarray:
        interval = self.proc_params["reset_interval"]
        if self.time_step % interval == (self.proc_params["reset_offset"] - 1) % interval:
            self.a_buff[:] = 0  # the previous sample's delayed spikes never arrive
        return super().calc_act(s_in)
