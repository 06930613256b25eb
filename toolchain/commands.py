"""What each `snn-deploy` command does, once its arguments are parsed (`toolchain.cli`).

Every command checks its inputs and the places it will write before doing any work, and
returns the object that `--json` prints; human-readable lines go through `say`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolchain.atomic import write_text
from toolchain.data.datasets import INPUT_SHAPES, Split, load_dataset
from toolchain.io import read_graph, save_onnx
from toolchain.io.spikes import save_spikes
from toolchain.ir import Graph, GraphError
from toolchain.ir.describe import describe
from toolchain.paths import PathError, input_file, output_file, output_folder
from toolchain.resources import require_cores, require_memory
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import ConfigError, load_config

if TYPE_CHECKING:
    from toolchain.train.config import Config
    from toolchain.train.distributed import Group

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


# The names each written format takes: readers choose by content, but every other tool by name.
SUFFIXES = {"onnx": (".onnx",), "netx": (".net", ".h5"), "nir": (".nir",)}
ARTICLES = {"onnx": "an ONNX", "netx": "a netx", "nir": "a NIR"}


def _named_for(path: Path, format_name: str) -> Path:
    """`path` if its suffix is one of the format's, else an error saying which to use."""
    suffixes = SUFFIXES[format_name]
    if path.suffix.lower() not in suffixes:
        raise PathError(
            f"{path}: {ARTICLES[format_name]} file is named *{' or *'.join(suffixes)}; a "
            f"{path.suffix or 'suffix-less'} name would mislead every other reader"
        )
    return path


def export(args: argparse.Namespace, say: Say) -> dict[str, object]:
    out = _named_for(output_file(args.out, *inputs_of(args)), args.format)
    graph = read_graph(args.source)
    graph = _lowered(graph) if args.lower else graph
    if args.format == "netx":
        from toolchain.io.netx_write import save_netx

        save_netx(graph, out)
    elif args.format == "nir":
        from toolchain.io.nir_write import save_nir

        save_nir(graph, out)
    else:
        save_onnx(graph, out)
    say(f"wrote {out}\n{describe(graph)}")
    return {"path": str(out), "fixed_point": graph.is_fixed, "lowered": graph.is_lowered}


def import_nir(args: argparse.Namespace, say: Say) -> dict[str, object]:
    from toolchain.io.nir_read import read_nir

    out = _named_for(output_file(args.out, *inputs_of(args)), "onnx")
    if not args.model.exists():
        raise PathError(f"{args.model}: not found; expected a .nir file or a lava-dl .net/.h5 file")
    if args.model.suffix in (".net", ".h5"):  # lava-dl netx: already fixed point
        from toolchain.io.netx_read import read_netx_graph

        _refuse_options(args, "a lava-dl netx file, already fixed point", NIR_ONLY)
        graph = read_netx_graph(args.model, steps=args.steps)
    else:
        graph = read_nir(
            args.model,
            convention=args.source or "nir",
            dt=args.dt,
            reset=args.reset,
            max_spikes=args.max_spikes,
            steps=args.steps,
            levels=args.levels,
        )
    save_onnx(graph, out)
    say(f"wrote {out}\n{describe(graph)}")
    return {"path": str(out), "T": graph.T, "populations": len(graph.populations)}


# import's options that only a NIR file's reading takes (a netx file states them itself)
NIR_ONLY = {"source": "--from", "dt": "--dt", "reset": "--reset", "max_spikes": "--max-spikes"}
NIR_ONLY["levels"] = "--levels"


def _refuse_options(args: argparse.Namespace, what: str, options: dict[str, str]) -> None:
    """Refuses each given option of `options` (argument -> flag) that `what` does not take."""
    given = [flag for name, flag in options.items() if getattr(args, name, None) is not None]
    if given:
        source = getattr(args, "model", None) or getattr(args, "source", None)
        raise ConfigError(f"{source}: is {what}; it takes no {', '.join(given)}")


def inspect(args: argparse.Namespace, say: Say) -> dict[str, object]:
    graph = read_graph(args.file)
    say(describe(graph))
    return {
        "name": graph.name,
        "T": graph.T,
        "fixed_point": graph.is_fixed,
        "lowered": graph.is_lowered,
        "nodes": [
            {"name": n.name, "type": type(n).__name__, "shape": list(shape)}
            for n, shape in zip(graph.nodes, graph.shapes(), strict=True)
        ],
        "edges": [list(edge) for edge in graph.edges],
    }


def quantize(args: argparse.Namespace, say: Say) -> dict[str, object]:
    from quantize.pipeline import calibration_images, post_training, quantize_checkpoint

    source = args.source
    out = _named_for(output_file(args.out, *inputs_of(args)), "onnx")
    report_path = output_file(out.with_suffix(".report.json"), *inputs_of(args))
    if _is_checkpoint(source):
        checkpoint = Checkpoint.load(source)
        trained_on = checkpoint.config.dataset
        _refuse_options(
            args,
            f"a checkpoint, calibrated on its own dataset's training images ({trained_on})",
            {"inputs": "--inputs", "labels": "--labels"},
        )
        _same_dataset(source, trained_on, args.dataset)
        dataset = load_dataset(trained_on, args.data_dir)
        result = quantize_checkpoint(
            checkpoint,
            dataset,
            calibration=args.calibration,
            finetune_epochs=args.finetune,
            progress=not args.quiet,
            netx=args.netx,
            workers=args.workers,
        )
    else:
        graph = _lowered(read_graph(source))
        if (args.dataset is None) == (args.inputs is None) or args.finetune or _stray_labels(args):
            raise ConfigError(
                f"{source}: a float graph is quantised on --dataset NAME (calibration from its "
                "training images, accuracy on its test images) or on --inputs X.npy (the first "
                "--calibration of them; --labels Y.npy for accuracies); --finetune needs a "
                "checkpoint"
            )
        if args.inputs is None:
            _fits(graph, source, args.dataset)
            dataset = load_dataset(args.dataset, args.data_dir)
            images = calibration_images(dataset.train, args.calibration, seed=0)
            test_images, labels = dataset.test.images, dataset.test.labels
        else:
            test_images, labels = _user_samples(graph, args.inputs, args.labels, graded=True)
            images = test_images[: args.calibration]
        result = post_training(
            graph, images, test_images, labels, netx=args.netx, workers=args.workers
        )
    save_onnx(result.graph, out)
    report = {"graph": str(out), **result.to_json()}
    write_text(report_path, json.dumps(report, indent=2))
    say(f"{result.table()}\nwrote {out} and {report_path}")
    return report


def _same_dataset(checkpoint: Path, trained_on: str, asked: str | None) -> None:
    if asked is not None and asked != trained_on:
        raise ConfigError(
            f"{checkpoint}: was trained on {trained_on!r}, not on --dataset {asked!r}"
        )


def _stray_labels(args: argparse.Namespace) -> bool:
    """--labels without --inputs: a dataset brings its own labels."""
    return args.labels is not None and args.inputs is None


def _is_checkpoint(path: Path) -> bool:
    """By content where the file exists, else by its suffix (so that the error names it)."""
    from toolchain.io import FORMATS

    if not path.is_file():
        return path.suffix == ".pt"
    with path.open("rb") as handle:
        return FORMATS[0].recognise(handle.read(16)) or path.suffix == ".pt"


def _lowered(graph: Graph) -> Graph:
    from toolchain.ir.lowering import lower

    return graph if graph.is_lowered else lower(graph)


def _runnable_graph(path: Path) -> Graph:
    """A float graph, or a lowered fixed-point one; else an error naming the file."""
    graph = read_graph(path)
    if graph.is_fixed and not graph.is_lowered:
        raise GraphError(f"{path}: is not lowered; quantize lowers it (snn-deploy quantize)")
    return graph


def _fixed_graph(path: Path) -> Graph:
    """A lowered fixed-point graph, or an error naming the file."""
    graph = _runnable_graph(path)
    if not graph.is_fixed:
        raise GraphError(f"{path}: is a float graph; quantize it first (snn-deploy quantize)")
    return graph


def _fits(graph: Graph, path: Path, dataset: str) -> Graph:
    """`graph` if its input takes the dataset's images, else an error naming the file."""
    if graph.input.image_shape != INPUT_SHAPES[dataset]:
        raise GraphError(
            f"{path}: takes images of shape {graph.input.image_shape}; dataset {dataset!r} has "
            f"{INPUT_SHAPES[dataset]}"
        )
    return graph


def _split(args: argparse.Namespace) -> Split:
    test = load_dataset(args.dataset, args.data_dir).test
    if args.limit is None:
        return test
    return Split(test.images[: args.limit], test.labels[: args.limit])


def simulate(args: argparse.Namespace, say: Say) -> dict[str, object]:
    graph = _runnable_graph(args.graph)
    out = None if args.save_spikes is None else output_file(args.save_spikes, *inputs_of(args))
    inputs, labels = _samples(args, graph)
    began = time.perf_counter()
    spikes, predictions, extra = _simulated(graph, inputs, args)
    seconds = time.perf_counter() - began
    kind = "fixed-point" if graph.is_fixed else "float"
    result: dict[str, object] = {"kind": kind, "samples": len(predictions), "seconds": seconds}
    if labels is not None:
        result["accuracy"] = float((predictions == labels).mean())
    if out is not None:
        save_spikes(out, spikes, predictions)
        result["saved"] = str(out)
    layers = _layer_spikes(graph, extra.pop("spikes"), len(predictions))
    result.update(extra)
    result["layers"] = layers
    accuracy = f"accuracy {100 * result['accuracy']:.2f} %, " if "accuracy" in result else ""
    say(
        f"{graph.name}, {kind} ({len(predictions)} samples): {accuracy}"
        f"{len(predictions) / seconds:.0f} samples/s"
        + "".join(f"; {key.replace('_', ' ')} {sum(n.values())}" for key, n in extra.items())
        + (f"; saved {out}" if out else "")
    )
    say(_layer_table(layers))
    return result


def _layer_spikes(graph: Graph, spikes: dict[str, int], samples: int) -> list[dict[str, object]]:
    """Per population: neurons, spikes per sample and the rate (per neuron and step) in its
    sample's T steps."""
    shapes = dict(zip((n.name for n in graph.nodes), graph.shapes(), strict=True))
    layers = []
    for population in graph.populations:
        neurons, count = math.prod(shapes[population.name]), spikes[population.name]
        layers.append(
            {
                "name": population.name,
                "neurons": neurons,
                "spikes_per_sample": count / samples,
                "rate": count / (samples * neurons * graph.T),
            }
        )
    return layers


def _layer_table(layers: list[dict[str, object]]) -> str:
    lines = [f"{'population':<16} {'neurons':>8} {'spikes/sample':>14} {'rate':>8}"]
    for layer in layers:
        lines.append(
            f"{layer['name']:<16} {layer['neurons']:>8} {layer['spikes_per_sample']:>14.1f} "
            f"{layer['rate']:>8.4f}"
        )
    return "\n".join(lines)


def _samples(args: argparse.Namespace, graph: Graph) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs, labels): the test split of --dataset, or --inputs with --labels (or None),
    which a fixed-point graph must be able to take."""
    if (args.dataset is None) == (args.inputs is None):
        raise GraphError(f"{args.graph}: give either --dataset NAME or --inputs X.npy")
    if _stray_labels(args):
        raise ConfigError(
            f"{args.labels}: --labels go with --inputs; --dataset {args.dataset} brings its own"
        )
    if args.dataset is not None:
        _fits(graph, args.graph, args.dataset)
        split = _split(args)
        return split.images, split.labels
    inputs, labels = _user_samples(graph, args.inputs, args.labels, graded=graph.is_fixed)
    return inputs[: args.limit], None if labels is None else labels[: args.limit]


def _user_samples(
    graph: Graph, inputs_path: Path, labels_path: Path | None, *, graded: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """A user's inputs for `graph` (`graded`: as a fixed-point graph takes them), and their
    labels if a file is given (else None)."""
    from toolchain.data.inputs import load_inputs, load_labels, require_graded

    inputs = load_inputs(inputs_path, graph.input.image_shape, graph.T)
    if graded:
        require_graded(inputs, inputs_path)
    if labels_path is None:
        return inputs, None
    return inputs, load_labels(labels_path, len(inputs), graph.shapes()[-1][0])


def _simulated(
    graph: Graph, inputs: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """(output spikes (N, *shape, T) on the float time axis, predictions, fixed-point counts)."""
    if not graph.is_fixed:
        from toolchain.ir.float_runner import run_float

        result = run_float(graph, inputs, workers=args.workers)
        output = result.spikes[graph.populations[-1].name]
        spikes = {
            p.name: 0 if p.readout else int(result.spikes[p.name].sum(dtype=np.int64))
            for p in graph.populations
        }
        return output, result.predictions, {"spikes": spikes}
    from targets.loihi2.simulator import simulate

    result = simulate(graph, inputs, progress=not args.quiet, workers=args.workers)
    counts = {
        "spikes": result.spike_counts,
        "current_wraps": result.current_wraps,
        "voltage_saturations": result.voltage_saturations,
    }
    return result.output_window_spikes, result.predictions, counts


def deploy(args: argparse.Namespace, say: Say) -> dict[str, object]:
    import targets.loihi2.lava  # noqa: F401  (before anything imports lava)
    from targets.loihi2.lava.runner import run_on_lava
    from targets.loihi2.lava.workers import run_on_lava_workers
    from targets.loihi2.simulator import memory_needed, simulate

    graph = _fixed_graph(args.graph)
    default = args.graph.with_name(f"{args.graph.stem}-{args.target}.npz")
    out = output_file(args.out or default, *inputs_of(args))
    images, labels = _samples(args, graph)
    needed = memory_needed(graph, len(images), images.ndim == 5)  # Lava's output, the reference
    require_memory(needed, f"deploying {len(images)} samples of {graph.T} steps")
    if args.workers == 1:
        lava = run_on_lava(graph, images, target=args.target, progress=not args.quiet)
    else:
        lava = run_on_lava_workers(
            graph, images, workers=args.workers, target=args.target, progress=not args.quiet
        )
    reference = simulate(graph, images)
    matches = bool(np.array_equal(lava.output_spikes, reference.output_window_spikes))
    save_spikes(out, lava.output_spikes, lava.predictions, labels)
    result: dict[str, object] = {"target": args.target, "samples": len(images)}
    accuracy = ""
    if labels is not None:
        result["accuracy"] = float((lava.predictions == labels).mean())
        accuracy = f"accuracy {100 * result['accuracy']:.2f} %; "
    say(
        f"{graph.name} on {args.target} ({len(images)} samples, {lava.steps} steps, "
        f"{lava.seconds:.1f} s): {accuracy}output spikes equal to the reference simulator's: "
        f"{'yes' if matches else 'NO'}; saved {out}"
    )
    return {
        **result,
        "matches_reference": matches,
        "steps": lava.steps,
        "seconds": lava.seconds,
        "workers": args.workers,
        "output": str(out),
    }


def compare(args: argparse.Namespace, say: Say) -> dict[str, object]:
    from toolchain.report.compare import compare
    from toolchain.report.plots import plot_comparison

    floating = _float_side(args)
    graph = _fixed_graph(args.graph)
    images, labels = _samples(args, graph)
    if labels is None:
        raise GraphError(f"{args.inputs}: compare reports accuracies; give --labels Y.npy too")
    out = output_folder(args.out or args.graph.parent / f"{args.graph.stem}-compare")
    comparison, raster = compare(
        floating, graph, Split(images, labels), progress=not args.quiet, workers=args.workers
    )
    report = comparison.to_json()
    write_text(out / "compare.json", json.dumps(report, indent=2))
    plots = plot_comparison(comparison, raster, out)
    say(f"{comparison.table()}\nwrote {out / 'compare.json'}, {', '.join(map(str, plots))}")
    return report


def _float_side(args: argparse.Namespace) -> Any:
    """The trained network of a checkpoint, or a float graph (an imported one, say)."""
    from toolchain.train.loop import model_from_checkpoint

    if not _is_checkpoint(args.checkpoint):
        floating = read_graph(args.checkpoint)
        if floating.is_fixed:
            raise GraphError(f"{args.checkpoint}: is a fixed-point graph; compare needs the float")
        return floating
    checkpoint = Checkpoint.load(args.checkpoint)
    if args.dataset is not None and checkpoint.config.dataset != args.dataset:
        raise ConfigError(
            f"{args.checkpoint}: was trained on {checkpoint.config.dataset!r}, not on "
            f"--dataset {args.dataset!r}"
        )
    return model_from_checkpoint(checkpoint)
