"""MNIST accuracy of the 784-400-400-10 MLP after a fixed, short training budget.

Trains `examples/mnist_mlp.toml` with `toolchain.train.loop.train` for `--epochs` epochs (3 by
default; the config's own budget is 100), prints the test accuracy and wall time of every epoch
and writes `benchmarks/results/mnist_mlp_accuracy.json`.

    .venv/bin/python benchmarks/mnist_mlp_accuracy.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from toolchain.atomic import write_text
from toolchain.train.config import load_config
from toolchain.train.loop import TrainResult, train

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "examples/mnist_mlp.toml"
RESULTS = REPO / "benchmarks/results/mnist_mlp_accuracy.json"


def epoch_table(result: TrainResult) -> str:
    lines = [f"{'epoch':>5} {'loss':>9} {'train %':>8} {'test %':>7} {'seconds':>8}"]
    for m in result.metrics:
        lines.append(
            f"{int(m['epoch']):>5} {m['loss']:>9.4f} {100 * m['train_accuracy']:>8.2f} "
            f"{100 * m['test_accuracy']:>7.2f} {m['seconds']:>8.1f}"
        )
    return "\n".join(lines)


def _shown(path: Path) -> str:
    """`path` relative to the checkout where it lies inside it: results name no machine."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def report(result: TrainResult, seconds: float, out_dir: Path) -> dict[str, object]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "config": str(CONFIG.relative_to(REPO)),
        "epochs": result.epochs,
        "test_accuracy": result.test_accuracy,
        "train_accuracy": result.train_accuracy,
        "seconds": seconds,
        "per_epoch": result.metrics,
        "out_dir": _shown(out_dir),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--data-dir", type=Path, help="MNIST folder (default: $SNN_DEPLOY_MNIST or ../shared)"
    )
    parser.add_argument("--out-dir", type=Path, default=REPO / "runs/bench-mnist-mlp")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_config(CONFIG).with_epochs(args.epochs)
    began = time.perf_counter()
    result = train(  # from the start every time: the folder is this benchmark's own
        config, args.out_dir, data_dir=args.data_dir, progress=not args.no_progress, overwrite=True
    )
    seconds = time.perf_counter() - began
    write_text(args.results, json.dumps(report(result, seconds, args.out_dir), indent=2) + "\n")
    print(f"wrote {args.results}\n")
    print(epoch_table(result))
    print(
        f"\n{config.name}, {result.epochs} epochs in {seconds:.0f} s: "
        f"test {100 * result.test_accuracy:.2f} %, train {100 * result.train_accuracy:.2f} %"
    )


if __name__ == "__main__":
    main()
