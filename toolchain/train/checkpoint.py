"""Training checkpoints: model, optimiser, epoch, config, metrics and RNG state in one file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from toolchain.atomic import atomic_path
from toolchain.data.datasets import INPUT_SHAPES
from toolchain.errors import UserError
from toolchain.train.config import Config, ConfigError

FORMAT = "snn-deploy-checkpoint"
VERSION = 1
KEYS = ("config", "input_shape", "epoch", "model", "optimizer", "metrics", "rng_state")
CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"  # the epoch chosen on held-out training data
AVERAGE_NAME = "average.pt"  # the mean weights of the averaged epochs


class CheckpointError(UserError, ValueError):
    """A checkpoint file is missing, unreadable or not one of ours."""


@dataclass
class Checkpoint:
    config: Config
    input_shape: tuple[int, int, int]
    epoch: int  # epochs completed
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    metrics: list[dict[str, float]]
    rng_state: torch.Tensor
    average: dict[str, Any] | None = None  # the running weight average, while one is kept

    def save(self, path: Path | str) -> None:
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.to_dict(),
            "input_shape": list(self.input_shape),
            "epoch": self.epoch,
            "model": self.model,
            "optimizer": self.optimizer,
            "metrics": self.metrics,
            "rng_state": self.rng_state,
            "average": self.average,
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: Path | str) -> Checkpoint:
        """A checkpoint, checked: its keys, its config, its input shape, and a finite model
        whose tensors are the ones its config's network has. CheckpointError names the file."""
        path = Path(path)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "not found"
            raise CheckpointError(f"{path}: checkpoint {what}; expected a checkpoint.pt file")
        payload = _read(path)
        try:
            config = Config.from_dict(payload["config"])
        except ConfigError as err:
            raise CheckpointError(f"{path}: its config: {err}") from None
        checkpoint = cls(
            config=config,
            input_shape=tuple(payload["input_shape"]),
            epoch=payload["epoch"],
            model=payload["model"],
            optimizer=payload["optimizer"],
            metrics=payload["metrics"],
            rng_state=payload["rng_state"],
            average=payload.get("average"),
        )
        checkpoint._check(path)
        return checkpoint

    def _check(self, path: Path) -> None:
        shape = INPUT_SHAPES[self.config.dataset]
        if self.input_shape != shape:
            raise CheckpointError(
                f"{path}: input shape {self.input_shape}, but its dataset "
                f"{self.config.dataset!r} has images of shape {shape}"
            )
        if not isinstance(self.epoch, int) or self.epoch < 0:
            raise CheckpointError(f"{path}: epoch={self.epoch!r} is not a count of epochs")
        expected = _parameter_shapes(self.config, self.input_shape)
        missing = sorted(set(expected) - set(self.model))
        extra = sorted(set(self.model) - set(expected))
        if missing or extra:
            raise CheckpointError(
                f"{path}: its model does not fit its config: missing tensors {missing}, "
                f"unexpected tensors {extra}"
            )
        for name, tensor in self.model.items():
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != expected[name]:
                found = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
                raise CheckpointError(
                    f"{path}: tensor {name!r} has shape {found}, its config needs {expected[name]}"
                )
            if not torch.isfinite(tensor).all():
                raise CheckpointError(f"{path}: tensor {name!r} has non-finite values (NaN or inf)")


def _read(path: Path) -> dict[str, Any]:
    """The checked top level of a checkpoint file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged or foreign file
        why = (
            "it holds Python objects other than tensors"
            if "weights_only" in str(err)
            else ("not a file written by torch.save, or a damaged one")
        )
        raise CheckpointError(f"{path}: not a readable checkpoint ({why})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an snn-deploy checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')}, this release reads {VERSION}"
        )
    missing = [key for key in KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: damaged checkpoint, missing {missing}")
    return payload


def _parameter_shapes(config: Config, input_shape: tuple[int, ...]) -> dict[str, tuple]:
    """The tensors of the config's network, by name, without drawing weights."""
    from toolchain.train.network import SpikingNetwork

    with torch.random.fork_rng(), torch.device("meta"):
        network = SpikingNetwork(config, input_shape)  # type: ignore[arg-type]
    return {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}
