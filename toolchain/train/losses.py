"""The losses of TSSL-BP, both summed (not averaged) over batch, classes and time.

kernel: L = 1/2 sum (a_t - a^_t)^2, where a^ is the desired spike pattern of the label class
        passed through the synaptic filter (twice in the authors' final code) and 0 elsewhere.
count:  delta = (sum_t a_t - target) / T, one-sided: no error once the label class reaches its
        desired count or another class stays at or below its undesired count;
        L = 1/2 sum_{n,c,t} delta^2, so dL/da_t = delta at every step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from toolchain.neuron import psp_filter
from toolchain.train.config import LossConfig, NeuronConfig

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def default_pattern(steps: int) -> tuple[int, ...]:
    """The final code's desired spikes: [0,1,1,1,1] repeated for T < 10, else [0,1,0,1,...]."""
    unit = (0, 1, 1, 1, 1) if steps < 10 else (0, 1)
    return tuple(unit[t % len(unit)] for t in range(steps))


def desired_psp(config: LossConfig, neuron: NeuronConfig) -> torch.Tensor:
    """The label class's target PSP, shape (T,)."""
    pattern = config.desired_pattern or default_pattern(neuron.T)
    if len(pattern) != neuron.T:
        raise ValueError(f"loss.desired_pattern has {len(pattern)} steps, neuron.T={neuron.T}")
    target = torch.tensor(pattern, dtype=torch.float32)
    for _ in range(2 if config.target_filter == "double" else 1):
        target = psp_filter(target, neuron.tau_s)
    return target


def kernel_loss(target: torch.Tensor) -> Loss:
    def loss(output_psp: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        wanted = torch.zeros_like(output_psp)
        wanted[torch.arange(len(labels)), labels] = target.to(output_psp)  # dtype and device
        return 0.5 * ((output_psp - wanted) ** 2).sum()

    return loss


def count_loss(desired: float, undesired: float) -> Loss:
    def loss(output_psp: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        steps = output_psp.shape[-1]
        count = output_psp.sum(-1)
        is_label = torch.zeros_like(count, dtype=torch.bool)
        is_label[torch.arange(len(labels)), labels] = True
        target = torch.where(is_label, desired, undesired)
        satisfied = torch.where(is_label, count >= desired, count <= undesired)
        delta = torch.where(satisfied, 0.0, (count - target) / steps)
        return 0.5 * steps * (delta**2).sum()

    return loss


def build_loss(config: LossConfig, neuron: NeuronConfig) -> Loss:
    if config.type == "kernel":
        return kernel_loss(desired_psp(config, neuron))
    return count_loss(config.desired_count, config.undesired_count)
