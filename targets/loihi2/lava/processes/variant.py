"""A Loihi 2 CUBA LIF population with the behaviours imported networks need, each off by default.

Lava's fixed-point LIF zeroes v on a spike, emits one spike, and adds its bias to v. Networks
trained elsewhere may instead
- subtract `reset_sub` from v per spike (snnTorch's default reset, Sinabs, Rockpool);
- emit spike counts, min(max_spikes, #{k >= 1 : v > k (vth << 6)}), as the payload of a graded
  spike (Sinabs' MultiSpike, Rockpool; the synapses they feed have `num_message_bits` > 0);
- carry a bias into the synaptic current, `synaptic_bias`, added to the synaptic input a every
  step (a NIR Affine's bias before a CubaLIF);
- hold v at 0 the step after a spike, `refractory` 1 (snnTorch's Synaptic resetting to zero);
- never spike and send v itself every step, `readout` 1 (a leaky integrator read out, NIR's LI;
  a graded spike of up to 24 bits to the sink);
- give each neuron its own `du`, `dv`, `vth` and `reset_sub` (networks that train their time
  constants and thresholds per neuron): Lava's LIF declares one of each for the population.
`LIFVariant`'s fixed-point model is Lava's `PyLifResetModelBitAcc` (decays, wrap, saturation,
threshold, the periodic reset for streaming) with only these changed, the same arithmetic as
the reference simulator. On a Loihi 2 chip each needs a microcoded neuron program, which cannot
be built or tested here.
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

NEVER = 2**30  # a reset interval no run reaches: one sample per run


class LIFVariant(LIFReset):
    """`LIFReset` with a subtractive reset (reset_sub > 0; 0: v = 0), spike counts
    (max_spikes > 1), a bias into the synaptic input, a refractory step, or no spikes but v
    sent every step (readout)."""

    def __init__(
        self,
        *,
        du: int | np.ndarray = 0,
        dv: int | np.ndarray = 0,
        vth: int | np.ndarray = 10,
        reset_sub: int | np.ndarray = 0,
        max_spikes: int = 1,
        synaptic_bias: int | np.ndarray = 0,
        refractory: int = 0,
        readout: int = 0,
        **params,
    ) -> None:
        super().__init__(**params)
        shape = params["shape"]
        self.du = Var(shape=shape, init=du)  # one per neuron: LIF's have shape (1,)
        self.dv = Var(shape=shape, init=dv)
        self.vth = Var(shape=shape, init=vth)
        self.reset_sub = Var(shape=shape, init=reset_sub)
        self.max_spikes = Var(shape=(1,), init=max_spikes)
        self.synaptic_bias = Var(shape=shape, init=synaptic_bias)
        self.refractory = Var(shape=(1,), init=refractory)
        self.readout = Var(shape=(1,), init=readout)
        self.fired = Var(shape=shape, init=0)  # the last step's spikes


@implements(proc=LIFVariant, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLifVariantModelBitAcc(PyLifResetModelBitAcc):
    implements_process = None  # the parent's is LIFReset; Lava refuses to change an inherited one
    du: np.ndarray = LavaPyType(np.ndarray, np.uint16, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.uint16, precision=12)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    reset_sub: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    max_spikes: int = LavaPyType(int, np.int32, precision=8)
    synaptic_bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    refractory: int = LavaPyType(int, np.int32, precision=1)
    readout: int = LavaPyType(int, np.int32, precision=1)
    fired: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)

    def subthr_dynamics(self, activation_in: np.ndarray) -> None:
        if self.time_step % self.reset_interval == self.reset_offset:
            self.fired[:] = 0  # a new sample: nothing fired before it
        super().subthr_dynamics((activation_in + self.synaptic_bias).astype(np.int32))
        if np.any(self.refractory):
            self.v[self.fired > 0] = 0

    def spiking_activation(self) -> np.ndarray:
        if np.any(self.readout):
            return self.v.copy()
        counts = (self.v.astype(np.int64) - 1) // self.effective_vth
        return np.clip(counts, 0, self.max_spikes).astype(np.int32)

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        if np.any(self.readout):
            return
        if np.any(self.reset_sub):
            self.v -= (spike_vector * self.reset_sub).astype(self.v.dtype)
        else:
            self.v[spike_vector > 0] = 0
        self.fired[:] = spike_vector
