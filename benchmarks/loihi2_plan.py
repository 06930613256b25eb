"""How long the Loihi 2 plan takes, against the bare reference simulation of the same samples.

Two networks: lava-dl's PilotNet (the largest here: 158 000 neurons, 74 cores; random images,
the plan's activity depends only on the spikes they cause) and the shipped MNIST CNN (its first
MNIST test images). For each: the placement alone (plan, partition, design rules), then the
activity and cost on N samples (`chip_plan_of`: the simulator recording every layer's spikes,
then counting), against `simulate` of the same samples without recording (its arithmetic
floor). Prints a table and writes benchmarks/results/loihi2_plan.json.

    .venv/bin/python benchmarks/loihi2_plan.py [--pilotnet 8] [--mnist 100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from targets.loihi2.chip_rules import violations
from targets.loihi2.partition import partition
from targets.loihi2.plan import plan
from targets.loihi2.simulator import simulate
from toolchain.atomic import write_text
from toolchain.data.datasets import load_dataset
from toolchain.io import read_graph
from toolchain.io.netx_read import read_netx_graph
from toolchain.ir import Graph
from toolchain.report.chip_plan import chip_plan_of

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/loihi2_plan.json"
PILOTNET = REPO / "tests/fixtures/lava_dl/pilotnet_lif.net.gz"
MNIST_CNN = REPO / "examples/pretrained/mnist_cnn/fixed.onnx"


def pilotnet() -> Graph:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pilotnet_lif.net"
        with gzip.open(PILOTNET) as packed, open(path, "wb") as out:
            shutil.copyfileobj(packed, out)
        return read_netx_graph(path)


def timed(fn):
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began


def measure(name: str, graph: Graph, images: np.ndarray) -> dict[str, object]:
    placed, place_s = timed(lambda: partition(plan(graph)))
    assert not violations(placed)
    chip_plan, plan_s = timed(lambda: chip_plan_of(graph, images))
    _, simulate_s = timed(lambda: simulate(graph, images))
    assert chip_plan.cost is not None
    return {
        "network": name,
        "neurons": sum(layer.neurons for layer in placed.layers),
        "cores": placed.cores,
        "samples": len(images),
        "placement_s": place_s,
        "plan_with_activity_s": plan_s,
        "bare_simulation_s": simulate_s,
        "plan_over_simulation": plan_s / simulate_s,
        "energy_per_inference_j": chip_plan.cost.energy_per_inference_j,
        "inferences_per_s": chip_plan.cost.inferences_per_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pilotnet", type=int, default=8, help="random PilotNet images")
    parser.add_argument("--mnist", type=int, default=100, help="MNIST test images")
    args = parser.parse_args()
    pilot_images = np.random.default_rng(0).uniform(0, 1, (args.pilotnet, 3, 66, 200))
    mnist_images = load_dataset("mnist").test.images[: args.mnist]
    rows = [
        measure("lava-dl PilotNet (netx)", pilotnet(), pilot_images),
        measure("shipped MNIST CNN", read_graph(MNIST_CNN), mnist_images),
    ]
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "networks": rows,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    write_text(RESULTS, json.dumps(result, indent=2))
    print(f"{'network':<26}{'cores':>6}{'samples':>8}{'place s':>9}{'plan s':>8}{'sim s':>7}")
    for row in rows:
        print(
            f"{row['network']:<26}{row['cores']:>6}{row['samples']:>8}"
            f"{row['placement_s']:>9.3f}{row['plan_with_activity_s']:>8.2f}"
            f"{row['bare_simulation_s']:>7.2f}   plan / simulation "
            f"{row['plan_over_simulation']:.2f}x"
        )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
