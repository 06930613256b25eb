"""What a Lava run must equal: the reference simulator's windows, predictions and states."""

import numpy as np

from targets.loihi2.lava.runner import LavaResult
from targets.loihi2.simulator import simulate
from targets.loihi2.timing import output_window, population_window
from toolchain.ir import Graph


def assert_matches_reference(graph: Graph, images: np.ndarray, result: LavaResult) -> None:
    """Output windows, predictions and every probed state window equal the reference."""
    ref = simulate(graph, images, record=True, record_states=True)
    np.testing.assert_array_equal(
        result.output_spikes, ref.output_spikes[..., output_window(graph)]
    )
    np.testing.assert_array_equal(result.predictions, ref.predictions)
    names = [p.name for p in graph.populations]
    for name, traces in result.probes.items():
        window = population_window(graph, names.index(name))  # sample 0's; w's is wT later
        for var, states in (("u", ref.currents), ("v", ref.voltages)):
            for w in range(len(images)):
                rows = slice(w * graph.T + window.start, w * graph.T + window.stop)
                expected = np.moveaxis(states[name][w][..., window], -1, 0)
                np.testing.assert_array_equal(
                    traces[var][rows], expected, err_msg=f"{name}.{var} sample {w}"
                )
