"""Training step time against the library users would otherwise pick: snnTorch.

The same network, batch and T in both libraries (the MNIST MLP 784-400-400-10 at batch 100 and
the paper's CNN 15C5-P2-40C5-P2-300-10 at batch 50, T 5, tau_m 5, threshold 1), in one process,
steps interleaved batch by batch (which goes first alternating), on the same MNIST batches:

* snn-deploy: TSSL-BP as `snn-deploy train` runs it (the config's network, loss and AdamW step
  with gradient clipping and the weight clamp: `train_throughput.Trainer`);
* snnTorch 1.0 as its tutorials write it: `snn.Leaky` (beta = 1 - 1/tau_m, the tutorials'
  `surrogate.fast_sigmoid(slope=25)`, reset by subtraction, `init_hidden`), a loop over the T
  steps feeding the image every step, BPTT through all of them, `SF.ce_rate_loss`, Adam at the
  same rate; a neuron after every synapse, before each pool as in the paper's network (2x2
  average pool).

Before timing, both networks are checked to have the same layer shapes and neuron counts. The
ratio is the median over batches of snnTorch's step time over ours on the same batch, the two
steps taken one after the other, so that the machine's drift cancels (as in
`train_throughput.py`). Writes `benchmarks/results/peers.json` and prints a table.

    .venv/bin/python benchmarks/peers.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import Trainer, batches_from, make_net  # noqa: E402

from toolchain.atomic import write_text  # noqa: E402
from toolchain.data.datasets import load_dataset  # noqa: E402
from toolchain.train.config import (  # noqa: E402
    Config,
    ConvSpec,
    DenseSpec,
    PoolSpec,
    layer_shapes,
    load_config,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/peers.json"
NETWORKS = (
    ("mnist-mlp", "examples/mnist_mlp.toml", 20),
    ("mnist-cnn", "examples/mnist_cnn.toml", 20),
)
WARMUP = 3


def snntorch_network(config: Config, input_shape: tuple[int, int, int]) -> nn.Sequential:
    """The config's network in snnTorch's tutorial style: a Leaky neuron after each synapse."""
    import snntorch as snn
    from snntorch import surrogate

    beta = 1.0 - 1.0 / config.neuron.tau_m
    inputs = [input_shape, *layer_shapes(config.layers, input_shape)[:-1]]
    modules: list[nn.Module] = []
    for spec, shape in zip(config.layers, inputs, strict=True):
        if isinstance(spec, PoolSpec):
            modules.append(nn.AvgPool2d(2))
            continue
        if isinstance(spec, ConvSpec):
            synapse = nn.Conv2d(shape[0], spec.out, spec.kernel, padding=spec.padding, bias=False)
        elif isinstance(spec, DenseSpec):
            if len(shape) > 1:
                modules.append(nn.Flatten())
            synapse = nn.Linear(math.prod(shape), spec.out, bias=False)
        else:
            raise ValueError(f"{type(spec).__name__}: not in the peer benchmark's networks")
        leaky = snn.Leaky(
            beta=beta,
            threshold=config.neuron.threshold,
            spike_grad=surrogate.fast_sigmoid(slope=25),
            init_hidden=True,
        )
        modules += [synapse, leaky]
    return nn.Sequential(*modules)


class SnnTorchTrainer:
    """snnTorch's tutorial training step, timed as `Trainer.step` is."""

    def __init__(self, net: nn.Sequential, config: Config) -> None:
        import snntorch.functional as SF

        self.net, self.steps = net, config.neuron.T
        self.norm = config.input
        self.optimizer = torch.optim.Adam(net.parameters(), lr=config.train.lr)
        self.loss_fn = SF.ce_rate_loss()
        self.times: dict[str, list[float]] = {"total": []}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Output spikes (T, N, classes)."""
        from snntorch import utils

        x = images if self.norm.is_identity else (images - self.norm.mean) / self.norm.std
        utils.reset(self.net)
        return torch.stack([self.net(x) for _ in range(self.steps)])

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.net.train()
        began = time.perf_counter()
        loss = self.loss_fn(self.forward(images), labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        value = loss.item()
        self.times["total"].append(time.perf_counter() - began)
        return value


def neuron_counts(ours, theirs: nn.Sequential, images: torch.Tensor) -> tuple[list, list]:
    """Each library's spiking layers' output shapes (per sample) for one batch."""
    with torch.no_grad():
        _, spikes = ours(images, return_spikes=True)
        ours_shapes = [tuple(s.shape[1:-1]) for s in spikes]
        from snntorch import utils

        utils.reset(theirs)
        shapes, x = [], images
        for module in theirs:
            x = module(x)
            if type(module).__name__ == "Leaky":
                shapes.append(tuple(x.shape[1:]))
    return ours_shapes, shapes


def measure(name: str, config_path: str, timed: int, warmup: int, split) -> dict[str, object]:
    config = load_config(REPO / config_path)
    input_shape = tuple(split.images.shape[1:])
    ours_net = make_net(config, "tsslbp", input_shape)
    torch.manual_seed(config.train.seed)
    theirs_net = snntorch_network(config, input_shape)
    batches = batches_from(split, config.train.batch_size, warmup + timed)
    ours_shapes, theirs_shapes = neuron_counts(ours_net, theirs_net, batches[0][0])
    if ours_shapes != theirs_shapes:
        raise AssertionError(f"{name}: layers differ: ours {ours_shapes}, snnTorch {theirs_shapes}")
    trainers = {
        "snn-deploy": Trainer(ours_net, config),
        "snntorch": SnnTorchTrainer(theirs_net, config),
    }
    for trainer in trainers.values():
        for images, labels in batches[:warmup]:
            trainer.step(images, labels)
        trainer.times = {key: [] for key in trainer.times}
    for index, (images, labels) in enumerate(batches[warmup:]):
        order = list(trainers) if index % 2 == 0 else list(reversed(trainers))
        for key in order:
            trainers[key].step(images, labels)
    ours, theirs = (trainers[k].times["total"] for k in ("snn-deploy", "snntorch"))
    ratio = statistics.median(t / o for o, t in zip(ours, theirs, strict=True))
    return {
        "network": name,
        "batch_size": config.train.batch_size,
        "T": config.neuron.T,
        "spiking_layers": [list(s) for s in ours_shapes],
        "neurons": sum(math.prod(s) for s in ours_shapes),
        "snn_deploy_ms": 1e3 * statistics.median(ours),
        "snntorch_ms": 1e3 * statistics.median(theirs),
        "snntorch_over_ours": ratio,
        "snn_deploy_step_s": ours,
        "snntorch_step_s": theirs,
    }


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        f"{'network':<12}{'batch':>6}{'neurons':>9}{'snn-deploy ms':>15}{'snnTorch ms':>13}"
        f"{'snnTorch / ours':>17}"
    ]
    for r in rows:
        lines.append(
            f"{r['network']:<12}{r['batch_size']:>6}{r['neurons']:>9}{r['snn_deploy_ms']:>15.1f}"
            f"{r['snntorch_ms']:>13.1f}{r['snntorch_over_ours']:>16.2f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="folder of the MNIST idx files")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 1 warm-up, 2 timed")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    split = load_dataset("mnist", args.data_dir).train
    rows = []
    for name, path, timed in NETWORKS:
        warmup, timed = (1, 2) if args.quick else (WARMUP, timed)
        rows.append(measure(name, path, timed, warmup, split))
        print(f"{name}: done", file=sys.stderr)
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "quick": args.quick,
        "networks": rows,
    }
    if not args.quick:
        write_text(args.out, json.dumps(result, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
