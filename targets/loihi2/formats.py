"""Loihi 2's number formats as Lava 0.10.0's fixed-point LIF, Dense and Conv use them: every
constant of the chip's arithmetic and every conversion between float and integer, in one place.

A population with scale `lam` holds lam * (float membrane) as its integer voltage and
lam * (float synaptic current) as its integer current. Its incoming synapse then needs
    64 * 2**weight_exp * w_int = lam * W / (tau_s * unit)
where `unit` is the integer payload of one float unit on the wire: 1 for spikes, `levels` for
the graded-spike input. Decays are 12-bit fractions: the current keeps (4096 - (du + 1)) / 4096
per step (Lava adds 1 to du) and the voltage (4096 - dv) / 4096, so du = round(4096 / tau_s) - 1
and dv = round(4096 / tau_m). Synaptic input and the threshold mantissa are shifted left by 6.
"""

from __future__ import annotations

import numpy as np

WEIGHT_MIN, WEIGHT_MAX = -256, 254  # mixed-sign 8-bit mantissa (netx keeps odd values)
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7
DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT  # 4096: decays are fractions of it
DU_OFFSET = 1  # Lava's fixed-point LIF decays the current by du + 1
DU_MAX, DV_MAX = DECAY_UNITY - 1, DECAY_UNITY
ACT_SHIFT = 6  # Lava shifts synaptic input and the threshold mantissa left by 6
VTH_MAX = 2**17 - 1  # 17-bit mantissa: vth << 6 stays below 2**23
BIAS_MANT_MIN, BIAS_MANT_MAX = -(2**12), 2**12 - 1  # 13-bit signed mantissa
BIAS_EXP_MAX = 7  # 3-bit exponent: the bias added to v each step is bias_mant << bias_exp
STATE_LIMIT = 2**23 - 1  # u and v live in 24 signed bits; v saturates at +-STATE_LIMIT
SYNAPTIC_BIAS_LIMIT = STATE_LIMIT >> ACT_SHIFT  # a bias into a, alone within u's 24 bits
U_WRAP = 2**23  # the current wraps once into (-2^23, 2^23]
INT32_LIMIT = 2**31  # Lava sums in int32
INPUT_MESSAGE_BITS = 16  # the input's graded spikes (round(x * levels))
DELAY_MAX = 62  # synaptic delays in steps, as lava-dl's netx clamps them (Lava's DelayDense: 63)
COUNT_MESSAGE_BITS = 8  # graded spikes of a population that emits spike counts
SPIKE_COUNT_MAX = 2**COUNT_MESSAGE_BITS - 1
FLOAT32_EXACT = 2**24
FLOAT64_EXACT = 2**53


# A population's parameter is one number or one per channel or neuron (`CubaLIF.per_neuron`):
# each conversion below takes either and gives the same, integers as Python's int or int64.
PerNeuron = float | np.ndarray
PerNeuronInt = int | np.ndarray


def _integers(values: PerNeuron) -> PerNeuronInt:
    return int(values) if np.ndim(values) == 0 else np.asarray(values).astype(np.int64)


def current_decay(tau_s: PerNeuron) -> PerNeuronInt:
    """Lava's `du` for a synaptic time constant (mind the offset Lava adds)."""
    return _integers(np.clip(np.rint(DECAY_UNITY / np.asarray(tau_s)) - DU_OFFSET, 0, DU_MAX))


def voltage_decay(tau_m: PerNeuron) -> PerNeuronInt:
    """Lava's `dv` for a membrane time constant."""
    return _integers(np.clip(np.rint(DECAY_UNITY / np.asarray(tau_m)), 0, DV_MAX))


def current_kept(du: PerNeuronInt) -> PerNeuronInt:
    """The 12-bit fraction of the current kept per step: 4096 - (du + 1)."""
    return DECAY_UNITY - (du + DU_OFFSET)


def voltage_kept(dv: PerNeuronInt) -> PerNeuronInt:
    """The 12-bit fraction of the voltage kept per step: 4096 - dv."""
    return DECAY_UNITY - dv


def current_lost(du: PerNeuronInt) -> PerNeuronInt:
    """The 12-bit fraction of the current lost per step (netx's `iDecay`): du + 1."""
    return du + DU_OFFSET


def threshold_value(vth: PerNeuronInt) -> PerNeuronInt:
    """The voltage a neuron must exceed to spike: vth << 6."""
    return vth << ACT_SHIFT


def input_unit(levels: int, first: bool) -> int:
    """The integer payload of one float unit on a synapse: `levels` for the graded-spike input
    of the first synapse, 1 for binary spikes after a population."""
    return levels if first else 1


def largest_payload(levels: int, first: bool, max_spikes: int) -> int:
    """The largest integer one source element sends a synapse per step: `levels` from the
    input, the source population's spike count bound after it (1 for plain spikes)."""
    return levels if first else max_spikes


def message_bits(first: bool, max_spikes: int) -> int:
    """Lava's `num_message_bits` of a synapse: graded from the input or from a population that
    emits spike counts, 0 (binary spikes) otherwise."""
    if first:
        return INPUT_MESSAGE_BITS
    return COUNT_MESSAGE_BITS if max_spikes > 1 else 0


def input_payload(images: np.ndarray, levels: int, dtype: type = np.int64) -> np.ndarray:
    """The graded spike payload round(x * levels) (halves to even) of images in [0, 1], int64 or
    in another dtype that holds 0 .. levels exactly."""
    return np.rint(np.asarray(images, dtype=np.float64) * levels).astype(dtype)


def weight_factor(scale: float, tau_s: PerNeuron, unit: int, weight_exp: int) -> PerNeuron:
    """Integer weight per float weight for a synapse into a population of this scale (one per
    output channel or neuron where tau_s is)."""
    return scale / (2**ACT_SHIFT * np.asarray(tau_s) * unit * 2.0**weight_exp)


def per_output(factor: PerNeuron, weight: np.ndarray) -> PerNeuron:
    """A factor per output (channel or neuron) shaped to multiply `weight` (out, ...) row-wise."""
    return np.reshape(factor, (-1, *[1] * (weight.ndim - 1))) if np.ndim(factor) else factor


def quantize_weights(weight: np.ndarray, factor: PerNeuron) -> tuple[np.ndarray, int]:
    """round(weight * factor) clipped to Loihi's range; also how many weights were clipped."""
    scaled = np.rint(weight.astype(np.float64) * per_output(factor, weight))
    clipped = int(np.count_nonzero((scaled < WEIGHT_MIN) | (scaled > WEIGHT_MAX)))
    return np.clip(scaled, WEIGHT_MIN, WEIGHT_MAX).astype(np.int32), clipped


def threshold_mantissa(threshold: PerNeuron, scale: float) -> PerNeuronInt:
    """`vth`: Lava spikes when v > vth << 6."""
    return _integers(np.clip(np.rint(scale * np.asarray(threshold) / 2**ACT_SHIFT), 1, VTH_MAX))


def bias_integers(bias: np.ndarray, scale: float) -> tuple[np.ndarray, int, int]:
    """(bias_mant, bias_exp, clipped): the smallest exponent that fits round(bias * scale) in
    the 13-bit mantissa, the mantissas, and how many had to be clipped even at exponent 7."""
    target = np.asarray(bias, np.float64) * scale
    exp = 0
    while exp < BIAS_EXP_MAX and np.abs(np.rint(target / 2**exp)).max(initial=0) > BIAS_MANT_MAX:
        exp += 1
    mant = np.rint(target / 2**exp)
    clipped = int(np.count_nonzero((mant < BIAS_MANT_MIN) | (mant > BIAS_MANT_MAX)))
    return np.clip(mant, BIAS_MANT_MIN, BIAS_MANT_MAX).astype(np.int32), exp, clipped


def synaptic_bias_integers(
    bias: np.ndarray, scale: float, tau_s: PerNeuron
) -> tuple[np.ndarray, int]:
    """A bias into the synaptic current as the integer added to a every step (so 64 times it
    to u): round(bias * scale / (tau_s * 64)), clipped; also how many were clipped."""
    target = np.rint(np.asarray(bias, np.float64) * scale / (tau_s * 2**ACT_SHIFT))
    clipped = int(np.count_nonzero(np.abs(target) > SYNAPTIC_BIAS_LIMIT))
    ints = np.clip(target, -SYNAPTIC_BIAS_LIMIT, SYNAPTIC_BIAS_LIMIT).astype(np.int32)
    return ints, clipped


def max_scale_for_bias(bias: np.ndarray) -> float:
    """The largest scale whose biases still fit bias_mant << 7."""
    return (BIAS_MANT_MAX + 0.49) * 2**BIAS_EXP_MAX / float(np.abs(bias).max())


def reset_amount(reset_subtract: PerNeuron, scale: float) -> PerNeuronInt:
    """`reset_sub`: what a spike subtracts from v (a microcoded reset; Lava's LIF zeroes v)."""
    return _integers(np.clip(np.rint(scale * np.asarray(reset_subtract)), 1, STATE_LIMIT))


def max_scale_for_threshold(threshold: PerNeuron) -> float:
    """The largest scale whose threshold mantissas (the highest) still fit their 17 bits."""
    return (VTH_MAX + 0.49) * 2**ACT_SHIFT / float(np.max(threshold))


def sum_bound(weight_int: np.ndarray, unit: int) -> int:
    """No synaptic sum can exceed it: unit * max over outputs of sum |W_int|."""
    per_output = np.abs(weight_int.astype(np.int64)).reshape(len(weight_int), -1).sum(axis=1)
    return unit * int(per_output.max(initial=0))
