"""Training checkpoints: model, optimiser, epoch, config, metrics and RNG state in one file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from toolchain.atomic import atomic_path
from toolchain.train.config import Config

FORMAT = "snn-deploy-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"  # the epoch chosen on held-out training data


class CheckpointError(ValueError):
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
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: Path | str) -> Checkpoint:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint not found")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many kinds for a damaged file
            raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not an snn-deploy checkpoint")
        if payload.get("version") != VERSION:
            raise CheckpointError(
                f"{path}: checkpoint version {payload.get('version')}, this release reads {VERSION}"
            )
        return cls(
            config=Config.from_dict(payload["config"]),
            input_shape=tuple(payload["input_shape"]),
            epoch=payload["epoch"],
            model=payload["model"],
            optimizer=payload["optimizer"],
            metrics=payload["metrics"],
            rng_state=payload["rng_state"],
        )
