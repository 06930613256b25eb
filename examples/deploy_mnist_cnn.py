"""The shipped MNIST CNN from its files to Lava, with the Python API (`toolchain.api`).

    .venv/bin/python examples/deploy_mnist_cnn.py [--samples 1000] [--out runs/example]

Loads the trained network and its fixed-point graph (examples/pretrained/mnist_cnn), compares
them on the first test images (accuracies, spike agreement per layer, where fixed point first
departs and why), asks whether the graph fits Loihi 2, runs a few images on Lava's bit-accurate
simulation checking every output spike, and writes the report's plots into --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from toolchain import api

SHIPPED = Path(__file__).resolve().parent / "pretrained" / "mnist_cnn"


def main(samples: int = 1000, out: Path = Path("runs/example"), on_lava: int = 8) -> list[Path]:
    """Prints the comparison, the plan and Lava's check; returns the plots written."""
    mnist = api.dataset("mnist")
    images, labels = mnist.test.images[:samples], mnist.test.labels[:samples]
    fixed = api.load(SHIPPED / "fixed.onnx")

    comparison = api.compare(SHIPPED / "model.pt", fixed, images, labels=labels, plots=out)
    print(comparison.table())

    chip = api.plan(fixed, images[:10])
    print(chip.table())

    deployment = api.deploy(fixed, images[:on_lava])
    print(
        f"Lava, {on_lava} images: every output spike equal to the reference: {deployment.matches}"
    )
    return sorted(out.glob("*.png"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1000, help="test images to compare")
    parser.add_argument("--out", type=Path, default=Path("runs/example"), help="plots folder")
    args = parser.parse_args()
    for path in main(args.samples, args.out):
        print(f"wrote {path}")
