"""The reference simulator's results computed in PyTorch, on the CPU or a GPU: `simulate(...,
backend="torch", device=...)`.

The engine is `relaxed.simulate_relaxed` with no source of error put back: Lava's integers in
float64 tensors, exact on every device (every sum and state is an integer below 2^53; products
by the decays' k / 4096 are exact; convolutions run without NNPACK or cuDNN, whose Winograd and
FFT algorithms are not exact), equal to the numpy simulator's (tested on its bit-exactness
cases). It computes each population on the float time axis, so the result holds what each
sample's window holds (`timing.population_window`): the output's window, every population's
spikes and states there, the predictions, the spike counts; the columns outside the windows
(before a sample reaches a population, after it has left) are zeros, and the wraps and
saturations counted are those inside the windows.
"""

from __future__ import annotations

import numpy as np
import torch

from targets.loihi2.plan import plan
from targets.loihi2.relaxed import simulate_relaxed
from targets.loihi2.stream import checked_images, spike_dtype
from targets.loihi2.timing import output_window, population_window
from toolchain.ir import Graph


def simulate_torch(
    graph: Graph,
    images: np.ndarray,
    *,
    record: bool,
    record_states: bool,
    batch_size: int,
    device: str | torch.device = "cpu",
):
    """`simulator.simulate`'s result, each batch of `batch_size` samples run on `device`."""
    from targets.loihi2.simulator import SimulationResult  # it routes here: no cycle at import

    checked = plan(graph)
    images = checked_images(graph, images)
    populations = graph.populations
    shapes = [block.shape for block in checked.blocks]
    n, steps = len(images), checked.steps_per_sample
    out = populations[-1]
    output = np.zeros((n, int(np.prod(shapes[-1])), steps), spike_dtype(out))

    def arrays(dtype: type | None) -> dict[str, np.ndarray]:
        return {
            p.name: np.zeros((n, *shape, steps), dtype or spike_dtype(p))
            for p, shape in zip(populations, shapes, strict=True)
        }

    spikes = arrays(None) if record else None
    states = [arrays(np.int64) for _ in range(3)] if record_states else None
    wraps = {p.name: 0 for p in populations}
    saturations = {p.name: 0 for p in populations}
    counts = {p.name: 0 for p in populations}
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        run = simulate_relaxed(graph, images[rows], states=record_states, device=device)
        for i, population in enumerate(populations):
            name, window = population.name, population_window(graph, i)
            if spikes is not None:
                spikes[name][rows, ..., window] = run.spikes[i]
            if states is not None:
                for array, values in zip(
                    states, (run.currents, run.voltages_after_reset, run.voltages), strict=True
                ):
                    array[name][rows, ..., window] = values[i]
            wraps[name] += run.current_wraps[i]
            saturations[name] += run.voltage_saturations[i]
            if not population.readout:
                counts[name] += int(run.spikes[i].sum())
        last = run.spikes[-1]
        output[rows, :, output_window(graph)] = last.reshape(len(last), -1, graph.T)
    window = output_window(graph)
    currents, voltages, before = states if states is not None else (None, None, None)
    return SimulationResult(
        output_spikes=output,
        predictions=graph.predict(output[..., window]),
        spikes=spikes,
        currents=currents,
        voltages=voltages,
        voltages_before_reset=before,
        current_wraps=wraps,
        voltage_saturations=saturations,
        spike_counts=counts,
        window=window,
    )
