"""The training loop: the paper's optimiser, a checkpoint per epoch, exact resume.

Runs repeat: the seed in the config initialises the weights and drives the shuffling and the
dropout masks through torch's global generator, whose state each checkpoint records.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from toolchain.data.augment import random_shift
from toolchain.data.datasets import Dataset, Split, hold_out, load_dataset
from toolchain.report.training import write_metrics
from toolchain.train.averaging import WeightAverage
from toolchain.train.checkpoint import (
    AVERAGE_NAME,
    BEST_NAME,
    CHECKPOINT_NAME,
    Checkpoint,
    CheckpointError,
)
from toolchain.train.config import Config
from toolchain.train.losses import Loss, build_loss
from toolchain.train.network import SpikingNetwork

EVAL_BATCH = 500


class TrainingError(ValueError):
    """Training cannot go on (a non-finite loss or weight); the message says where."""


class RunDirError(ValueError):
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


@dataclass(frozen=True)
class TrainResult:
    train_accuracy: float
    test_accuracy: float
    epochs: int
    checkpoint: Path
    metrics: list[dict[str, float]]
    best: Path | None = None  # the epoch with the best validation accuracy, if any was held out
    average: Path | None = None  # the averaged weights, if any epochs were averaged

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
) -> tuple[float, float]:
    """One pass over shuffled training data; returns (mean loss per sample, train accuracy)."""
    model.train()
    device = _device_of(model)
    t = config.train
    order = torch.randperm(len(split))
    total_loss, correct = 0.0, 0
    for start in range(0, len(split), t.batch_size):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, epoch + start / len(split))
        index = order[start : start + t.batch_size].numpy()
        images = random_shift(torch.from_numpy(split.images[index]), t.augment_shift)
        images, labels = images.to(device), torch.from_numpy(split.labels[index]).to(device)
        output = model(images)
        loss = loss_fn(output, labels)
        step = start // t.batch_size + 1
        if not torch.isfinite(loss):
            raise TrainingError(f"epoch {epoch + 1}, step {step}: the loss is {loss.item()}")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.clamp_(-t.weight_clamp, t.weight_clamp)
                if not torch.isfinite(param).all():
                    raise TrainingError(
                        f"epoch {epoch + 1}, step {step}: {name} has non-finite values"
                    )
        total_loss += loss.item()
        correct += int((model.predict(output) == labels).sum())
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
) -> TrainResult:
    """Trains `config.train.total_epochs` epochs (in total, counting resumed ones) into `out_dir`.

    With `config.train.validation` samples held out of the training set, the epoch with the best
    validation accuracy (the first of equals) is also saved as `out_dir/best.pt`, without the
    optimiser state: the test set is reported, never used to choose. With
    `config.train.average_epochs`, the epochs after the schedule train at a constant learning
    rate and the mean of their weights is what they report and save (`out_dir/average.pt`).
    A folder that holds a checkpoint is continued (`resume`) or started again (`overwrite`),
    never silently replaced; a non-finite loss or weight stops the run (TrainingError) before
    anything is saved.
    """
    out_dir = Path(out_dir)
    prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
    dataset = dataset or load_dataset(config.dataset, data_dir)
    train_split, validation = dataset.train, None
    if config.train.validation:
        train_split, validation = hold_out(dataset.train, config.train.validation)
    checkpoint_path, best_path = out_dir / CHECKPOINT_NAME, out_dir / BEST_NAME
    if overwrite:
        for stale in (best_path, out_dir / AVERAGE_NAME):  # from the run being replaced
            stale.unlink(missing_ok=True)
    model = build_model(config, dataset.input_shape).to(device)
    optimizer = build_optimizer(model, config)
    loss_fn = build_loss(config.loss, config.neuron)
    first_epoch, metrics, average = 0, [], WeightAverage()
    if resume:
        first_epoch, metrics, average = _resume_state(checkpoint_path, config, model, optimizer)
    total = config.train.total_epochs
    for epoch in range(first_epoch, total):
        began = time.perf_counter()
        with tqdm(
            total=len(train_split),
            desc=f"epoch {epoch + 1}/{total}",
            unit="sample",
            disable=not progress,
            leave=False,
        ) as bar:
            loss, train_acc = train_epoch(
                model, optimizer, loss_fn, train_split, config, epoch, bar
            )
        result = model
        if epoch >= config.train.epochs:
            average.add(model)
            result = average.model_like(model)
        entry = {"epoch": epoch + 1, "loss": loss, "train_accuracy": train_acc}
        if validation is not None:
            entry["validation_accuracy"] = evaluate(result, validation)
        entry["test_accuracy"] = evaluate(result, dataset.test)
        entry["seconds"] = time.perf_counter() - began
        metrics.append(entry)
        if progress:
            tqdm.write(_epoch_line(entry, total), file=sys.stderr)
        saved = Checkpoint(
            config,
            dataset.input_shape,
            epoch + 1,
            _cpu_state(result),
            {},
            metrics,
            torch.get_rng_state(),
        )
        if validation is not None and _is_best(metrics):
            saved.save(best_path)
        if result is not model:
            saved.save(out_dir / AVERAGE_NAME)
        resumable = dataclasses.replace(
            saved,
            model=_cpu_state(model),
            optimizer=optimizer.state_dict(),
            average=average.to_dict() if average.count else None,
        )
        resumable.save(checkpoint_path)
    write_metrics(metrics, out_dir)
    last = metrics[-1]
    return TrainResult(
        train_accuracy=last["train_accuracy"],
        test_accuracy=last["test_accuracy"],
        epochs=last["epoch"],
        checkpoint=checkpoint_path,
        metrics=metrics,
        best=best_path if validation is not None else None,
        average=out_dir / AVERAGE_NAME if config.train.average_epochs else None,
    )


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
