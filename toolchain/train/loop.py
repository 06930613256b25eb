"""The training loop: the paper's optimiser, a checkpoint per epoch, exact resume.

Runs repeat: the seed in the config initialises the weights and drives the shuffling and the
dropout masks through torch's global generator, whose state each checkpoint records.
"""

from __future__ import annotations

import dataclasses
import fcntl
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from toolchain.data.augment import random_shift
from toolchain.data.datasets import INPUT_SHAPES, Dataset, Split, hold_out, load_dataset
from toolchain.errors import UserError
from toolchain.resources import require_memory
from toolchain.train.averaging import WeightAverage
from toolchain.train.checkpoint import (
    AVERAGE_NAME,
    BEST_NAME,
    CHECKPOINT_NAME,
    Checkpoint,
    CheckpointError,
)
from toolchain.train.config import Config, ConvSpec, DenseSpec, DropoutSpec, layer_shapes
from toolchain.train.distributed import SINGLE, Group, device_of_rank
from toolchain.train.losses import Loss, build_loss
from toolchain.train.metrics import write_metrics
from toolchain.train.network import SpikingNetwork

EVAL_BATCH = 500


class TrainingError(UserError, ValueError):
    """Training cannot go on (a non-finite loss or weight); the message says where."""


class RunDirError(UserError, ValueError):
    """The run folder cannot be used as asked; the message names it and what to do."""


def prepare_run_dir(out_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Checks, before any training, that `out_dir` is a writable folder in the state asked for."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirError(f"{out_dir}: is a file; --out needs a folder for checkpoint.pt")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as err:
        raise RunDirError(f"{out_dir}: cannot write there ({err.strerror})") from None
    held = (out_dir / CHECKPOINT_NAME).is_file()
    if resume and not held:
        raise RunDirError(f"{out_dir}: holds no {CHECKPOINT_NAME} to resume")
    if held and not (resume or overwrite):
        raise RunDirError(
            f"{out_dir}: already holds {CHECKPOINT_NAME}; use --resume to continue it or "
            "--overwrite to train from the start"
        )


LOCK_NAME = ".train.lock"


@contextmanager
def exclusive_run_dir(out_dir: Path) -> Iterator[None]:
    """Holds `out_dir` for this run alone (an advisory lock the system drops if the run dies):
    a second run into the same folder is refused instead of both writing checkpoint.pt."""
    with open(out_dir / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise RunDirError(
                f"{out_dir}: another training run (process {holder}) is writing there; wait for "
                "it to end or use another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def memory_needed(config: Config, processes: int = 1) -> int:
    """About the bytes training takes: weights with their gradients and Adam's two moments in
    every process, and the batch's activations over T steps (kept for the backward pass, a few
    tensors per layer)."""
    input_shape = INPUT_SHAPES[config.dataset]
    shapes = layer_shapes(config.layers, input_shape)
    weights = 0
    for spec, shape in zip(config.layers, [input_shape, *shapes[:-1]], strict=True):
        if isinstance(spec, DenseSpec):
            weights += math.prod(shape) * spec.out
        elif isinstance(spec, ConvSpec):
            weights += shape[0] * spec.out * spec.kernel**2
    activations = sum(math.prod(shape) for shape in shapes) * config.train.batch_size
    return processes * weights * 4 * 4 + activations * config.neuron.T * 4 * 8


def check_memory(config: Config, processes: int = 1) -> None:
    """Refuses a run this machine's memory cannot hold, with the estimate."""
    what = f"training {config.name} (T={config.neuron.T}, batch {config.train.batch_size})"
    require_memory(memory_needed(config, processes), what)


@dataclass(frozen=True)
class TrainResult:
    train_accuracy: float
    test_accuracy: float
    epochs: int
    checkpoint: Path
    metrics: list[dict[str, float]]
    best: Path | None = None  # the epoch with the best validation accuracy, if any was held out
    average: Path | None = None  # the averaged weights, if any epochs were averaged

    @classmethod
    def of_run(cls, out_dir: Path) -> TrainResult:
        """The result of the run whose checkpoint `out_dir` holds."""
        saved = Checkpoint.load(out_dir / CHECKPOINT_NAME)
        last, train = saved.metrics[-1], saved.config.train
        return cls(
            train_accuracy=last["train_accuracy"],
            test_accuracy=last["test_accuracy"],
            epochs=last["epoch"],
            checkpoint=out_dir / CHECKPOINT_NAME,
            metrics=saved.metrics,
            best=out_dir / BEST_NAME if train.validation else None,
            average=out_dir / AVERAGE_NAME if train.average_epochs else None,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "epochs": self.epochs,
            "checkpoint": str(self.checkpoint),
            "best": None if self.best is None else str(self.best),
            "average": None if self.average is None else str(self.average),
        }


def build_model(config: Config, input_shape: tuple[int, int, int]) -> SpikingNetwork:
    torch.manual_seed(config.train.seed)
    return SpikingNetwork(config, input_shape)


def model_from_checkpoint(checkpoint: Checkpoint) -> SpikingNetwork:
    """The trained network a checkpoint holds."""
    model = build_model(checkpoint.config, checkpoint.input_shape)
    model.load_state_dict(checkpoint.model)
    return model


def build_optimizer(model: SpikingNetwork, config: Config) -> torch.optim.Optimizer:
    t = config.train
    return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def learning_rate(config: Config, epoch: float) -> float:
    """The learning rate at a (fractional) epoch: constant, or cosine-annealed to 0; then
    constant at `average_lr_scale` of it during the averaged epochs."""
    t = config.train
    if epoch >= t.epochs:
        return t.lr * t.average_lr_scale
    if t.lr_schedule == "constant":
        return t.lr
    return 0.5 * t.lr * (1.0 + math.cos(math.pi * epoch / t.epochs))


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model: SpikingNetwork, split: Split) -> float:
    """Accuracy in [0, 1]: argmax over classes of the summed output PSP."""
    model.eval()
    device = _device_of(model)
    correct = 0
    for start in range(0, len(split), EVAL_BATCH):
        images = torch.from_numpy(split.images[start : start + EVAL_BATCH]).to(device)
        labels = torch.from_numpy(split.labels[start : start + EVAL_BATCH]).to(device)
        correct += int((model.predict(model(images)) == labels).sum())
    return correct / len(split)


def train_epoch(
    model: SpikingNetwork,
    optimizer: torch.optim.Optimizer,
    loss_fn: Loss,
    split: Split,
    config: Config,
    epoch: int,
    progress: tqdm | None = None,
    group: Group = SINGLE,
) -> tuple[float, float]:
    """One pass over shuffled training data; returns (mean loss per sample, train accuracy).
    Each process of `group` draws the same global batches and trains on its part of each."""
    model.train()
    device = _device_of(model)
    t = config.train
    order = torch.randperm(len(split))
    total_loss, correct = 0.0, 0
    for start in range(0, len(split), t.batch_size):
        for params in optimizer.param_groups:
            params["lr"] = learning_rate(config, epoch + start / len(split))
        index = order[start : start + t.batch_size].numpy()
        images = random_shift(torch.from_numpy(split.images[index]), t.augment_shift)
        mine = group.part(len(index))
        images = images[mine].to(device)
        labels = torch.from_numpy(split.labels[index[mine]]).to(device)
        output = model(images)
        loss = loss_fn(output, labels)
        right = (model.predict(output) == labels).sum()
        batch_loss, batch_right = group.total(torch.stack([loss.detach(), right.to(loss.dtype)]))
        step = start // t.batch_size + 1
        if not torch.isfinite(batch_loss):
            raise TrainingError(f"epoch {epoch + 1}, step {step}: the loss is {batch_loss.item()}")
        optimizer.zero_grad()
        loss.backward()
        group.sum_gradients(model)
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.clamp_(-t.weight_clamp, t.weight_clamp)
                if not torch.isfinite(param).all():
                    raise TrainingError(
                        f"epoch {epoch + 1}, step {step}: {name} has non-finite values"
                    )
        total_loss += batch_loss.item()
        correct += int(batch_right)
        if progress is not None:
            progress.update(len(index))
            seen = min(start + t.batch_size, len(split))
            progress.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    return total_loss / len(split), correct / len(split)


def _resume_state(
    checkpoint_path: Path, config: Config, model: SpikingNetwork, optimizer: torch.optim.Optimizer
) -> tuple[int, list[dict[str, float]], WeightAverage]:
    saved = Checkpoint.load(checkpoint_path)
    t = saved.config.train
    if config.with_epochs(t.epochs, t.average_epochs) != saved.config:
        raise CheckpointError(
            f"{checkpoint_path}: was trained with a different config (only epochs and "
            "average_epochs may change); use another --out or drop --resume"
        )
    if saved.epoch > t.epochs and config.train.epochs != t.epochs:
        raise CheckpointError(
            f"{checkpoint_path}: its weights are being averaged after its schedule of {t.epochs} "
            f"epochs; keep epochs = {t.epochs}"
        )
    if saved.epoch > config.train.total_epochs:
        raise CheckpointError(
            f"{checkpoint_path}: already trained {saved.epoch} epochs, past the requested total "
            f"of {config.train.total_epochs}; ask for more epochs"
        )
    model.load_state_dict(saved.model)
    optimizer.load_state_dict(saved.optimizer)
    torch.set_rng_state(saved.rng_state)
    return saved.epoch, saved.metrics, WeightAverage.from_dict(saved.average)


def train(
    config: Config,
    out_dir: Path | str,
    *,
    data_dir: Path | str | None = None,
    dataset: Dataset | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str = "cpu",
    overwrite: bool = False,
    group: Group = SINGLE,
) -> TrainResult:
    """Trains `config.train.total_epochs` epochs (in total, counting resumed ones) into `out_dir`.

    With `config.train.validation` samples held out of the training set, the epoch with the best
    validation accuracy (the first of equals) is also saved as `out_dir/best.pt`, without the
    optimiser state: the test set is reported, never used to choose. With
    `config.train.average_epochs`, the epochs after the schedule train at a constant learning
    rate and the mean of their weights is what they report and save (`out_dir/average.pt`).
    A folder that holds a checkpoint is continued (`resume`) or started again (`overwrite`),
    never silently replaced; a non-finite loss or weight stops the run (TrainingError) before
    anything is saved. Under a distributed `group`, each process trains on its part of every
    batch and rank 0 evaluates and writes.
    """
    out_dir = Path(out_dir)
    prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
    check_distributable(config, group.world)
    check_memory(config, group.world)
    dataset = dataset or load_dataset(config.dataset, data_dir)
    train_split, validation = dataset.train, None
    if config.train.validation:
        train_split, validation = hold_out(dataset.train, config.train.validation)
    run = _Run(out_dir, config, dataset, validation, progress and group.is_main)
    if overwrite and group.is_main:
        for stale in (run.best_path, out_dir / AVERAGE_NAME):  # from the run being replaced
            stale.unlink(missing_ok=True)
    device = device_of_rank(device, group)
    model = build_model(config, dataset.input_shape).to(device)
    optimizer = build_optimizer(model, config)
    loss_fn = build_loss(config.loss, config.neuron)
    first_epoch, metrics, average = 0, [], WeightAverage()
    if resume:
        first_epoch, metrics, average = _resume_state(run.checkpoint, config, model, optimizer)
    for epoch in range(first_epoch, config.train.total_epochs):
        began = time.perf_counter()
        with run.bar(epoch, len(train_split)) as bar:
            loss, train_acc = train_epoch(
                model, optimizer, loss_fn, train_split, config, epoch, bar, group
            )
        result = model
        if epoch >= config.train.epochs:
            average.add(model)
            result = average.model_like(model)
        if group.is_main:
            entry = {"epoch": epoch + 1, "loss": loss, "train_accuracy": train_acc}
            metrics.append(run.evaluated(entry, result, began))
            run.save(epoch, metrics, model, result, optimizer, average)
        group.wait()
    if group.is_main:
        write_metrics(metrics, out_dir)
    group.wait()
    return TrainResult.of_run(out_dir)


def check_distributable(config: Config, processes: int) -> None:
    """Refuses what a run over several processes cannot reproduce."""
    if processes > 1 and any(isinstance(layer, DropoutSpec) for layer in config.layers):
        raise TrainingError(
            f"{config.name}: dropout layers draw their masks per process, so a run over "
            f"{processes} processes would not be the one-process run; train it with one"
        )


@dataclass(frozen=True)
class _Run:
    """Where one training run reports and writes (rank 0 of a distributed run)."""

    out_dir: Path
    config: Config
    dataset: Dataset
    validation: Split | None
    progress: bool

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    @property
    def best_path(self) -> Path:
        return self.out_dir / BEST_NAME

    def bar(self, epoch: int, samples: int) -> tqdm:
        total = self.config.train.total_epochs
        return tqdm(
            total=samples,
            desc=f"epoch {epoch + 1}/{total}",
            unit="sample",
            disable=not self.progress,
            leave=False,
        )

    def evaluated(
        self, entry: dict[str, float], model: SpikingNetwork, began: float
    ) -> dict[str, float]:
        """The epoch's entry with the accuracies of the model it yields, and its time."""
        if self.validation is not None:
            entry["validation_accuracy"] = evaluate(model, self.validation)
        entry["test_accuracy"] = evaluate(model, self.dataset.test)
        entry["seconds"] = time.perf_counter() - began
        if self.progress:
            tqdm.write(_epoch_line(entry, self.config.train.total_epochs), file=sys.stderr)
        return entry

    def save(
        self,
        epoch: int,
        metrics: list[dict[str, float]],
        model: SpikingNetwork,
        result: SpikingNetwork,
        optimizer: torch.optim.Optimizer,
        average: WeightAverage,
    ) -> None:
        """best.pt and average.pt as due, then the resumable checkpoint.pt."""
        saved = Checkpoint(
            self.config,
            self.dataset.input_shape,
            epoch + 1,
            _cpu_state(result),
            {},
            metrics,
            torch.get_rng_state(),
        )
        if self.validation is not None and _is_best(metrics):
            saved.save(self.best_path)
        if result is not model:
            saved.save(self.out_dir / AVERAGE_NAME)
        resumable = dataclasses.replace(
            saved,
            model=_cpu_state(model),
            optimizer=optimizer.state_dict(),
            average=average.to_dict() if average.count else None,
        )
        resumable.save(self.checkpoint)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.cpu() for name, value in model.state_dict().items()}


def _epoch_line(entry: dict[str, float], epochs: int) -> str:
    shown = ", ".join(
        f"{key.removesuffix('_accuracy')} {100 * entry[key]:.2f} %"
        for key in ("train_accuracy", "validation_accuracy", "test_accuracy")
        if key in entry
    )
    return f"epoch {entry['epoch']}/{epochs}: loss {entry['loss']:.4f}, {shown}"


def _is_best(metrics: list[dict[str, float]]) -> bool:
    """Whether the last epoch's validation accuracy beats every earlier one."""
    *earlier, last = (m["validation_accuracy"] for m in metrics)
    return all(last > value for value in earlier)
