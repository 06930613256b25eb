"""Loihi 2's number formats as Lava's fixed-point LIF and Dense use them, and the float map.

A population with scale `lam` holds lam * (float membrane) as its integer voltage and
lam * (float synaptic current) as its integer current. Its incoming synapse then needs
    64 * 2**weight_exp * w_int = lam * W / (tau_s * unit)
where `unit` is the integer payload of one float unit on the wire: 1 for spikes, `levels` for
the graded-spike input. Decays: the current keeps (4096 - (du + 1)) / 4096 per step and the
voltage (4096 - dv) / 4096, so du = round(4096 / tau_s) - 1 and dv = round(4096 / tau_m).
"""

from __future__ import annotations

import numpy as np

from toolchain.graph import DU_MAX, DV_MAX, VTH_MAX, WEIGHT_MAX, WEIGHT_MIN

STATE_LIMIT = 2**23 - 1  # u and v live in 24 signed bits
ACT_SHIFT = 6  # Lava shifts synaptic input and the threshold mantissa left by 6


def current_decay(tau_s: float) -> int:
    """Lava's `du` for a synaptic time constant (mind the +1 offset Lava adds)."""
    return int(np.clip(round(4096 / tau_s) - 1, 0, DU_MAX))


def voltage_decay(tau_m: float) -> int:
    """Lava's `dv` for a membrane time constant."""
    return int(np.clip(round(4096 / tau_m), 0, DV_MAX))


def weight_factor(scale: float, tau_s: float, unit: int, weight_exp: int) -> float:
    """Integer weight per float weight for a synapse into a population of this scale."""
    return scale / (2**ACT_SHIFT * tau_s * unit * 2.0**weight_exp)


def quantize_weights(weight: np.ndarray, factor: float) -> tuple[np.ndarray, int]:
    """round(weight * factor) clipped to Loihi's range; also how many weights were clipped."""
    scaled = np.rint(weight.astype(np.float64) * factor)
    clipped = int(np.count_nonzero((scaled < WEIGHT_MIN) | (scaled > WEIGHT_MAX)))
    return np.clip(scaled, WEIGHT_MIN, WEIGHT_MAX).astype(np.int32), clipped


def threshold_mantissa(threshold: float, scale: float) -> int:
    """`vth`: Lava spikes when v > vth << 6."""
    return int(np.clip(round(scale * threshold / 2**ACT_SHIFT), 1, VTH_MAX))


def max_scale_for_threshold(threshold: float) -> float:
    """The largest scale whose threshold mantissa still fits its 17 bits."""
    return (VTH_MAX + 0.49) * 2**ACT_SHIFT / threshold
