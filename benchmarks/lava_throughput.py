"""Lava against the reference simulator, and Lava streaming against one Lava run per sample.

One run, one fixed-point network (the digits MLP, trained and quantised here with PTQ), the
same test samples for every method:
- reference: `targets.loihi2.simulator.simulate`, batched numpy;
- Lava streaming: `run_on_lava`, one compiled network, samples pipelined T steps apart;
- Lava per sample: `run_per_sample`, one build, run and stop per sample (T + L steps each).
All three must give the same output spikes; the script checks it before reporting.

    .venv/bin/python benchmarks/lava_throughput.py [--samples 450] [--per-sample 40]
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

from quantize.pipeline import quantize_checkpoint
from targets.loihi2.lava.runner import run_per_sample
from toolchain.atomic import write_text
from toolchain.data.datasets import load_digits
from toolchain.ir import Graph
from toolchain.pipeline import deploy_and_verify
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import load_config
from toolchain.train.loop import train

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/lava_throughput.json"


def digits_graph() -> Graph:
    dataset = load_digits()
    with tempfile.TemporaryDirectory() as run_dir:
        config = load_config(REPO / "examples/digits_mlp.toml")
        result = train(config, run_dir, dataset=dataset, progress=False)
        checkpoint = Checkpoint.load(result.checkpoint)
    return quantize_checkpoint(checkpoint, dataset, progress=False).graph


def timed(fn):
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=450, help="samples for streaming")
    parser.add_argument("--per-sample", type=int, default=40, help="samples run one by one")
    args = parser.parse_args()
    graph = digits_graph()
    images = load_digits().test.images[: args.samples]
    streamed = deploy_and_verify(graph, images)
    assert streamed.matches, "Lava streaming != reference"
    ref_s, stream_s = streamed.reference_seconds, streamed.lava_seconds
    few = images[: args.per_sample]
    single, single_s = timed(lambda: run_per_sample(graph, few))
    expected = streamed.reference.output_window_spikes
    assert np.array_equal(single.output_spikes, expected[: len(few)]), "per sample != reference"
    rows = [
        ("reference simulator", len(images), ref_s),
        ("Lava, streaming", len(images), stream_s),
        ("Lava, one run per sample", len(few), single_s),
    ]
    rates = {name: n / s for name, n, s in rows}
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "network": f"digits MLP 64-200-10, T={graph.T}, fixed point (PTQ)",
        "identical_output_spikes": True,
        "methods": [
            {"method": name, "samples": n, "seconds": s, "samples_per_s": n / s}
            for name, n, s in rows
        ],
        "reference_over_lava_streaming": rates["reference simulator"] / rates["Lava, streaming"],
        "streaming_over_per_sample": rates["Lava, streaming"] / rates["Lava, one run per sample"],
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    write_text(RESULTS, json.dumps(result, indent=2))
    print(f"{'method':<28}{'samples':>8}{'seconds':>9}{'samples/s':>11}")
    for name, n, s in rows:
        print(f"{name:<28}{n:>8}{s:>9.2f}{n / s:>11.1f}")
    print(
        f"reference / Lava streaming = {result['reference_over_lava_streaming']:.0f}x; "
        f"streaming / per sample = {result['streaming_over_per_sample']:.0f}x; "
        f"all output spikes identical; wrote {RESULTS}"
    )


if __name__ == "__main__":
    main()
