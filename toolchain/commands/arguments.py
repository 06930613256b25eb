"""What every command shares: the files it reads, the checks made before any work, and the
samples it runs on."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from toolchain.data.datasets import INPUT_SHAPES
from toolchain.ir import Graph, GraphError
from toolchain.paths import input_file
from toolchain.resources import require_cores
from toolchain.train.config import ConfigError

Say = Callable[[str], None]

# The arguments that name files a command reads (`import --from` is a library's name, not a path).
INPUT_ARGUMENTS = ("source", "model", "file", "graph", "checkpoint", "config", "inputs", "labels")


def inputs_of(args: argparse.Namespace) -> list[Path]:
    """Every file the command reads: none of them may be written."""
    named = (getattr(args, name, None) for name in INPUT_ARGUMENTS)
    return [path for path in named if isinstance(path, Path)]


def check_arguments(args: argparse.Namespace) -> None:
    """Refuses, before any work, an input that exists but is not a regular file (a FIFO would
    block the reader forever, a device would be read without end), and more worker processes
    than cores without --force."""
    for path in inputs_of(args):
        input_file(path)
    if getattr(args, "workers", 1) > 1:
        require_cores(args.workers, "--workers", args.force)


def refuse_options(args: argparse.Namespace, what: str, options: dict[str, str]) -> None:
    """Refuses each given option of `options` (argument -> flag) that `what` does not take."""
    given = [flag for name, flag in options.items() if getattr(args, name, None) is not None]
    if given:
        source = getattr(args, "model", None) or getattr(args, "source", None)
        raise ConfigError(f"{source}: is {what}; it takes no {', '.join(given)}")


def same_dataset(checkpoint: Path, trained_on: str, asked: str | None) -> None:
    if asked is not None and asked != trained_on:
        raise ConfigError(
            f"{checkpoint}: was trained on {trained_on!r}, not on --dataset {asked!r}"
        )


def stray_labels(args: argparse.Namespace) -> bool:
    """--labels without --inputs: a dataset brings its own labels."""
    return args.labels is not None and args.inputs is None


def lowered(graph: Graph) -> Graph:
    from toolchain.ir.lowering import lower

    return graph if graph.is_lowered else lower(graph)


def fits(graph: Graph, path: Path, dataset: str) -> Graph:
    """`graph` if its input takes the dataset's images, else an error naming the file."""
    if graph.input.image_shape != INPUT_SHAPES[dataset]:
        raise GraphError(
            f"{path}: takes images of shape {graph.input.image_shape}; dataset {dataset!r} has "
            f"{INPUT_SHAPES[dataset]}"
        )
    return graph


def user_samples(
    graph: Graph, inputs_path: Path, labels_path: Path | None, *, graded: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """A user's inputs for `graph` (`graded`: as a fixed-point graph takes them), and their
    labels if a file is given (else None)."""
    from toolchain.data.inputs import InputsError, load_inputs, load_labels

    inputs = load_inputs(inputs_path, graph.input.image_shape, graph.T)
    if graded:
        problem = graph.input.graded_problem(inputs)
        if problem:
            raise InputsError(f"{inputs_path}: {problem}")
    if labels_path is None:
        return inputs, None
    return inputs, load_labels(labels_path, len(inputs), graph.shapes()[-1][0])
