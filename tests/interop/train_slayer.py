"""Train a small CUBA network with SLAYER (lava-dl 0.6.0) for a few iterations on random data and
write it with the blocks' `export_hdf5`, for the interop tests (run by `.venv-lava-dl/bin/python`:
lava-dl, torch, h5py and numpy only).

    train_slayer.py OUT.net [--iterations N] [--seed S] [--variant plain|affine|per-neuron|delay]

Blocks, as lava-dl's tutorials build and export them (one group per block under /layer):
cuba.Input (current_decay 1, so that netx can drive it through its bias) of 2 x 8 x 10 inputs,
cuba.Conv 2 -> 4 channels (kernel 3 x 5, stride (2, 1), padding (1, 0), all (H, W)),
cuba.Flatten, cuba.Dense 96 -> 10, cuba.Dense 10 -> 3, trained with lava-dl's SpikeRate loss on
random inputs and labels. Prints each loss. Variants: `affine`, the last block a
`cuba.Affine` head (a read-out, trained on its mean output); `per-neuron`, the dense blocks with
`shared_param=False` (decays drawn per neuron; lava-dl 0.6.0's conv block fails with it, its
per-channel decays broadcast against the width); `delay`, the dense blocks with `delay=True`
(axonal delays, drawn in 0 .. 5 steps per neuron before export: trained ones start at 0).
"""

from __future__ import annotations

import argparse

import h5py
import torch
from lava.lib.dl import slayer

NEURON = {
    "threshold": 1.0,
    "current_decay": 0.25,
    "voltage_decay": 0.03,
    "tau_grad": 0.03,
    "scale_grad": 3,
    "requires_grad": False,
}
INPUT_NEURON = {**NEURON, "current_decay": 1.0}
SHAPE, STEPS, BATCH, CLASSES = (2, 8, 10), 16, 16, 3
CONV = {"kernel_size": (3, 5), "stride": (2, 1), "padding": (1, 0)}  # -> 4 x 4 x 6


PER_NEURON = {
    **NEURON,
    "shared_param": False,
    "current_decay": [0.1, 0.5],
    "voltage_decay": [0.01, 0.1],
}


def network(variant: str) -> torch.nn.ModuleList:
    neuron = PER_NEURON if variant == "per-neuron" else NEURON
    head = slayer.block.cuba.Affine if variant == "affine" else slayer.block.cuba.Dense
    delays = {"delay": True} if variant == "delay" else {}
    return torch.nn.ModuleList(
        [
            slayer.block.cuba.Input(INPUT_NEURON),
            slayer.block.cuba.Conv(NEURON, 2, 4, **CONV, weight_scale=2),
            slayer.block.cuba.Flatten(),
            slayer.block.cuba.Dense(neuron, 96, 10, weight_scale=2, weight_norm=True, **delays),
            head(neuron, 10, CLASSES, weight_scale=2, weight_norm=True, **delays),
        ]
    )


def train(blocks: torch.nn.ModuleList, iterations: int, variant: str) -> None:
    spike_rate = slayer.loss.SpikeRate(true_rate=0.3, false_rate=0.02, reduction="mean")

    def loss_fn(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if variant == "affine":  # a read-out's membrane, averaged over time
            target = torch.nn.functional.one_hot(labels, CLASSES).float()
            return torch.nn.functional.mse_loss(x.mean(-1), target)
        return spike_rate(x, labels)

    optimizer = torch.optim.Adam(blocks.parameters(), lr=0.01)
    inputs = torch.rand(BATCH, *SHAPE, STEPS)
    labels = torch.randint(CLASSES, (BATCH,))
    for iteration in range(iterations):
        x = inputs
        for block in blocks:
            x = block(x)
        loss = loss_fn(x, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"iteration {iteration}: loss {loss.item():.5f}")


def export(blocks: torch.nn.ModuleList, path: str) -> None:
    with h5py.File(path, "w") as f:
        layers = f.create_group("layer")
        for index, block in enumerate(blocks):
            block.export_hdf5(layers.create_group(str(index)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variant", choices=("plain", "affine", "per-neuron", "delay"), default="plain"
    )
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    blocks = network(args.variant)
    train(blocks, args.iterations, args.variant)
    for block in blocks:
        if getattr(block, "delay", None) is not None:
            with torch.no_grad():
                block.delay.delay.copy_(torch.randint(0, 6, block.delay.delay.shape))
    export(blocks, args.out)


if __name__ == "__main__":
    main()
