"""Commands that train: train, and the demo that trains (or loads) and deploys end to end."""

from __future__ import annotations

import argparse

from toolchain import api
from toolchain.commands.arguments import Say
from toolchain.paths import output_folder
from toolchain.resources import require_cores
from toolchain.train.config import ConfigError


def train(args: argparse.Namespace, say: Say) -> dict[str, object]:
    require_cores(args.nproc, "--nproc", args.force)
    result = api.train(
        args.config,
        args.out,
        epochs=args.epochs,
        nproc=args.nproc,
        data_dir=args.data_dir,
        device=args.device,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    say(f"trained {result.epochs} epochs: test accuracy {100 * result.test_accuracy:.2f} %")
    return result.to_json()


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
