"""A training run as a user starts it: in this process, in `nproc` new processes on this
machine, or as one process of a group that torchrun started (its rank from the environment).
Everything that can be refused is refused before any process starts; one run at a time writes
a folder."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

from toolchain.train.config import Config, ConfigError
from toolchain.train.distributed import Group, join_from_environment, run_local
from toolchain.train.loop import (
    TrainResult,
    check_distributable,
    check_memory,
    exclusive_run_dir,
    prepare_run_dir,
    train,
)


def launch(
    config: Config,
    out: Path,
    *,
    nproc: int = 1,
    device: str = "cpu",
    data_dir: Path | str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Trains `config` into `out` over `nproc` processes (one: this process, or its torchrun
    group when one started it)."""
    check_device(device)
    group = join_from_environment(device) if nproc == 1 else None
    check_distributable(config, nproc)
    check_memory(config, nproc)
    prepare_run_dir(out, resume=resume, overwrite=overwrite)
    options = {
        "data_dir": data_dir,
        "resume": resume,
        "overwrite": overwrite,
        "progress": progress,
        "device": device,
    }
    with exclusive_run_dir(out) if group is None or group.is_main else nullcontext():
        if group is not None:
            return train(config, out, group=group, **options)
        run_local(nproc, device, train_in_group, config, out, options)
        return TrainResult.of_run(out)


def check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device cuda: this torch ({torch.__version__}) sees no CUDA device; use --device "
            "cpu, or install torch with CUDA on a machine with a GPU"
        )


def train_in_group(group: Group, config: Config, out: Path, options: dict[str, Any]) -> None:
    """One process of a local group (module level, so that it can be spawned)."""
    train(config, out, group=group, **options)
