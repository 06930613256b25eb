"""Saved outputs (`toolchain.io.spikes`): a fixed-point read-out's integer membrane is saved with
the scale that turns it back into float units; spikes are saved without one."""

import numpy as np
from cli_runs import run
from graphs import fixed_dense, fixed_lif

from toolchain.io import save_onnx
from toolchain.ir import Graph, Input


def saved(tmp_path, readout: bool) -> dict:
    last = fixed_lif("out", du=100, dv=200, vth=10, scale=64.0, readout=readout)
    nodes = (Input("in", (3, 1, 1), 16), fixed_dense("d", np.full((2, 3), 40)), last)
    save_onnx(Graph(nodes, T=4), tmp_path / "g.onnx")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((5, 3, 1, 1)))
    out = tmp_path / "s.npz"
    argv = ["simulate", tmp_path / "g.onnx", "--inputs", tmp_path / "x.npy", "--save-spikes", out]
    assert run([*argv, "--quiet"]) == 0
    return dict(np.load(out))


def test_a_readouts_membrane_is_saved_with_its_scale(tmp_path):
    membrane = saved(tmp_path, readout=True)
    assert membrane["output_scale"] == 64.0
    assert membrane["output_spikes"].dtype == np.int64 and np.abs(membrane["output_spikes"]).max()
    assert "output_scale" not in saved(tmp_path, readout=False)
