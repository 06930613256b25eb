"""Commands that train: train, and the demo that trains (or loads) and deploys end to end."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolchain.commands.arguments import Say
from toolchain.paths import output_folder
from toolchain.resources import require_cores
from toolchain.train.config import ConfigError, load_config

if TYPE_CHECKING:
    from toolchain.train.config import Config
    from toolchain.train.distributed import Group


def train(args: argparse.Namespace, say: Say) -> dict[str, object]:
    from toolchain.train.distributed import join_from_environment, run_local
    from toolchain.train.loop import (
        TrainResult,
        check_distributable,
        check_memory,
        exclusive_run_dir,
        prepare_run_dir,
        train,
    )

    config = load_config(args.config)
    if args.epochs is not None:
        config = config.with_epochs(args.epochs)
    require_cores(args.nproc, "--nproc", args.force)
    _check_device(args.device)
    group = join_from_environment(args.device) if args.nproc == 1 else None
    check_distributable(config, args.nproc)  # before any process starts
    check_memory(config, args.nproc)
    prepare_run_dir(args.out, resume=args.resume, overwrite=args.overwrite)
    options = {
        "data_dir": args.data_dir,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "progress": not args.quiet,
        "device": args.device,
    }
    with exclusive_run_dir(args.out) if group is None or group.is_main else nullcontext():
        if group is None:
            run_local(args.nproc, args.device, train_in_group, config, args.out, options)
            result = TrainResult.of_run(args.out)
        else:
            result = train(config, args.out, group=group, **options)
    say(f"trained {result.epochs} epochs: test accuracy {100 * result.test_accuracy:.2f} %")
    return result.to_json()


def _check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device cuda: this torch ({torch.__version__}) sees no CUDA device; use --device "
            "cpu, or install torch with CUDA on a machine with a GPU"
        )


def train_in_group(group: Group, config: Config, out: Path, options: dict[str, Any]) -> None:
    """One process of `train --nproc N` (module level, so that it can be spawned)."""
    from toolchain.train.loop import train

    train(config, out, group=group, **options)


def demo(args: argparse.Namespace, say: Say) -> dict[str, object]:
    from toolchain.demo import EXAMPLES, PRETRAINED_MNIST, run_demo

    needed = EXAMPLES / "digits_mlp.toml" if args.dataset == "digits" else PRETRAINED_MNIST
    if not needed.exists():
        raise ConfigError(f"{needed}: the demo's network ships with the source checkout")
    result = run_demo(
        output_folder(args.out),
        dataset=args.dataset,
        data_dir=args.data_dir,
        lava_samples=args.lava_samples,
        workers=args.workers,
        progress=not args.quiet,
        say=say,
    )
    say(f"{result.table()}\nartifacts and plots in {result.run_dir}")
    return result.to_json()
