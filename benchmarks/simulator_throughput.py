"""Reference simulator throughput against its arithmetic floor, on the MNIST MLP test set.

The network is `examples/mnist_mlp.toml` (784-400-400-10, T = 5) after a short training run,
quantised with PTQ. In one run, on the same 10000 test images:
- `simulate`: the bit-accurate reference simulator (integer neuron updates, delays, wraps);
- floor: the bare float32 matrix products of the same shapes that the simulator must do at
  least: the input synapse once per batch (the image is constant), every other synapse once per
  Lava step (S = T + 3 steps), nothing else.
Goal (issue 13): the simulator within 1.5x of that floor. The two are timed in turns, and the
ratio is the median of the rounds' ratios.

    .venv/bin/python benchmarks/simulator_throughput.py [--checkpoint CHECKPOINT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from quantize.pipeline import calibration_images
from quantize.scales import quantize_graph
from targets.loihi2.simulator import simulate
from targets.loihi2.timing import steps_for
from toolchain.atomic import write_text
from toolchain.data.datasets import load_mnist, mnist_dir
from toolchain.ir import Dense, Graph
from toolchain.ir.lowering import lower
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import load_config
from toolchain.train.loop import train
from toolchain.train.to_graph import graph_from_checkpoint

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPO / "runs/bench-mnist-mlp/checkpoint.pt"
RESULTS = REPO / "benchmarks/results/simulator_throughput.json"
BATCH = 1000
REPEATS = 7


def fixed_graph(checkpoint_path: Path, data_dir: Path) -> tuple[Graph, np.ndarray, np.ndarray]:
    dataset = load_mnist(mnist_dir(data_dir))
    if not checkpoint_path.is_file():
        print(f"no checkpoint at {checkpoint_path}: training the MNIST MLP for 1 epoch")
        config = load_config(REPO / "examples/mnist_mlp.toml").with_epochs(1)
        train(config, checkpoint_path.parent, dataset=dataset)
    checkpoint = Checkpoint.load(checkpoint_path)
    graph = lower(graph_from_checkpoint(checkpoint))
    fixed, _ = quantize_graph(graph, calibration_images(dataset.train, 1000, seed=0))
    return fixed, dataset.test.images, dataset.test.labels


def floor_products(graph: Graph, images: np.ndarray) -> None:
    """The bare float32 products of the simulator's shapes: input synapse once, others per step."""
    weights = [
        n.weight_int.astype(np.float32).T.copy() for n in graph.nodes if isinstance(n, Dense)
    ]
    steps = steps_for(1, graph.T, len(weights))
    spikes = [np.ones((BATCH, w.shape[0]), np.float32) for w in weights[1:]]
    for start in range(0, len(images), BATCH):
        images[start : start + BATCH].reshape(-1, weights[0].shape[0]) @ weights[0]
        for _ in range(steps):
            for source, weight in zip(spikes, weights[1:], strict=True):
                source @ weight


def seconds(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def interleaved(first, second) -> tuple[float, float, float]:
    """Median seconds of each and the median of their per-round ratios, timing them in turns
    so that a slow spell of the machine hits both (the floor alone moved 40 % between runs)."""
    rounds = [(seconds(first), seconds(second)) for _ in range(REPEATS)]
    ratios = [a / b for a, b in rounds]
    return (
        statistics.median(a for a, _ in rounds),
        statistics.median(b for _, b in rounds),
        statistics.median(ratios),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument(
        "--data-dir", type=Path, help="MNIST folder (default: $SNN_DEPLOY_MNIST or ../shared)"
    )
    args = parser.parse_args()
    graph, images, labels = fixed_graph(args.checkpoint, args.data_dir)
    accuracy = float((simulate(graph, images, batch_size=BATCH).predictions == labels).mean())
    sim_s, floor_s, ratio = interleaved(
        lambda: simulate(graph, images, batch_size=BATCH), lambda: floor_products(graph, images)
    )
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "network": "mnist-mlp 784-400-400-10, T=5, PTQ",
        "samples": len(images),
        "fixed_point_accuracy": accuracy,
        "simulator_seconds": sim_s,
        "floor_seconds": floor_s,
        "simulator_samples_per_s": len(images) / sim_s,
        "floor_samples_per_s": len(images) / floor_s,
        "ratio_simulator_to_floor": ratio,  # the median of the rounds' ratios
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    write_text(RESULTS, json.dumps(result, indent=2))
    print(f"{'what':<28}{'seconds':>9}{'samples/s':>11}")
    print(f"{'reference simulator':<28}{sim_s:>9.3f}{len(images) / sim_s:>11.0f}")
    print(f"{'bare products (floor)':<28}{floor_s:>9.3f}{len(images) / floor_s:>11.0f}")
    print(
        f"simulator / floor = {ratio:.2f} (median of {REPEATS} rounds; goal <= 1.5); accuracy "
        f"{100 * accuracy:.2f} %; wrote {RESULTS}"
    )


if __name__ == "__main__":
    main()
