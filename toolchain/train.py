"""The training loop: the paper's optimiser, a checkpoint per epoch, exact resume.

Runs repeat: the seed in the config initialises the weights and drives the shuffling and the
dropout masks through torch's global generator, whose state each checkpoint records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from toolchain.checkpoint import CHECKPOINT_NAME, Checkpoint, CheckpointError
from toolchain.config import Config
from toolchain.datasets import Dataset, Split, load_dataset
from toolchain.losses import Loss, build_loss
from toolchain.network import SpikingNetwork

EVAL_BATCH = 500


@dataclass(frozen=True)
class TrainResult:
    train_accuracy: float
    test_accuracy: float
    epochs: int
    checkpoint: Path
    metrics: list[dict[str, float]]

    def to_json(self) -> dict[str, object]:
        return {
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "epochs": self.epochs,
            "checkpoint": str(self.checkpoint),
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


@torch.no_grad()
def evaluate(model: SpikingNetwork, split: Split) -> float:
    """Test accuracy in [0, 1]: argmax over classes of the summed output PSP."""
    model.eval()
    correct = 0
    for start in range(0, len(split), EVAL_BATCH):
        images = torch.from_numpy(split.images[start : start + EVAL_BATCH])
        labels = torch.from_numpy(split.labels[start : start + EVAL_BATCH])
        correct += int((model.predict(model(images)) == labels).sum())
    return correct / len(split)


def train_epoch(
    model: SpikingNetwork,
    optimizer: torch.optim.Optimizer,
    loss_fn: Loss,
    split: Split,
    config: Config,
    progress: tqdm | None = None,
) -> tuple[float, float]:
    """One pass over shuffled training data; returns (mean loss per sample, train accuracy)."""
    model.train()
    t = config.train
    order = torch.randperm(len(split))
    total_loss, correct = 0.0, 0
    for start in range(0, len(split), t.batch_size):
        index = order[start : start + t.batch_size].numpy()
        images, labels = (
            torch.from_numpy(split.images[index]),
            torch.from_numpy(split.labels[index]),
        )
        output = model(images)
        loss = loss_fn(output, labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        with torch.no_grad():
            for param in model.parameters():
                param.clamp_(-t.weight_clamp, t.weight_clamp)
        total_loss += loss.item()
        correct += int((model.predict(output) == labels).sum())
        if progress is not None:
            progress.update(len(index))
            seen = min(start + t.batch_size, len(split))
            progress.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    return total_loss / len(split), correct / len(split)


def _resume_state(
    checkpoint_path: Path, config: Config, model: SpikingNetwork, optimizer: torch.optim.Optimizer
) -> tuple[int, list[dict[str, float]]]:
    saved = Checkpoint.load(checkpoint_path)
    if config.with_epochs(saved.config.train.epochs) != saved.config:
        raise CheckpointError(
            f"{checkpoint_path}: was trained with a different config (only epochs may change); "
            "use another --out or drop --resume"
        )
    model.load_state_dict(saved.model)
    optimizer.load_state_dict(saved.optimizer)
    torch.set_rng_state(saved.rng_state)
    return saved.epoch, saved.metrics


def train(
    config: Config,
    out_dir: Path | str,
    *,
    data_dir: Path | str | None = None,
    dataset: Dataset | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Trains `config.train.epochs` epochs (in total, counting resumed ones) into `out_dir`."""
    dataset = dataset or load_dataset(config.dataset, data_dir)
    checkpoint_path = Path(out_dir) / CHECKPOINT_NAME
    model = build_model(config, dataset.input_shape)
    optimizer = build_optimizer(model, config)
    loss_fn = build_loss(config.loss, config.neuron)
    first_epoch, metrics = 0, []
    if resume:
        first_epoch, metrics = _resume_state(checkpoint_path, config, model, optimizer)
    for epoch in range(first_epoch, config.train.epochs):
        began = time.perf_counter()
        with tqdm(
            total=len(dataset.train),
            desc=f"epoch {epoch + 1}/{config.train.epochs}",
            unit="sample",
            disable=not progress,
            leave=False,
        ) as bar:
            loss, train_acc = train_epoch(model, optimizer, loss_fn, dataset.train, config, bar)
        test_acc = evaluate(model, dataset.test)
        metrics.append(
            {
                "epoch": epoch + 1,
                "loss": loss,
                "train_accuracy": train_acc,
                "test_accuracy": test_acc,
                "seconds": time.perf_counter() - began,
            }
        )
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}/{config.train.epochs}: loss {loss:.4f}, "
                f"train {100 * train_acc:.2f} %, test {100 * test_acc:.2f} %"
            )
        Checkpoint(
            config,
            dataset.input_shape,
            epoch + 1,
            model.state_dict(),
            optimizer.state_dict(),
            metrics,
            torch.get_rng_state(),
        ).save(checkpoint_path)
    last = metrics[-1]
    return TrainResult(
        train_accuracy=last["train_accuracy"],
        test_accuracy=last["test_accuracy"],
        epochs=config.train.epochs,
        checkpoint=checkpoint_path,
        metrics=metrics,
    )
