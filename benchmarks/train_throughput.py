"""Training throughput and memory of TSSL-BP against surrogate-gradient BPTT (`method = "bptt"`).

For the MNIST MLP and CNN configs, both methods train the same network (same initial weights,
same batches, same AdamW + gradient clipping + weight clamp step as `toolchain.train.loop`):

* throughput: samples/s = batch size / median training-step time, over the timed batches of
  every repetition after a warm-up (the methods alternate, repetition by repetition); the
  median forward, backward and optimiser-step times are kept apart. The machine's load average
  is recorded: other processes on it slow both methods and add noise;
* saved for backward: the bytes of the unique storages that autograd saves during one training
  forward pass, counted exactly with `torch.autograd.graph.saved_tensors_hooks`;
* peak RSS: each (network, method) trains a few batches in a fresh subprocess, which reports the
  growth of `ru_maxrss` over its value after model, optimiser and data setup (median of 3).

Before timing, BPTT's spikes and PSPs are checked bit-identical to TSSL-BP's.
Writes `benchmarks/results/train_throughput.json` and prints a table last. With `--device cuda`
both methods run on the GPU (each phase timed after a synchronisation), the peak RSS is replaced
by the peak of GPU memory allocated during the timed steps, and the results go to
`train_throughput_cuda.json`.

    .venv/bin/python benchmarks/train_throughput.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from toolchain.atomic import write_text
from toolchain.data.datasets import Split, load_dataset
from toolchain.train.config import Config, load_config
from toolchain.train.loop import build_model, build_optimizer
from toolchain.train.losses import Loss, build_loss
from toolchain.train.methods import METHODS
from toolchain.train.network import SpikingNetwork

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/train_throughput.json"
CUDA_RESULTS = REPO / "benchmarks/results/train_throughput_cuda.json"
MIB = 2.0**20
RSS_STEPS = 2  # full-size training steps each peak-RSS subprocess runs after its baseline
RSS_RUNS = 3  # subprocesses per (network, method); the median growth is reported


@dataclass(frozen=True)
class Bench:
    """One network to measure and how many batches to time."""

    name: str
    config: str
    warmup: int
    timed: int


BENCHES = (
    Bench("mnist-mlp", "examples/mnist_mlp.toml", warmup=3, timed=20),
    Bench("mnist-cnn", "examples/mnist_cnn.toml", warmup=3, timed=10),
)
QUICK = {"warmup": 1, "timed": 2, "reps": 1}

Batch = tuple[torch.Tensor, torch.Tensor]


def make_net(config: Config, method: str, input_shape: tuple[int, int, int]) -> SpikingNetwork:
    """The config's network with its seeded initial weights, trained with `method`."""
    train = dataclasses.replace(config.train, method=method)
    return build_model(dataclasses.replace(config, train=train), input_shape)


def check_same_forward(nets: dict[str, SpikingNetwork], images: torch.Tensor) -> int:
    """Asserts bit-identical spikes and PSPs in every spiking layer; returns the spike count."""
    outputs = {}
    for method, net in nets.items():
        net.eval()
        with torch.no_grad():
            outputs[method] = net(images, return_spikes=True)
        net.train()
    (psp_a, spikes_a), (psp_b, spikes_b) = outputs.values()
    assert torch.equal(psp_a, psp_b), "output PSPs differ between the methods"
    for index, (a, b) in enumerate(zip(spikes_a, spikes_b, strict=True)):
        assert torch.equal(a, b), f"spiking layer {index}: spikes differ between the methods"
    return int(sum(s.sum() for s in spikes_a))


def batches_from(split: Split, batch_size: int, count: int, seed: int = 0) -> list[Batch]:
    """`count` batches of a fixed random permutation of the split (the same for every method)."""
    order = np.random.default_rng(seed).permutation(len(split))[: batch_size * count]
    images, labels = split.images[order], split.labels[order]
    return [
        (torch.from_numpy(images[i : i + batch_size]), torch.from_numpy(labels[i : i + batch_size]))
        for i in range(0, len(order), batch_size)
    ]


class Trainer:
    """The step of `toolchain.train.loop.train_epoch`, timing each phase of every step."""

    PHASES = ("forward", "backward", "step", "total")

    def __init__(self, net: SpikingNetwork, config: Config) -> None:
        self.net, self.config = net, config
        self.on_gpu = next(net.parameters()).is_cuda
        self.optimizer = build_optimizer(net, config)
        self.loss_fn: Loss = build_loss(config.loss, config.neuron)
        self.times: dict[str, list[float]] = {phase: [] for phase in self.PHASES}

    def clock(self) -> float:
        if self.on_gpu:
            torch.cuda.synchronize()
        return time.perf_counter()

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        t, clock = self.config.train, self.clock
        self.net.train()
        began = clock()
        loss = self.loss_fn(self.net(images), labels)
        forward_done = clock()
        self.optimizer.zero_grad()
        loss.backward()
        backward_done = clock()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), t.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            for param in self.net.parameters():
                param.clamp_(-t.weight_clamp, t.weight_clamp)
        value = loss.item()
        done = clock()
        spans = (forward_done - began, backward_done - forward_done, done - backward_done)
        for phase, span in zip(self.PHASES, (*spans, done - began), strict=True):
            self.times[phase].append(span)
        return value

    def run(self, batches: list[Batch]) -> float:
        """Trains on `batches`; returns the wall time in seconds."""
        began = self.clock()
        for images, labels in batches:
            self.step(images, labels)
        return self.clock() - began


class _Saved:
    """What the pack hook hands autograd: alive exactly as long as the graph node keeping it."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


def saved_for_backward(net: SpikingNetwork, loss_fn: Loss, batch: Batch) -> dict[str, int]:
    """Unique storages that the graph of one training forward pass holds for backward.

    Counted once the loss exists: tensors saved by nodes that are already freed (branches that
    do not reach the loss, e.g. the reset after BPTT's last step) do not count, and storages
    are deduplicated by address (all alive, so no address is reused).
    """
    packed: list[weakref.ref[_Saved]] = []

    def pack(tensor: torch.Tensor) -> _Saved:
        saved = _Saved(tensor)
        packed.append(weakref.ref(saved))
        return saved

    net.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda saved: saved.tensor):
        loss = loss_fn(net(batch[0]), batch[1])
        alive = [saved.tensor for ref in packed if (saved := ref()) is not None]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in alive}
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    del loss, alive
    return {
        "saved_bytes": sum(storages.values()),
        "saved_activation_bytes": sum(n for ptr, n in storages.items() if ptr not in params),
        "saved_tensor_count": len(packed),
        "saved_alive_count": sum(ref() is not None for ref in packed),
        "saved_storage_count": len(storages),
    }


def time_methods(
    trainers: dict[str, Trainer], batches: list[Batch], warmup: int, reps: int
) -> dict[str, dict[str, object]]:
    """Warm-up, then `reps` passes over the timed batches in which the methods take turns batch
    by batch (which goes first alternates).

    samples/s is the batch size over the median step time; the speed ratio is the median over
    batches of the two methods' step times on that batch, measured within milliseconds of each
    other, so that the machine's drift (up to 30 % between minutes here) cancels out of it.
    """
    for trainer in trainers.values():
        trainer.run(batches[:warmup])
        trainer.times = {phase: [] for phase in trainer.PHASES}
    timed = batches[warmup:]
    methods = list(trainers)
    for rep in range(reps):
        for index, (images, labels) in enumerate(timed):
            for method in methods if (rep + index) % 2 == 0 else reversed(methods):
                trainers[method].step(images, labels)
    size = sum(len(labels) for _, labels in timed) / len(timed)
    return {m: _timing(trainer, size, reps) for m, trainer in trainers.items()}


def _timing(trainer: Trainer, batch_size: float, reps: int) -> dict[str, object]:
    median = {phase: statistics.median(times) for phase, times in trainer.times.items()}
    steps = trainer.times["total"]
    per_rep = [batch_size * len(rep) / sum(rep) for rep in np.array_split(steps, reps)]
    return {
        "samples_per_s": batch_size / median["total"],
        "samples_per_s_reps": per_rep,
        **{f"{phase}_ms_median": 1e3 * median[phase] for phase in trainer.PHASES},
        "step_s": steps,
        "timed_steps": len(steps),
    }


def paired_speed_ratio(results: dict[str, dict[str, object]]) -> float:
    """TSSL-BP's speed over BPTT's: the median over batches of BPTT's step time over TSSL-BP's
    on the same batch, the two steps taken one after the other."""
    pairs = zip(results["bptt"]["step_s"], results["tsslbp"]["step_s"], strict=True)  # type: ignore[call-overload]
    return statistics.median(bptt / tsslbp for bptt, tsslbp in pairs)


def peak_rss(bench: Bench, method: str, batches: list[Batch], threads: int) -> dict[str, int]:
    """Runs `--worker` in a fresh interpreter; returns its baseline and peak-growth bytes."""
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        data = Path(tmp) / "batches.npz"
        images = torch.cat([b[0] for b in batches]).numpy()
        labels = torch.cat([b[1] for b in batches]).numpy()
        np.savez(data, images=images, labels=labels)
        # Through `sh`, which forks: a child exec'ed straight from this (large) process inherits
        # its peak RSS in ru_maxrss, and would hide a smaller peak of its own.
        launcher = ["sh", "-c", '"$@"; exit $?', "sh", sys.executable, __file__]
        flags = {"--worker": method, "--worker-config": bench.config, "--worker-data": str(data)}
        flags["--threads"] = str(threads)
        command = launcher + [item for pair in flags.items() for item in pair]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"peak-RSS worker {bench.name}/{method} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_peak_rss(bench: Bench, method: str, batches: list[Batch]) -> dict[str, object]:
    runs = [peak_rss(bench, method, batches, torch.get_num_threads()) for _ in range(RSS_RUNS)]
    growth = [run["peak_rss_growth_bytes"] for run in runs]
    return {
        "peak_rss_growth_bytes": statistics.median(growth),
        "peak_rss_growth_bytes_runs": growth,
        "rss_baseline_bytes": statistics.median(run["rss_baseline_bytes"] for run in runs),
    }


def maxrss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(method: str, config_path: str, data: str, threads: int) -> None:
    """Subprocess body: setup, one 1-sample step (optimiser state, lazy init), then measure."""
    if threads:
        torch.set_num_threads(threads)
    config = load_config(REPO / config_path)
    with np.load(data) as arrays:
        images, labels = torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"])
    net = make_net(config, method, tuple(images.shape[1:]))  # type: ignore[arg-type]
    trainer = Trainer(net, config)
    trainer.step(images[:1], labels[:1])
    gc.collect()
    baseline = maxrss_bytes()
    size = config.train.batch_size
    for start in range(0, RSS_STEPS * size, size):
        trainer.step(images[start : start + size], labels[start : start + size])
    peak = maxrss_bytes()
    print(json.dumps({"rss_baseline_bytes": baseline, "peak_rss_growth_bytes": peak - baseline}))


def peak_gpu_memory(trainer: Trainer, batches: list[Batch]) -> dict[str, int]:
    """The growth of GPU memory allocated over its value before `batches` are trained."""
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    trainer.run(batches)
    return {"peak_gpu_growth_bytes": torch.cuda.max_memory_allocated() - baseline}


def measure(bench: Bench, split: Split, reps: int, quick: bool, device: str) -> dict[str, object]:
    """Every measurement of one network, both methods."""
    config = load_config(REPO / bench.config)
    warmup, timed = (QUICK["warmup"], QUICK["timed"]) if quick else (bench.warmup, bench.timed)
    on_cpu = batches_from(split, config.train.batch_size, warmup + timed)
    batches = [(images.to(device), labels.to(device)) for images, labels in on_cpu]
    shape = tuple(split.images.shape[1:])
    nets = {m: make_net(config, m, shape).to(device) for m in METHODS}  # type: ignore[arg-type]
    spikes = check_same_forward(nets, batches[0][0])
    trainers = {method: Trainer(net, config) for method, net in nets.items()}
    results = {m: saved_for_backward(t.net, t.loss_fn, batches[0]) for m, t in trainers.items()}
    for method, timing in time_methods(trainers, batches, warmup, reps).items():
        results[method].update(timing)
    for method, trainer in trainers.items():
        if device == "cuda":
            results[method].update(peak_gpu_memory(trainer, batches[: RSS_STEPS + 1]))
        else:
            results[method].update(median_peak_rss(bench, method, on_cpu[: RSS_STEPS + 1]))
    return {
        "network": bench.name,
        "config": bench.config,
        "batch_size": config.train.batch_size,
        "T": config.neuron.T,
        "warmup_batches": warmup,
        "timed_batches": timed,
        "repetitions": reps,
        "forward_identical": True,
        "check_batch_spikes": spikes,
        "methods": results,
        "ratios_tsslbp_over_bptt": ratios(results),
    }


def ratios(results: dict[str, dict[str, object]]) -> dict[str, float]:
    """TSSL-BP over BPTT: speed paired batch by batch (the headline), the ratio of the median
    throughputs, and the memory measures."""
    a, b = results["tsslbp"], results["bptt"]
    keys = ["samples_per_s", "saved_bytes", "saved_activation_bytes", peak_key(a)]
    quotients = {key: float(a[key]) / float(b[key]) if b[key] else float("nan") for key in keys}
    return {"speed_paired": paired_speed_ratio(results), **quotients}


def peak_key(result: dict[str, object]) -> str:
    """The peak-memory measure of a result: RSS on the CPU, allocated memory on the GPU."""
    return "peak_gpu_growth_bytes" if "peak_gpu_growth_bytes" in result else "peak_rss_growth_bytes"


def table(networks: list[dict[str, object]]) -> str:
    """Network, method, samples/s, ms per batch by phase, MiB, and the TSSL-BP/BPTT ratios."""
    head = (
        f"{'network':<10} {'method':<7} {'samples/s':>9} {'fwd ms':>7} {'bwd ms':>7} "
        f"{'saved MiB':>9} {'peak MiB':>12}"
    )
    lines = [head, "-" * len(head)]
    for net in networks:
        for method, r in net["methods"].items():  # type: ignore[union-attr]
            lines.append(
                f"{net['network']:<10} {method:<7} {r['samples_per_s']:>9.0f} "
                f"{r['forward_ms_median']:>7.1f} {r['backward_ms_median']:>7.1f} "
                f"{r['saved_bytes'] / MIB:>9.1f} {r[peak_key(r)] / MIB:>12.1f}"
            )
        q = net["ratios_tsslbp_over_bptt"]
        lines.append(
            f"{net['network']:<10} {'ratio':<7} {q['speed_paired']:>9.2f} {'':>7} {'':>7} "
            f"{q['saved_bytes']:>9.2f} {q[peak_key(r)]:>12.2f}"
        )
    return "\n".join(lines)


def run(data_dir: Path, reps: int, quick: bool, out: Path | None, device: str) -> None:
    split = load_dataset("mnist", data_dir).train
    load_before = os.getloadavg()
    networks = []
    for bench in BENCHES:
        print(f"measuring {bench.name} on {device} ...", flush=True)
        networks.append(measure(bench, split, QUICK["reps"] if quick else reps, quick, device))
    out = out or (CUDA_RESULTS if device == "cuda" else RESULTS)
    report = {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "quick": quick,
        "load_average_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
        "networks": networks,
    }
    write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}\n")
    print(table(networks))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, help="MNIST folder (default: $SNN_DEPLOY_MNIST or ../shared)"
    )
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (median)")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--out", type=Path, help="the JSON to write (default: by device)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    # The peak-RSS subprocess re-invokes this script with these hidden flags.
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-config", help=argparse.SUPPRESS)
    parser.add_argument("--worker-data", help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.worker_config, args.worker_data, args.threads)
    else:
        run(args.data_dir, args.reps, args.quick, args.out, args.device)


if __name__ == "__main__":
    main()
