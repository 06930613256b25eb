"""The simulator's torch backend against its numpy path on the shipped MNIST CNN's test images.

Both run the fixed-point graph `examples/pretrained/mnist_cnn/fixed.onnx` on the same images
(all 10 000 by default): the output windows, the predictions and every population's spike count
must be equal, and each path's samples/s is reported, with the ratio (torch on each device over
numpy on the CPU). With a GPU, the torch backend also runs there (`--device cuda`, or found).
Writes `benchmarks/results/torch_simulator.json` and prints a table.

    .venv/bin/python benchmarks/torch_simulator.py [--limit N] [--device cuda]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from targets.loihi2.simulator import simulate
from toolchain.atomic import write_text
from toolchain.data.datasets import load_dataset
from toolchain.io import read_graph

REPO = Path(__file__).resolve().parents[1]
GRAPH = REPO / "examples/pretrained/mnist_cnn/fixed.onnx"
RESULTS = REPO / "benchmarks/results/torch_simulator.json"


def timed(graph, images: np.ndarray, **options) -> tuple[object, float]:
    began = time.perf_counter()
    result = simulate(graph, images, **options)
    return result, time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="folder of the MNIST idx files")
    parser.add_argument("--limit", type=int, default=10000, help="test images (default all)")
    parser.add_argument("--device", action="append", help="torch devices (default: cpu, cuda)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    graph = read_graph(GRAPH)
    images = load_dataset("mnist", args.data_dir).test.images[: args.limit]
    devices = args.device or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    reference, numpy_s = timed(graph, images)
    rows = [{"backend": "numpy", "device": "cpu", "seconds": numpy_s}]
    for device in devices:
        result, seconds = timed(graph, images, backend="torch", device=device, batch_size=500)
        equal = {
            "output_windows": bool(
                np.array_equal(result.output_window_spikes, reference.output_window_spikes)
            ),
            "predictions": bool(np.array_equal(result.predictions, reference.predictions)),
            "spike_counts": result.spike_counts == reference.spike_counts,
        }
        if not all(equal.values()):
            raise AssertionError(f"torch on {device} differs from numpy: {equal}")
        rows.append({"backend": "torch", "device": device, "seconds": seconds, "equal": equal})
        print(f"torch on {device}: equal to numpy on {len(images)} images", file=sys.stderr)
    for row in rows:
        row["samples_per_s"] = len(images) / row["seconds"]
        row["over_numpy"] = numpy_s / row["seconds"]
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "graph": str(GRAPH.relative_to(REPO)),
        "samples": len(images),
        "threads": torch.get_num_threads(),
        "runs": rows,
    }
    write_text(args.out, json.dumps(result, indent=2))
    print(f"{'backend':<8}{'device':<8}{'samples/s':>11}{'vs numpy':>10}")
    for row in rows:
        print(
            f"{row['backend']:<8}{row['device']:<8}{row['samples_per_s']:>11.0f}"
            f"{row['over_numpy']:>9.2f}x"
        )


if __name__ == "__main__":
    main()
