"""The `snn-deploy` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from toolchain.checkpoint import CheckpointError
from toolchain.config import ConfigError, load_config
from toolchain.datasets import DatasetError
from toolchain.train import train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
USER_ERRORS = (ConfigError, DatasetError, CheckpointError)


def _train(args: argparse.Namespace) -> dict[str, object]:
    config = load_config(args.config)
    if args.epochs is not None:
        config = config.with_epochs(args.epochs)
    result = train(
        config, args.out, data_dir=args.data_dir, resume=args.resume, progress=not args.quiet
    )
    return result.to_json()


def _demo(args: argparse.Namespace) -> dict[str, object]:
    config_path = EXAMPLES / "digits_mlp.toml"
    if not config_path.is_file():
        raise ConfigError(f"{config_path}: the demo config ships with the source checkout")
    result = train(load_config(config_path), args.out, progress=not args.quiet)
    print(
        f"digits MLP trained with TSSL-BP: test accuracy {100 * result.test_accuracy:.2f} % "
        f"after {result.epochs} epochs; checkpoint {result.checkpoint}",
        file=sys.stderr,
    )
    return result.to_json()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snn-deploy", description="Train spiking networks with TSSL-BP and deploy them."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a network from a TOML config")
    p.add_argument("--config", required=True, type=Path, help="TOML config (see examples/)")
    p.add_argument("--out", required=True, type=Path, help="run folder for checkpoint.pt")
    p.add_argument("--data-dir", type=Path, help="folder of the MNIST idx files (gzip or raw)")
    p.add_argument("--epochs", type=int, help="total epochs, overriding the config")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.set_defaults(run=_train)

    p = commands.add_parser("demo", help="the main job on the embedded digits set")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    p.set_defaults(run=_demo)

    for sub in commands.choices.values():
        sub.add_argument("--json", action="store_true", help="print one JSON result on stdout")
        sub.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.run(args)
    except USER_ERRORS as err:
        print(f"snn-deploy {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"snn-deploy {args.command}: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
