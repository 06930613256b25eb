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


def _modules(
    config: Config, input_shape: tuple[int, int, int], neuron, pool, flatten, linear, conv
) -> list[nn.Module]:
    """The config's layers as a library builds them: a `neuron()` after each synapse."""
    inputs = [input_shape, *layer_shapes(config.layers, input_shape)[:-1]]
    modules: list[nn.Module] = []
    for spec, shape in zip(config.layers, inputs, strict=True):
        if isinstance(spec, PoolSpec):
            modules.append(pool())
            continue
        if isinstance(spec, ConvSpec):
            modules.append(conv(shape[0], spec.out, spec.kernel, padding=spec.padding, bias=False))
        elif isinstance(spec, DenseSpec):
            if len(shape) > 1:
                modules.append(flatten())
            modules.append(linear(math.prod(shape), spec.out, bias=False))
        else:
            raise ValueError(f"{type(spec).__name__}: not in the peer benchmark's networks")
        modules.append(neuron())
    return modules


def spikingjelly_network(config: Config, input_shape: tuple[int, int, int]) -> nn.Sequential:
    """SpikingJelly's tutorial network: multi-step layers over (T, N, ...), `LIFNode` (tau_m,
    its sigmoid surrogate, hard reset; SpikingJelly 2.0 runs it in torch, its CuPy and Triton
    kernels need a GPU)."""
    from spikingjelly.activation_based import layer, neuron, surrogate

    def lif() -> nn.Module:
        return neuron.LIFNode(
            tau=config.neuron.tau_m,
            v_threshold=config.neuron.threshold,
            surrogate_function=surrogate.Sigmoid(),
            step_mode="m",
        )

    return nn.Sequential(
        *_modules(
            config,
            input_shape,
            lif,
            lambda: layer.AvgPool2d(2, step_mode="m"),
            lambda: layer.Flatten(step_mode="m"),
            lambda *a, **k: layer.Linear(*a, **k, step_mode="m"),
            lambda *a, **k: layer.Conv2d(*a, **k, step_mode="m"),
        )
    )


def norse_network(config: Config, input_shape: tuple[int, int, int]) -> nn.Module:
    """Norse's tutorial network: `SequentialState` of torch layers and `LIFBoxCell`s (tau_m,
    its SuperSpike surrogate), stepped over T."""
    import norse.torch as norse

    params = norse.LIFBoxParameters(
        tau_mem_inv=torch.tensor(1.0 / config.neuron.tau_m),
        v_th=torch.tensor(config.neuron.threshold),
    )
    return norse.SequentialState(
        *_modules(
            config,
            input_shape,
            lambda: norse.LIFBoxCell(params, dt=1.0),
            lambda: nn.AvgPool2d(2),
            nn.Flatten,
            nn.Linear,
            nn.Conv2d,
        )
    )


class PeerTrainer:
    """A library's tutorial training step (BPTT over T, cross-entropy on the output spike
    rate, Adam), timed as `Trainer.step` is; `forward` gives the output spikes (T, N, classes)."""

    def __init__(self, net: nn.Module, config: Config) -> None:
        self.net, self.steps = net, config.neuron.T
        self.norm = config.input
        self.optimizer = torch.optim.Adam(net.parameters(), lr=config.train.lr)
        self.times: dict[str, list[float]] = {"total": []}

    def normalised(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.norm.is_identity else (images - self.norm.mean) / self.norm.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, spikes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(spikes.mean(0), labels)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.net.train()
        began = time.perf_counter()
        loss = self.loss(self.forward(images), labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        value = loss.item()
        self.times["total"].append(time.perf_counter() - began)
        return value


class SpikingJellyTrainer(PeerTrainer):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from spikingjelly.activation_based import functional

        functional.reset_net(self.net)
        x = self.normalised(images).unsqueeze(0).repeat(self.steps, *[1] * images.ndim)
        return self.net(x)


class NorseTrainer(PeerTrainer):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, state, out = self.normalised(images), None, []
        for _ in range(self.steps):
            z, state = self.net(x, state)
            out.append(z)
        return torch.stack(out)


def snntorch_network(config: Config, input_shape: tuple[int, int, int]) -> nn.Sequential:
    """snnTorch's tutorial network: `snn.Leaky` (beta = 1 - 1/tau_m, the tutorials'
    fast-sigmoid surrogate, `init_hidden`) after each synapse."""
    import snntorch as snn
    from snntorch import surrogate

    def leaky() -> nn.Module:
        return snn.Leaky(
            beta=1.0 - 1.0 / config.neuron.tau_m,
            threshold=config.neuron.threshold,
            spike_grad=surrogate.fast_sigmoid(slope=25),
            init_hidden=True,
        )

    return nn.Sequential(
        *_modules(
            config, input_shape, leaky, lambda: nn.AvgPool2d(2), nn.Flatten, nn.Linear, nn.Conv2d
        )
    )


class SnnTorchTrainer(PeerTrainer):
    """snnTorch's tutorial step: the image at each step through the stateful modules, the
    output spikes into `SF.ce_rate_loss`."""

    def __init__(self, net: nn.Module, config: Config) -> None:
        import snntorch.functional as SF

        super().__init__(net, config)
        self.rate_loss = SF.ce_rate_loss()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from snntorch import utils

        x = self.normalised(images)
        utils.reset(self.net)
        return torch.stack([self.net(x) for _ in range(self.steps)])

    def loss(self, spikes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.rate_loss(spikes, labels)


# Each peer: its network builder, its trainer, and the class name of its neuron module.
PEERS = {
    "snntorch": (snntorch_network, SnnTorchTrainer, "Leaky"),
    "norse": (norse_network, NorseTrainer, "LIFBoxCell"),
    "spikingjelly": (spikingjelly_network, SpikingJellyTrainer, "LIFNode"),
}


def spiking_shapes(trainer: PeerTrainer, neuron: str, images: torch.Tensor) -> list[tuple]:
    """The per-sample shape of each neuron module's output, for one batch."""
    shapes: list[tuple] = []

    def hook(_module, _inputs, output) -> None:
        spikes = output[0] if isinstance(output, tuple) else output
        if len(shapes) < len(hooked):  # the first step's (or the multi-step call's)
            multi_step = spikes.shape[0] == trainer.steps and spikes.ndim > 2
            sample = spikes.shape[2:] if multi_step and spikes.shape[1] == len(images) else None
            shapes.append(tuple(sample if sample is not None else spikes.shape[1:]))

    hooked = [m for m in trainer.net.modules() if type(m).__name__ == neuron]
    handles = [m.register_forward_hook(hook) for m in hooked]
    with torch.no_grad():
        trainer.forward(images)
    for handle in handles:
        handle.remove()
    return shapes


def ours_shapes(net, images: torch.Tensor) -> list[tuple]:
    with torch.no_grad():
        _, spikes = net(images, return_spikes=True)
    return [tuple(s.shape[1:-1]) for s in spikes]


def measure(
    name: str, config_path: str, timed: int, warmup: int, split, peers: list[str]
) -> dict[str, object]:
    """Our step and each peer's on the same batches, interleaved batch by batch."""
    config = load_config(REPO / config_path)
    input_shape = tuple(split.images.shape[1:])
    batches = batches_from(split, config.train.batch_size, warmup + timed)
    trainers = {"snn-deploy": Trainer(make_net(config, "tsslbp", input_shape), config)}
    shapes = ours_shapes(trainers["snn-deploy"].net, batches[0][0])
    for peer in peers:
        build, trainer_class, neuron = PEERS[peer]
        torch.manual_seed(config.train.seed)
        trainers[peer] = trainer_class(build(config, input_shape), config)
        theirs = spiking_shapes(trainers[peer], neuron, batches[0][0])
        if theirs != shapes:
            raise AssertionError(f"{name}: {peer}'s layers {theirs} are not ours {shapes}")
    for trainer in trainers.values():
        for images, labels in batches[:warmup]:
            trainer.step(images, labels)
        trainer.times = {key: [] for key in trainer.times}
    for index, (images, labels) in enumerate(batches[warmup:]):
        order = list(trainers)[index % len(trainers) :] + list(trainers)[: index % len(trainers)]
        for key in order:
            trainers[key].step(images, labels)
    ours = trainers["snn-deploy"].times["total"]
    row: dict[str, object] = {
        "network": name,
        "batch_size": config.train.batch_size,
        "T": config.neuron.T,
        "spiking_layers": [list(s) for s in shapes],
        "neurons": sum(math.prod(s) for s in shapes),
        "snn_deploy_ms": 1e3 * statistics.median(ours),
        "snn_deploy_step_s": ours,
    }
    for peer in peers:
        theirs = trainers[peer].times["total"]
        row[f"{peer}_ms"] = 1e3 * statistics.median(theirs)
        row[f"{peer}_over_ours"] = statistics.median(
            t / o for o, t in zip(ours, theirs, strict=True)
        )
        row[f"{peer}_step_s"] = theirs
    return row


def table(rows: list[dict[str, object]], peers: list[str]) -> str:
    head = "".join(f"{p + ' ms':>16}{'/ ours':>8}" for p in peers)
    lines = [f"{'network':<12}{'batch':>6}{'neurons':>9}{'snn-deploy ms':>15}{head}"]
    for r in rows:
        cells = "".join(f"{r[p + '_ms']:>16.1f}{r[p + '_over_ours']:>7.2f}x" for p in peers)
        lines.append(
            f"{r['network']:<12}{r['batch_size']:>6}{r['neurons']:>9}{r['snn_deploy_ms']:>15.1f}"
            f"{cells}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="folder of the MNIST idx files")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 1 warm-up, 2 timed")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--peer", action="append", choices=list(PEERS), help="peers to run (default all)"
    )
    args = parser.parse_args(argv)
    peers = args.peer or list(PEERS)
    split = load_dataset("mnist", args.data_dir).train
    rows = []
    for name, path, timed in NETWORKS:
        warmup, timed = (1, 2) if args.quick else (WARMUP, timed)
        rows.append(measure(name, path, timed, warmup, split, peers))
        print(f"{name}: done", file=sys.stderr)
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "quick": args.quick,
        "peers": peers,
        "networks": rows,
    }
    if not args.quick:
        write_text(args.out, json.dumps(result, indent=2))
    print(table(rows, peers))


if __name__ == "__main__":
    main()
