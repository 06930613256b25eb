"""The NIR paper's single LIF neuron (Pedersen et al. 2024), recorded on Lava CPU and Loihi 2.

Paper chain: RingBuffer -> Dense(256) -> Dense(10) -> LIF(du=4095, dv=163, vth=25). The second
Dense treats its input as a binary spike, so the LIF receives 10 per input spike. Ours is the
equivalent lowered fixed-point Graph Input(levels=1) -> Dense([[10]]) -> CubaLIF(4095, 163, 25),
one Dense hop shorter: the input reaches the LIF one step earlier. The README aligns the files'
row k with lava-nc 0.10.0's Monitor row k + 1 for the paper's chain; with one hop less, the
files' row k is our Monitor row k (shift 0), which the test finds and asserts.

The 1000-step input is one sample of T = 1000 steps with a payload per step
(`run_payload_on_lava`, payload (1, 1, 1000)); the reference simulator runs the same train as
1000 frames of one sample.
"""

from __future__ import annotations

import glob

import numpy as np
from conftest import ROOT

import targets.loihi2.lava  # noqa: F401  (installs the compat finder before any lava import)
from targets.loihi2.lava.runner import run_payload_on_lava
from targets.loihi2.simulator import simulate
from toolchain.ir import CubaLIF, Dense, Graph, Input

PAPER = ROOT.parent / "shared" / "reference" / "nir-paper"
ISIS = [6, 15, 4, 3, 0, 2, 1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0]
ISIS += [0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 14]
STEPS = 1000


def input_train() -> np.ndarray:
    """The README's spike train: d1 from the ISIs (units of 10 steps), each entry + 9 zeros."""
    d1 = np.concatenate([[0] * isi + [1] for isi in ISIS])[:100]
    train = np.zeros(STEPS, dtype=np.int64)
    train[::10] = d1
    return train


def neuron_graph() -> Graph:
    weight = np.array([[10]], dtype=np.int32)
    nodes = (
        Input("in", (1, 1, 1), levels=1),
        Dense("syn", weight.astype(np.float64), weight, 0),
        CubaLIF("lif", 2.0, 2.0, 1.0, du=4095, dv=163, vth=25, scale=1.0),
    )
    return Graph(nodes, T=STEPS, name="nir-paper-lif")


def reference_neuron(graph: Graph, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """v and spikes of steps 1 .. T + 1 (row i = step i + 1) from the reference simulator, the
    train sent as one frame per step (levels 1: the payload is the train itself)."""
    frames = train.astype(np.float64).reshape(1, STEPS, 1, 1, 1)
    result = simulate(graph, frames, record=True, record_states=True)
    return result.voltages["lif"][0, 0], result.spikes["lif"][0, 0]


def test_nir_paper_neuron_matches_loihi_2_recording():
    chip = np.loadtxt(PAPER / "lif_lava_loihi_fixed.csv", delimiter=",")
    cpu = np.loadtxt(PAPER / "lif_lava_cpu_fixed.csv", delimiter=",")
    assert chip.shape == cpu.shape == (STEPS, 3)
    train = input_train()
    np.testing.assert_array_equal(train, chip[:, 0])  # the files' input column, unshifted
    np.testing.assert_array_equal(train, cpu[:, 0])

    graph = neuron_graph()
    before = set(glob.glob("/dev/shm/*"))
    result = run_payload_on_lava(graph, train.reshape(1, 1, STEPS), probe=["lif"])
    assert set(glob.glob("/dev/shm/*")) - before == set()
    assert result.steps == STEPS + 1
    v = result.probes["lif"]["v"][:, 0]  # row i = step i + 1
    # Spikes per step: the output window (steps 2 .. T + 1) after step 1, where v is 0.
    spikes = np.concatenate([[0], result.output_spikes[0, 0]])
    ref_v, ref_spikes = reference_neuron(graph, train)
    np.testing.assert_array_equal(v, ref_v)
    np.testing.assert_array_equal(spikes, ref_spikes)

    chip_v, chip_spikes = chip[:, 1].astype(np.int64), chip[:, 2].astype(np.uint8)
    quiet = chip_spikes == 0
    assert quiet.sum() == 996

    def aligned(shift: int) -> bool:
        ours = slice(shift, shift + STEPS)  # the files' row k = our row k + shift
        return np.array_equal(spikes[ours], chip_spikes) and np.array_equal(
            v[ours][quiet], chip_v[quiet]
        )

    assert [shift for shift in range(0, 2) if aligned(shift)] == [0]  # README's 1, one hop less
    np.testing.assert_array_equal(np.flatnonzero(chip_spikes), [461, 511, 711, 761])
    np.testing.assert_array_equal(chip_v[~quiet], 128)  # the chip records 128 at spike steps
    np.testing.assert_array_equal(v[:STEPS], cpu[:, 1])  # Lava CPU recorded 0 there, as we do
    np.testing.assert_array_equal(spikes[:STEPS], cpu[:, 2])
