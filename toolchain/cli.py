"""The `snn-deploy` command line: argument parsing and dispatch (`toolchain.commands`).

Only the standard library is imported at start-up: the commands and everything they need are
imported inside `main`, so that Ctrl-C while they load ends in one line, not a traceback, and
`--help` loads no Lava.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    """Usage errors in one line on stderr and exit status 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def count(low: int) -> Any:
    """An argparse type: an integer >= low."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}; need an integer >= {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number > 0")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    value = positive(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} is above 1; need a number in (0, 1]")
    return value


def build_parser() -> argparse.ArgumentParser:
    from toolchain import commands
    from toolchain.data.datasets import DATASET_NAMES
    from toolchain.io import FORMATS
    from toolchain.io.nir_read import CONVENTIONS
    from toolchain.ir.provenance import DEFAULT_LEVELS, NETX_DEFAULT_STEPS, NIR_DEFAULT_STEPS
    from toolchain.neuron import PREDICTIONS

    parser = Parser(
        prog="snn-deploy", description="Train spiking networks with TSSL-BP and deploy them."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a network from a TOML config")
    p.add_argument("--config", required=True, type=Path, help="TOML config (see examples/)")
    p.add_argument("--out", required=True, type=Path, help="run folder for checkpoint.pt")
    p.add_argument("--epochs", type=count(1), help="total epochs, overriding the config")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    again.add_argument("--overwrite", action="store_true", help="replace OUT/checkpoint.pt")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train")
    p.add_argument(
        "--nproc", type=count(1), default=1, help="training processes (torch.distributed)"
    )
    p.set_defaults(run=commands.train)

    p = sub.add_parser("demo", help="the whole pipeline: digits (trained here) or the MNIST CNN")
    p.add_argument("--dataset", choices=DATASET_NAMES, default="digits")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    p.add_argument(
        "--lava-samples", type=count(1), help="test images run on Lava (digits 450, mnist 200)"
    )
    p.set_defaults(run=commands.demo)

    p = sub.add_parser("export", help="write a Graph as an ONNX, netx or NIR file")
    p.add_argument("source", type=Path, help="a training checkpoint or a graph file")
    p.add_argument(
        "--format",
        choices=[fmt.key for fmt in FORMATS if fmt.write is not None],
        default="onnx",
        help="onnx (float or fixed graph), netx (lava-dl hdf5, lowered fixed graph) or nir "
        "(the float parameters)",
    )
    p.add_argument("--out", required=True, type=Path, help="the file to write")
    p.add_argument("--lower", action="store_true", help="fold pooling and flatten first")
    p.set_defaults(run=commands.export)

    p = sub.add_parser(
        "import", help="a NIR file (-> float graph) or a lava-dl netx file (-> fixed) as .onnx"
    )
    p.add_argument("model", type=Path, help="the .nir file, or a netx .net/.h5 file")
    p.add_argument("--out", required=True, type=Path, help="the graph file (.onnx) to write")
    p.add_argument(
        "--from",
        dest="source",
        choices=sorted(CONVENTIONS),
        help="the exporting library, whose step and discretisation the file assumes (default "
        "nir; a netx file takes none)",
    )
    p.add_argument("--dt", type=positive, help="time step in seconds (default: the exporter's)")
    p.add_argument("--reset", choices=["zero", "subtract"], help="how the neurons reset")
    p.add_argument(
        "--max-spikes",
        type=count(1),
        help="spikes a neuron emits per step at most (default: the exporter's; Sinabs and "
        "Rockpool emit spike counts, 1 for Sinabs' SingleSpike)",
    )
    p.add_argument(
        "--steps",
        type=count(1),
        help=f"time steps per sample (T; default: the file's, else {NIR_DEFAULT_STEPS} for NIR, "
        f"{NETX_DEFAULT_STEPS} for netx)",
    )
    p.add_argument(
        "--levels", type=count(1), help=f"input levels for the chip (default {DEFAULT_LEVELS})"
    )
    p.set_defaults(run=commands.import_nir)

    p = sub.add_parser("inspect", help="print the nodes of a graph file")
    p.add_argument("file", type=Path)
    p.set_defaults(run=commands.inspect)

    p = sub.add_parser("quantize", help="checkpoint or float graph -> fixed-point graph (.onnx)")
    p.add_argument("source", type=Path, help="a training checkpoint or a float graph file")
    p.add_argument(
        "--dataset", choices=DATASET_NAMES, help="calibration and test data of a float graph"
    )
    p.add_argument(
        "--out", required=True, type=Path, help="graph file (.onnx); a .report.json goes beside it"
    )
    p.add_argument("--inputs", type=Path, help="a float graph's calibration inputs, .npy")
    p.add_argument("--labels", type=Path, help="labels of --inputs, .npy (N,)")
    p.add_argument(
        "--calibration", type=count(1), default=1000, help="calibration images (train set)"
    )
    p.add_argument(
        "--finetune", type=count(0), default=0, metavar="EPOCHS", help="epochs of fine-tuning"
    )
    p.add_argument(
        "--netx", action="store_true", help="dense weight exponents netx can store (export)"
    )
    p.add_argument(
        "--levels",
        type=count(1),
        help="levels of the input's graded spikes, round(x * levels) (default: the data's, or "
        "fewer for a convolution's input)",
    )
    p.add_argument(
        "--headroom",
        type=fraction,
        help="share of the 24-bit state range the calibration set's largest state may use "
        "(default 0.5; smaller: fewer wraps, larger: finer states)",
    )
    p.add_argument(
        "--backend",
        choices=["numpy", "torch"],
        default="numpy",
        help="the simulator that runs fine-tuning's integer forward pass: numpy (default) or "
        "the same integers in PyTorch",
    )
    p.add_argument(
        "--auto",
        action="store_true",
        help="try the options the error budget points to on the calibration set and keep the "
        "best by float-vs-fixed agreement (reports what it tried)",
    )
    p.set_defaults(run=commands.quantize)

    p = sub.add_parser("simulate", help="run a graph: fixed-point bit-accurately, float in PyTorch")
    p.add_argument("graph", type=Path, help="graph file: ONNX, or a training checkpoint (float)")
    p.add_argument("--inputs", type=Path, help="your inputs, .npy: (N, *input) or (N, T, *input)")
    p.add_argument("--labels", type=Path, help="labels of --inputs, .npy (N,)")
    p.add_argument("--save-spikes", type=Path, help="output spikes and predictions, .npz")
    p.add_argument(
        "--backend",
        choices=["numpy", "torch"],
        default="numpy",
        help="the fixed-point simulator: numpy (default) or the same integers in PyTorch, "
        "each sample's windows (on --device)",
    )
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="where --backend torch runs"
    )
    p.set_defaults(run=commands.simulate)

    p = sub.add_parser("deploy", help="run a fixed-point graph on Lava (CPU sim or chip)")
    p.add_argument("graph", type=Path, help="fixed-point graph file")
    p.add_argument("--target", choices=["lava-sim", "loihi"], default="lava-sim")
    p.add_argument("--out", type=Path, help="output spikes .npz (default: beside the graph)")
    p.set_defaults(run=commands.deploy)

    p = sub.add_parser("compare", help="float network vs fixed-point graph, per layer")
    p.add_argument("checkpoint", type=Path, help="a training checkpoint or a float graph file")
    p.add_argument("graph", type=Path)
    p.add_argument("--out", type=Path, help="report folder (default: beside the graph)")
    p.add_argument(
        "--budget-samples",
        type=count(0),
        default=1000,
        metavar="N",
        help="samples the error budget runs on, the first N (default 1000; 0: no budget); "
        "every changed prediction is blamed whatever N",
    )
    p.set_defaults(run=commands.compare)

    p = sub.add_parser("plan", help="will a fixed-point graph fit Loihi 2: cores, chips, cost")
    p.add_argument("graph", type=Path, help="graph file (ONNX, netx) or a checkpoint (quantised)")
    p.add_argument("--inputs", type=Path, help="samples to count activity and cost on, .npy")
    p.add_argument("--out", type=Path, help="folder for plan.json and plan.png")
    p.set_defaults(run=commands.plan, labels=None)

    for name in ("simulate", "compare", "deploy", "plan"):
        sub.choices[name].add_argument("--dataset", choices=DATASET_NAMES)
        sub.choices[name].add_argument(
            "--limit", type=count(1), help="only the first N test samples"
        )
    for name in ("simulate", "compare", "deploy"):
        sub.choices[name].add_argument(
            "--predict",
            choices=list(PREDICTIONS),
            help="how the outputs name a class: psp (TSSL-BP's, for networks trained here), "
            "count (spike count: snnTorch, SLAYER, Sinabs), max (a read-out membrane's peak: "
            "Norse); default: the graph's own, its library's for an imported one",
        )
    for name in ("compare", "deploy"):
        sub.choices[name].add_argument("--inputs", type=Path, help="your inputs, .npy")
        sub.choices[name].add_argument("--labels", type=Path, help="labels of --inputs, .npy")
    for name in ("quantize", "simulate", "compare", "deploy", "demo", "plan"):
        sub.choices[name].add_argument(
            "--workers",
            type=count(1),
            default=1,
            help="processes that share the samples: independent Lava runtimes, calibration and "
            "simulation shards (default 1)",
        )
    for name in ("train", "quantize", "simulate", "compare", "deploy", "demo", "plan"):
        sub.choices[name].add_argument(
            "--data-dir", type=Path, help="folder of the MNIST idx files (gzip or raw)"
        )
        sub.choices[name].add_argument(
            "--force", action="store_true", help="start more processes than this machine has cores"
        )
    for p in sub.choices.values():
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        p.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def strict(value: Any) -> Any:
    """`value` with every non-finite float replaced by None, so that the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict(item) for item in value]
    return value


def main(argv: list[str] | None = None) -> int:
    """The command's exit status: 0, 2 for bad input (one line on stderr), 130 on Ctrl-C."""
    command = "snn-deploy"
    with _quit_on_interrupt():  # while the modules load: C code may turn it into an ImportError
        from toolchain.lifetime import bind_children, remove_orphans

        bind_children()
        remove_orphans()  # of runs killed before they could clean up
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as done:  # --help, or a usage error already reported in one line
            return int(done.code or 0)
    command = f"snn-deploy {args.command}"
    try:
        return _run(args, command)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _quit_on_interrupt() -> Iterator[None]:
    """Ctrl-C ends the process at once with one line (nothing is written yet), unless this
    process ignores it (a background job) or is not the main thread."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN or threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.signal(signal.SIGINT, _quit)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _quit(*_: object) -> None:
    os.write(2, b"snn-deploy: interrupted\n")
    os._exit(130)


def _run(args: argparse.Namespace, command: str) -> int:
    from toolchain.commands import check_arguments
    from toolchain.errors import UserError

    def say(text: str) -> None:  # stdout carries only the JSON object when --json is given
        print(text, file=sys.stderr if args.json else sys.stdout)

    try:
        check_arguments(args)
        result = args.run(args, say)
    except UserError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(strict(result), allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
