"""A Dense from a population back to itself that forgets the previous sample.

Lava's Dense sends at step t what its source spiked at step t - 1, so a recurrent Dense would
carry the last spikes of one streamed sample into the first step of the next, which the
population has just been reset for. `RecurrentDense` is Lava's bit-accurate Dense that sends
nothing at the steps t with t % reset_interval == reset_offset (the population's own reset
steps), so that every sample starts from silence, as in the reference simulator. On a chip the
same is a reset of the synapse's output at the sample boundary.
"""

from __future__ import annotations

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.models import AbstractPyDenseModelBitAcc
from lava.proc.dense.process import Dense


class RecurrentDense(Dense):
    """Dense with `reset_interval` and `reset_offset`: silent at the population's reset steps."""

    def __init__(self, *, reset_interval: int, reset_offset: int, **params) -> None:
        super().__init__(reset_interval=reset_interval, reset_offset=reset_offset, **params)


@implements(proc=RecurrentDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyRecurrentDenseModelBitAcc(AbstractPyDenseModelBitAcc):
    def run_spk(self) -> None:
        interval = self.proc_params["reset_interval"]
        if self.time_step % interval == self.proc_params["reset_offset"] % interval:
            self.a_buff[:] = 0  # the previous sample's last spikes never arrive
        super().run_spk()
