"""How the long commands scale with the cores: calibration, float simulation and the reference
simulator on the shipped MNIST CNN, in one run, three ways:
- 1 thread: one process, one thread;
- threads: one process with a thread per core (what the commands do): torch's intra-op pool
  runs the convolutions and products, the simulator's compiled update splits its neurons over
  the same pool (`at::parallel_for`), numpy's BLAS runs the dense products;
- processes: one single-threaded process per core, all at once, each doing the whole work (what
  a worker pool over shards of the samples would do at best);
- workers: the commands' `--workers N` (N = cores), shards of the samples over single-threaded
  forked processes (`toolchain/parallel.py`), end to end, forking and results included.
Each measurement runs in fresh processes whose thread count is fixed before torch and numpy
start (`OMP_NUM_THREADS`, `torch.set_num_threads`). Speed-up = throughput over the 1-thread
run's; N cores allow at most N.

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


def measure(samples: int, workers: int) -> dict[str, float]:
    """Seconds per task in this process (its thread count already fixed), with `workers`."""
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
        "calibration": lambda: calibration_ranges(float_graph, images[:1000], workers),
        "float simulation": lambda: run_float(float_graph, images, workers=workers),
        "reference simulator": lambda: simulate(fixed, images, workers=workers),
    }
    seconds = {}
    for name, task in work.items():
        task()  # warm: kernels built, caches filled
        began = time.perf_counter()
        task()
        seconds[name] = time.perf_counter() - began
    return seconds


def in_subprocesses(
    threads: int, samples: int, count: int = 1, workers: int = 1
) -> list[dict[str, float]]:
    """The seconds per task of `count` processes with `threads` threads and `workers` each,
    run at once."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--child", str(threads), "--samples", str(samples)]
    command += ["--workers", str(workers)]
    children = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, cwd=REPO)
        for _ in range(count)
    ]
    outputs = [child.communicate()[0] for child in children]
    if any(child.returncode for child in children):
        raise SystemExit("a measuring process failed")
    return [json.loads(out) for out in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000, help="test images simulated")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.child)
        print(json.dumps(measure(args.samples, args.workers)))
        return
    cores = os.cpu_count() or 1
    (one,) = in_subprocesses(1, args.samples)
    (threaded,) = in_subprocesses(cores, args.samples)
    parallel = in_subprocesses(1, args.samples, count=cores)
    (pooled,) = in_subprocesses(cores, args.samples, workers=cores)
    rows = {}
    for name in TASKS:
        slowest = max(run[name] for run in parallel)
        rows[name] = {
            "seconds_1_thread": one[name],
            f"seconds_{cores}_threads": threaded[name],
            f"seconds_{cores}_processes_each": slowest,
            "speedup_threads": one[name] / threaded[name],
            "speedup_processes": cores * one[name] / slowest,
            f"seconds_{cores}_workers": pooled[name],
            "speedup_workers": one[name] / pooled[name],
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
    print(
        f"{'task':<22}{'1 thread s':>11}{'speed-up:':>11}{'threads':>9}{'processes':>11}"
        f"{'--workers':>11}"
    )
    for name, row in rows.items():
        print(
            f"{name:<22}{row['seconds_1_thread']:>11.2f}{'':>11}{row['speedup_threads']:>9.2f}"
            f"{row['speedup_processes']:>11.2f}{row['speedup_workers']:>11.2f}"
        )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
