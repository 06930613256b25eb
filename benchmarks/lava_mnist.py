"""The shipped MNIST CNN on Lava for the whole test set, every output spike checked.

1. Speed: the first `--speed-samples` test images on Lava with 1 worker and with `--workers`
   workers (fresh runs), samples/s of each and the speed-up.
2. Scale: all `--samples` test images on Lava with `--workers` workers, in shards written to
   `--shard-dir` as they finish (run the command again to resume an interrupted run), then the
   reference simulator on the same images and a comparison of every output spike.
Writes `benchmarks/results/lava_mnist.json` and prints a short table.

    .venv/bin/python benchmarks/lava_mnist.py [--samples 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from toolchain.atomic import write_text
from toolchain.data.datasets import load_dataset
from toolchain.demo import PRETRAINED_MNIST
from toolchain.io import load_onnx
from toolchain.pipeline import deploy_and_verify, run_lava

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/lava_mnist.json"


def timed(fn):
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began


def speed(graph, images: np.ndarray, workers: int) -> dict[str, float]:
    """samples/s of fresh Lava runs with 1 and with `workers` workers on the same images."""
    rates = {}
    for count in (1, workers):
        with tempfile.TemporaryDirectory() as shards:
            _, seconds = timed(
                lambda c=count, s=shards: run_lava(
                    graph, images, workers=c, shard_dir=Path(s), progress=True
                )
            )
        rates[count] = len(images) / seconds
    return {
        "samples": len(images),
        "samples_per_s_1_worker": rates[1],
        f"samples_per_s_{workers}_workers": rates[workers],
        "speedup": rates[workers] / rates[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, default=PRETRAINED_MNIST / "fixed.onnx")
    parser.add_argument("--data-dir", type=Path, help="MNIST folder (default: as the CLI)")
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--speed-samples", type=int, default=100)
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--shard-dir", type=Path, default=REPO / "runs/lava-mnist-shards")
    args = parser.parse_args()
    graph = load_onnx(args.graph)
    test = load_dataset("mnist", args.data_dir).test
    images, labels = test.images[: args.samples], test.labels[: args.samples]
    rates = speed(graph, images[: args.speed_samples], args.workers)
    deployment = deploy_and_verify(
        graph,
        images,
        workers=args.workers,
        shard_size=args.shard_size,
        shard_dir=args.shard_dir,
        progress=True,
    )
    lava, reference, differ = deployment.lava, deployment.reference, deployment.differing
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "graph": args.graph.name,
        "network": graph.name,
        "samples": len(images),
        "workers": args.workers,
        "lava_matches_reference": bool(differ.size == 0),
        "samples_with_a_different_spike": differ.tolist(),
        "lava_accuracy": float((lava.predictions == labels).mean()),
        "reference_accuracy": float((reference.predictions == labels).mean()),
        "lava_seconds_this_run": deployment.lava_seconds,
        "lava_steps_this_run": lava.steps,
        "reference_seconds": deployment.reference_seconds,
        "speed": rates,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    write_text(RESULTS, json.dumps(result, indent=2))
    print(f"{'what':<40}{'value':>14}")
    print(f"{'samples (all checked)':<40}{len(images):>14}")
    print(f"{'Lava == reference, every output spike':<40}{str(differ.size == 0):>14}")
    print(f"{'Lava accuracy':<40}{100 * result['lava_accuracy']:>13.2f}%")
    print(f"{'Lava samples/s, 1 worker':<40}{rates['samples_per_s_1_worker']:>14.2f}")
    key = f"samples_per_s_{args.workers}_workers"
    print(f"{f'Lava samples/s, {args.workers} workers':<40}{rates[key]:>14.2f}")
    print(f"{'speed-up':<40}{rates['speedup']:>14.2f}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
