"""The neuron core shared by training, the float runner and the reports: the LIF recurrence,
the synaptic (PSP) filter and the readout, each written once. Time is the last axis of every
tensor handed in or out; loops run time-first so that every step is one contiguous block.

Per neuron, from u^r = 0 and a = 0 (TSSL-BP's layer, ../shared/reference/tsslbp.md 1.2):
    u_t = (1 - 1/tau_m) u^r_{t-1} + I_t
    s_t = [u_t > V_th],  u^r_t = u_t (1 - s_t)  (hard reset to 0; or, for imported networks,
                                             u^r_t = u_t - r s_t, reset by subtraction)
    a_t = a_{t-1} + (s_t - a_{t-1}) / tau_s    (the layer's output, its PSP)
The prediction is the class whose PSP summed over time is largest (the first of equals).

Imported networks fire in ways TSSL-BP's neuron does not (`Firing`): with `max_spikes` m > 1
they emit spike counts s_t = min(m, #{k >= 1 : u_t > k V_th}) (Sinabs, Rockpool), a reset by
subtraction takes r s_t and a reset to 0 happens where s_t > 0; with `refractory` 1, u is held
at 0 the step after a spike (snnTorch's reset to zero of its Synaptic neurons).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

SpikeFn = Callable[[torch.Tensor, float], torch.Tensor]
# A parameter is one number, or a tensor that broadcasts over a step's (N, C, H, W) or (N, n):
# one value per channel (C, 1, 1) or neuron (n,) (imported networks train them per neuron).
Param = float | torch.Tensor


def time_first(x: torch.Tensor) -> torch.Tensor:
    """(..., T) -> contiguous (T, ...): every step is then one contiguous block."""
    return x.movedim(-1, 0).contiguous()


def time_last(x: torch.Tensor) -> torch.Tensor:
    """(T, ...) -> a (..., T) view of the same storage."""
    return x.movedim(0, -1)


def psp_filter(x: torch.Tensor, tau_s: Param) -> torch.Tensor:
    """Synaptic filter of the last axis: y_t = (1 - 1/tau_s) y_{t-1} + x_t / tau_s."""
    beta_s = 1.0 - 1.0 / tau_s
    x = time_first(x)
    out = torch.empty_like(x)
    y = torch.zeros_like(x[0])
    for t in range(len(x)):
        y = beta_s * y + x[t] / tau_s
        out[t] = y
    return time_last(out)


def heaviside(u: torch.Tensor, threshold: float) -> torch.Tensor:
    """The spike: 1 where u > threshold (strictly), in u's dtype."""
    return (u > threshold).to(u.dtype)


@dataclass(frozen=True)
class Firing:
    """How a neuron spikes and resets: TSSL-BP's (one spike, reset to 0) by default."""

    reset_subtract: Param | None = None  # what a spike subtracts from u; None: reset to 0
    max_spikes: int = 1  # > 1: spike counts up to it
    refractory: int = 0  # 1: u is held at 0 the step after a spike


PLAIN = Firing()


def spike_count(u: torch.Tensor, threshold: float, max_spikes: int) -> torch.Tensor:
    """How many thresholds u exceeds (strictly), at most `max_spikes`, in u's dtype."""
    return (torch.ceil(u / threshold) - 1).clamp(0, max_spikes)


def lif_step(
    current: torch.Tensor,
    u_reset: torch.Tensor,
    *,
    tau_m: Param,
    threshold: Param,
    spike: SpikeFn = heaviside,
    firing: Firing = PLAIN,
    held: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the membrane: (u before reset, spikes, u after reset). Spike counts are not
    differentiable; `held` (bool) marks refractory neurons, whose u is 0 this step."""
    if isinstance(tau_m, torch.Tensor):
        u = current + u_reset * (1.0 - 1.0 / tau_m)
    else:
        u = torch.add(current, u_reset, alpha=1.0 - 1.0 / tau_m)
    if held is not None:
        u = torch.where(held, 0.0, u)
    counts = firing.max_spikes > 1
    s = spike_count(u, threshold, firing.max_spikes) if counts else spike(u, threshold)
    if firing.reset_subtract is not None:
        return u, s, u - firing.reset_subtract * s
    if counts:
        return u, s, torch.where(s > 0, 0.0, u)
    return u, s, u * (1.0 - s)


def refractory_mask(spikes: torch.Tensor, firing: Firing) -> torch.Tensor | None:
    """The neurons `lif_step` holds at the next step, after these spikes; None: no refractory."""
    return spikes > 0 if firing.refractory else None


def psp_step(a: torch.Tensor, spikes: torch.Tensor, tau_s: Param) -> torch.Tensor:
    """One step of the layer's PSP."""
    return a + (spikes - a) / tau_s


def lif_sequence(
    current: torch.Tensor,
    *,
    tau_m: Param,
    tau_s: Param,
    threshold: Param,
    spike: SpikeFn = heaviside,
    firing: Firing = PLAIN,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The neuron over all steps of a time-first current: time-first (psp, spikes, u before
    reset). Differentiable wherever `spike` is (BPTT); TSSL-BP runs it without a graph."""
    u_reset = torch.zeros_like(current[0])
    a = torch.zeros_like(current[0])
    psps, spikes, potentials = [], [], []
    held = None
    for t in range(len(current)):
        u, s, u_reset = lif_step(
            current[t],
            u_reset,
            tau_m=tau_m,
            threshold=threshold,
            spike=spike,
            firing=firing,
            held=held,
        )
        held = refractory_mask(s, firing)
        a = psp_step(a, s, tau_s)
        psps.append(a)
        spikes.append(s)
        potentials.append(u)
    return torch.stack(psps), torch.stack(spikes), torch.stack(potentials)


def lif_forward(
    current: torch.Tensor,
    *,
    tau_m: Param,
    tau_s: Param,
    threshold: Param,
    firing: Firing = PLAIN,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`lif_sequence` on a time-last current: (psp, spikes, u before reset), each (..., T)."""
    out = lif_sequence(
        time_first(current),
        tau_m=tau_m,
        tau_s=tau_s,
        threshold=threshold,
        firing=firing,
    )
    return tuple(time_last(x) for x in out)  # type: ignore[return-value]


def readout(psp: torch.Tensor) -> torch.Tensor:
    """The class (axis -2) whose PSP summed over time (axis -1) is largest; the first wins."""
    return psp.sum(-1).argmax(-1)


# How a network's outputs (N, classes, T) name a class; in every rule the first class wins a tie.
PREDICTIONS = {
    "psp": "TSSL-BP's: the output through the synaptic filter, summed over time",
    "count": "the most output spikes (a read-out's membrane summed over time)",
    "max": "the highest output over time (a read-out's membrane peak, as Norse's tutorials)",
}


def predict(outputs: np.ndarray | torch.Tensor, rule: str, tau_s: float | np.ndarray) -> np.ndarray:
    """The class each sample's outputs (N, classes, T) name by `rule` (`PREDICTIONS`), int64;
    `tau_s` is the synaptic filter of "psp" (one per class where the outputs have their own)."""
    x = torch.as_tensor(np.asarray(outputs), dtype=torch.float64)
    if isinstance(tau_s, np.ndarray):
        tau_s = torch.from_numpy(tau_s.astype(np.float64))
    if x.ndim != 3:
        raise ValueError(f"outputs have shape {tuple(x.shape)}, expected (N, n_out, T)")
    if rule == "psp":
        chosen = readout(psp_filter(x, tau_s))
    elif rule == "count":
        chosen = x.sum(-1).argmax(-1)
    elif rule == "max":
        chosen = x.amax(-1).argmax(-1)
    else:
        raise ValueError(f"prediction rule {rule!r}; accepted: {', '.join(PREDICTIONS)}")
    return chosen.numpy().astype(np.int64)


def predict_from_spikes(spikes: np.ndarray | torch.Tensor, tau_s: float) -> np.ndarray:
    """TSSL-BP's prediction ("psp") of output spikes (N, classes, T)."""
    return predict(spikes, "psp", tau_s)
