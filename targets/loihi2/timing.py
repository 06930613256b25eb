"""When things happen on Loihi 2 (and in Lava's simulation of it): delays, windows, resets.

Lava steps are t = 1 .. S. The input sends sample w's graded payload at steps w*T + 1 .. w*T + T.
Every synapse (Dense or Conv) delays by one step: at step t it sends what it computed at step
t - 1, then receives its source's output of step t. So population k (1-based) works on sample w
at steps w*T + k + 1 .. w*T + k + T, and one sample through L populations takes S = T + L steps.
Recorded column j holds step j + 1 (as in a Lava sink RingBuffer).
"""

from __future__ import annotations

import numpy as np

from toolchain.ir import Graph


def steps_for(samples: int, T: int, populations: int) -> int:
    """Lava steps that stream `samples` samples through `populations` populations."""
    return samples * T + populations


def in_window(step: int, index: int, T: int) -> bool:
    """Whether Lava step `step` (1-based) of a sample's run is one of population `index`'s
    (0-based) float steps 0 .. T-1: steps index + 2 .. index + T + 1."""
    return index + 2 <= step <= index + T + 1


def first_input_step(index: int) -> int:
    """The first Lava step (1-based) at which population `index` (0-based) gets the sample."""
    return index + 2


def output_columns(samples: int, T: int, populations: int) -> np.ndarray:
    """(samples, T): the recorded columns (column j = step j + 1) of every streamed sample's
    output window; sample w's output is at steps wT + L + 1 .. wT + L + T."""
    return np.arange(samples)[:, None] * T + populations + np.arange(T)


def input_steps(T: int) -> tuple[int, int]:
    """The first and last Lava step (1-based) at which sample 0 is sent; sample w's are wT
    later."""
    return 1, T


def samples_finished(steps: int, samples: int, T: int, populations: int) -> int:
    """How many streamed samples have left the output population after `steps` steps."""
    return int(min(samples, max(0, (steps - populations) // T)))


def population_window(graph: Graph, index: int) -> slice:
    """The columns holding population `index`'s (0-based) float steps 0 .. T-1 of one sample.

    Population k = index + 1 first receives input at Lava step k + 1, i.e. column k.
    """
    return slice(index + 1, index + 1 + graph.T)


def output_window(graph: Graph) -> slice:
    """The columns holding the output population's float steps 0 .. T-1 of one sample."""
    return population_window(graph, len(graph.populations) - 1)


def resets_every_population(graph: Graph) -> bool:
    """Whether every population must be reset when a sample reaches it, even one sample at a
    time: a bias (into v or into the synaptic current) charges the neurons before the sample
    arrives (without one, they are still 0 then)."""
    return any(
        population.bias is not None or population.synaptic_bias is not None
        for population in graph.populations
    )


def reset_offset(population: int, T: int) -> int:
    """The step (mod T) before which population `population` (1-based) starts a new sample, so
    that a stream of samples through one network sees each from the zero state."""
    return (population + 1) % T
