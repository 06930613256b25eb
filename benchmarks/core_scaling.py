"""How the long commands scale with the cores: calibration, float simulation and the reference
simulator on the shipped MNIST CNN, with 1 thread and with every core, in one run.

Each measurement runs in a fresh process whose thread count is fixed before torch and numpy
start (`OMP_NUM_THREADS`, `torch.set_num_threads`): torch's intra-op pool runs the convolutions
and products, the simulator's compiled update splits its neurons over the same pool
(`at::parallel_for`), numpy's BLAS runs the dense products. Speed-up = time with 1 thread /
time with all of them; 2 cores allow at most 2.

    .venv/bin/python benchmarks/core_scaling.py [--samples 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from toolchain.atomic import write_text

REPO = Path(__file__).resolve().parents[1]
PRETRAINED = REPO / "examples/pretrained/mnist_cnn"
RESULTS = REPO / "benchmarks/results/core_scaling.json"
TASKS = ("calibration", "float simulation", "reference simulator")


def measure(samples: int) -> dict[str, float]:
    """Seconds per task in this process (its thread count already fixed)."""
    from quantize.calibration import calibration_ranges
    from targets.loihi2.simulator import simulate
    from toolchain.data.datasets import load_mnist, mnist_dir
    from toolchain.io import load_onnx
    from toolchain.ir.float_runner import run_float
    from toolchain.ir.lowering import lower
    from toolchain.train.checkpoint import Checkpoint
    from toolchain.train.to_graph import graph_from_checkpoint

    images = load_mnist(mnist_dir(None)).test.images[:samples]
    float_graph = lower(graph_from_checkpoint(Checkpoint.load(PRETRAINED / "model.pt")))
    fixed = load_onnx(PRETRAINED / "fixed.onnx")
    work = {
        "calibration": lambda: calibration_ranges(float_graph, images[:1000]),
        "float simulation": lambda: run_float(float_graph, images),
        "reference simulator": lambda: simulate(fixed, images),
    }
    seconds = {}
    for name, task in work.items():
        task()  # warm: kernels built, caches filled
        began = time.perf_counter()
        task()
        seconds[name] = time.perf_counter() - began
    return seconds


def in_subprocess(threads: int, samples: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--child", str(threads), "--samples", str(samples)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(run.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000, help="test images simulated")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.child)
        print(json.dumps(measure(args.samples)))
        return
    cores = os.cpu_count() or 1
    one, every = in_subprocess(1, args.samples), in_subprocess(cores, args.samples)
    rows = {
        name: {
            "seconds_1": one[name],
            f"seconds_{cores}": every[name],
            "speedup": one[name] / every[name],
        }
        for name in TASKS
    }
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "network": "shipped MNIST CNN (examples/pretrained/mnist_cnn), calibration on 1000 images",
        "samples": args.samples,
        "cores": cores,
        "tasks": rows,
        "python": platform.python_version(),
    }
    write_text(RESULTS, json.dumps(result, indent=2))
    print(f"{'task':<22}{'1 thread s':>12}{f'{cores} threads s':>14}{'speed-up':>10}")
    for name, row in rows.items():
        print(
            f"{name:<22}{row['seconds_1']:>12.2f}{row[f'seconds_{cores}']:>14.2f}{row['speedup']:>10.2f}"
        )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
