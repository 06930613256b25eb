"""A Loihi 2 CUBA LIF population that resets by subtraction: on a spike, v -= reset_sub.

Lava's LIF models zero v on a spike. Networks trained elsewhere with a subtractive reset
(snnTorch's default, Sinabs, Rockpool) get this project-owned process, whose fixed-point model
is Lava's `PyLifResetModelBitAcc` (decays, wrap, saturation, threshold, periodic reset for
streaming) with only the reset changed, the same arithmetic as the reference simulator. On a
Loihi 2 chip this needs a microcoded neuron program, which cannot be built or tested here.
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


class LIFSubtractReset(LIFReset):
    """`LIFReset` whose spikes subtract `reset_sub` from v instead of zeroing it."""

    def __init__(self, *, reset_sub: int, **params) -> None:
        super().__init__(**params)
        self.reset_sub = Var(shape=(1,), init=reset_sub)


@implements(proc=LIFSubtractReset, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLifSubtractResetModelBitAcc(PyLifResetModelBitAcc):
    implements_process = None  # the parent's is LIFReset; Lava refuses to change an inherited one
    reset_sub: int = LavaPyType(int, np.int32, precision=24)

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        self.v[spike_vector] -= self.reset_sub
