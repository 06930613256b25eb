"""The interop tests' side of lava-dl: runs the scripts beside this file in `.venv-lava-dl`
(lava-dl 0.6.0 needs Python 3.10, our package 3.11) and compares what netx computed on Lava
with our reference simulator, layer by layer and step by step.

Alignment: Lava block j of `netx.hdf5.Network` is our population j, and our window of it
(`timing.population_window`) holds Lava columns `window + w*T + shift` of sample w of a
stream: shift 0 for our exports, -1 for files with input neurons (netx drives them through
their bias, we through one more synapse).
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
from collections.abc import Collection
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from targets.loihi2.simulator import SimulationResult, simulate
from targets.loihi2.timing import population_window, steps_for
from toolchain.ir import Graph

HERE = Path(__file__).resolve().parent
LAVA_DL_PYTHON = HERE.parents[1] / ".venv-lava-dl" / "bin" / "python"
TIMEOUT_S = 600

requires_lava_dl = pytest.mark.skipif(
    not LAVA_DL_PYTHON.exists(),
    reason=".venv-lava-dl is missing: `make interop` creates it (lava-dl 0.6.0, Python 3.10)",
)
STATES = {"spikes": "spikes", "u": "currents", "v": "voltages"}  # netx key -> our result field
ONE_STEP_LATER = -1  # the shift of files with input neurons
NETX_INPUT_CURRENT = ("u", 0)  # netx drives its input neurons through v: their u stays 0


def run_script(script: str, *args: str | Path) -> str:
    """Run a script of this folder with lava-dl's Python; its output, or fail with it."""
    command = [str(LAVA_DL_PYTHON), str(HERE / script), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, Lava's processes with it
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{script} ran past {TIMEOUT_S} s:\n{output[-4000:]}")
    if process.returncode != 0:
        pytest.fail(f"{script} exited with {process.returncode}:\n{output[-4000:]}")
    return output


def run_netx(
    net: Path, steps: int, network: dict[str, Any], out_dir: Path, **source: np.ndarray | int | bool
) -> dict[str, np.ndarray]:
    """`run_netx.py` on `net` for `steps` Lava steps; source: payload= (and into_neurons=True),
    or bias= and every=."""
    args: list[str | Path] = ["--steps", str(steps), "--network", json.dumps(network)]
    for key, value in source.items():
        if value is True:  # a flag
            args.append(f"--{key.replace('_', '-')}")
            continue
        if isinstance(value, np.ndarray):
            np.save(out_dir / f"{key}.npy", value)
            value = out_dir / f"{key}.npy"
        args += [f"--{key}", value]
    run_script("run_netx.py", net, out_dir / "netx.npz", *args)
    with np.load(out_dir / "netx.npz") as data:
        return {key: ours_layout(value) for key, value in data.items()}


def root_attribute(path: Path, key: str) -> str:
    with h5py.File(path, "r") as f:
        return str(f.attrs[key])


def load_with(path: Path) -> dict[str, Any]:
    """netx.hdf5.Network's keyword arguments from the file's root attribute `load_with`, which
    must be that call with this file's name as `net_config` and literal arguments."""
    text = root_attribute(path, "load_with")
    call = ast.parse(text, mode="eval").body
    assert isinstance(call, ast.Call) and ast.unparse(call.func) == "netx.hdf5.Network", text
    assert not call.args, text
    kwargs = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
    assert kwargs.pop("net_config") == path.name, text
    return kwargs


def ours_layout(array: np.ndarray) -> np.ndarray:
    """Lava's (W, H, C, steps) as our (C, H, W, steps); (n, steps) as it is."""
    return array.transpose(2, 1, 0, 3) if array.ndim == 4 else array


def assert_netx_equals_ours(
    graph: Graph,
    ours: SimulationResult,
    theirs: dict[str, np.ndarray],
    shift: int,
    skip: Collection[tuple[str, int]] = (),
) -> int:
    """Every population's spikes, u and v in its window, for every sample of `ours` (run one at
    a time) and of the stream `theirs`; `skip` names (key, block) pairs left out. Returns how
    many spikes were compared."""
    compared = 0
    for j, population in enumerate(graph.populations):
        window = population_window(graph, j)
        for key, field in STATES.items():
            if (key, j) in skip:
                continue
            mine = getattr(ours, field)[population.name]
            for w, sample in enumerate(mine):
                start = window.start + w * graph.T + shift
                got = theirs[f"{key}_{j}"][..., start : start + graph.T]
                where = f"{key} of {population.name} (block {j}), sample {w}"
                np.testing.assert_array_equal(got, sample[..., window], err_msg=where)
                compared += int(got.sum()) if key == "spikes" else 0
    return compared


def run_input_neurons(
    path: Path, graph: Graph, images: np.ndarray, out_dir: Path
) -> dict[str, np.ndarray]:
    """netx's run of a file with input neurons (`graph` is our import) on images (N, C, H, W) in
    [0, 1]: sample w's bias round(x * levels), (W, H, C), during steps w*T + 1 .. w*T + T, and
    block j reset at the steps t = j + 1 (mod T) (`reset_interval=T, reset_offset=0`)."""
    T = graph.T
    biases = np.rint(images * graph.input.levels).astype(np.int64).transpose(0, 3, 2, 1)
    steps = steps_for(len(images), T, len(graph.populations))
    network = {"reset_interval": T, "reset_offset": 0}
    return run_netx(path, steps, network, out_dir, bias=biases, every=T)


def assert_ours_one_step_later(
    graph: Graph,
    images: np.ndarray,
    theirs: dict[str, np.ndarray],
    skip: Collection[tuple[str, int]] = (),
) -> None:
    """Our simulation of a file with input neurons is netx's, one step later: spikes, u and v of
    every block (but the input neurons' u, and `skip`) in its window, every sample reaching the
    output."""
    ours = simulate(graph, images, record=True, record_states=True)
    skipped = [NETX_INPUT_CURRENT, *skip]
    assert assert_netx_equals_ours(graph, ours, theirs, ONE_STEP_LATER, skipped) > 0
    assert not theirs["u_0"].any()
    assert ours.output_window_spikes.sum(axis=(1, 2)).all()
