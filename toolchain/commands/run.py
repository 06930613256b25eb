"""Commands that run a graph on samples: simulate, deploy, compare."""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from toolchain import api
from toolchain.atomic import write_text
from toolchain.commands.arguments import (
    Say,
    fits,
    inputs_of,
    stray_labels,
    user_samples,
)
from toolchain.data.datasets import Split, load_dataset
from toolchain.io import is_checkpoint
from toolchain.io.spikes import output_scale, save_spikes
from toolchain.ir import Graph, GraphError
from toolchain.paths import output_file, output_folder
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import ConfigError


def _runnable_graph(path: Path) -> Graph:
    """A float graph, or a lowered fixed-point one; else an error naming the file."""
    graph = api.load(path)
    if graph.is_fixed and not graph.is_lowered:
        raise GraphError(f"{path}: is not lowered; quantize lowers it (snn-deploy quantize)")
    return graph


def _fixed_graph(path: Path) -> Graph:
    """A lowered fixed-point graph, or an error naming the file."""
    graph = _runnable_graph(path)
    if not graph.is_fixed:
        raise GraphError(f"{path}: is a float graph; quantize it first (snn-deploy quantize)")
    return graph


def _split(args: argparse.Namespace) -> Split:
    test = load_dataset(args.dataset, args.data_dir).test
    if args.limit is None:
        return test
    return Split(test.images[: args.limit], test.labels[: args.limit])


def _ruled(graph: Graph, args: argparse.Namespace) -> Graph:
    """The graph predicting by --predict where it is given, else by its own rule."""
    return graph if args.predict is None else replace(graph, prediction=args.predict)


def _accuracy(result: dict[str, object], graph: Graph) -> str:
    """The accuracy as printed: with the rule that made the predictions."""
    if "accuracy" not in result:
        return ""
    return f"accuracy {100 * result['accuracy']:.2f} % (predicted by {graph.prediction}), "


def simulate(args: argparse.Namespace, say: Say) -> dict[str, object]:
    graph = _ruled(_runnable_graph(args.graph), args)
    out = None if args.save_spikes is None else output_file(args.save_spikes, *inputs_of(args))
    inputs, labels = _samples(args, graph)
    began = time.perf_counter()
    spikes, predictions, extra = _simulated(graph, inputs, args)
    seconds = time.perf_counter() - began
    kind = "fixed-point" if graph.is_fixed else "float"
    result: dict[str, object] = {
        "kind": kind,
        "samples": len(predictions),
        "seconds": seconds,
        "prediction": graph.prediction,
    }
    if labels is not None:
        result["accuracy"] = float((predictions == labels).mean())
    if out is not None:
        save_spikes(out, spikes, predictions, scale=output_scale(graph))
        result["saved"] = str(out)
    layers = _layer_spikes(graph, extra.pop("spikes"), len(predictions))
    result.update(extra)
    result["layers"] = layers
    accuracy = _accuracy(result, graph)
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
    if stray_labels(args):
        raise ConfigError(
            f"{args.labels}: --labels go with --inputs; --dataset {args.dataset} brings its own"
        )
    if args.dataset is not None:
        fits(graph, args.graph, args.dataset)
        split = _split(args)
        return split.images, split.labels
    inputs, labels = user_samples(graph, args.inputs, args.labels, graded=graph.is_fixed)
    return inputs[: args.limit], None if labels is None else labels[: args.limit]


def _device(name: str) -> str:
    """A torch device this machine has."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise GraphError("--device cuda: this machine has no CUDA device torch can use")
    return name


def _simulated(
    graph: Graph, inputs: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """(output spikes (N, *shape, T) on the float time axis, predictions, fixed-point counts)."""
    options = {"workers": args.workers, "progress": not args.quiet}
    if not graph.is_fixed:
        result = api.simulate(graph, inputs, **options)
        output = result.spikes[graph.populations[-1].name]
        spikes = {
            p.name: 0 if p.readout else int(result.spikes[p.name].sum(dtype=np.int64))
            for p in graph.populations
        }
        return output, result.predictions, {"spikes": spikes}
    backend = {"backend": args.backend, "device": _device(args.device)}
    result = api.simulate(graph, inputs, **options, **backend)
    counts = {
        "spikes": result.spike_counts,
        "current_wraps": result.current_wraps,
        "voltage_saturations": result.voltage_saturations,
    }
    return result.output_window_spikes, result.predictions, counts


def deploy(args: argparse.Namespace, say: Say) -> dict[str, object]:
    from toolchain.report.html import deployment_section

    graph = _ruled(_fixed_graph(args.graph), args)
    if args.target == "loihi":  # refuse what the chip cannot hold before looking for lava-loihi
        from targets.loihi2.chip_rules import require_fit
        from targets.loihi2.partition import partition
        from targets.loihi2.plan import plan

        require_fit(partition(plan(graph)))
    default = args.graph.with_name(f"{args.graph.stem}-{args.target}.npz")
    out = output_file(args.out or default, *inputs_of(args))
    images, labels = _samples(args, graph)
    deployment = api.deploy(
        graph,
        images,
        target=args.target,
        workers=args.workers,
        progress=not args.quiet,
        save=out,
        labels=labels,
    )
    lava = deployment.lava
    result: dict[str, object] = {
        "target": args.target,
        "samples": len(images),
        "prediction": graph.prediction,
    }
    if labels is not None:
        result["accuracy"] = deployment.accuracy(labels)
    accuracy = _accuracy(result, graph)
    result.update(
        matches_reference=deployment.matches,
        steps=lava.steps,
        seconds=lava.seconds,
        workers=args.workers,
        output=str(out),
    )
    page = output_file(out.with_suffix(".report.html"), *inputs_of(args))
    _write_report(page, graph, args.graph, images, [deployment_section(result)])
    say(
        f"{graph.name} on {args.target} ({len(images)} samples, {lava.steps} steps, "
        f"{lava.seconds:.1f} s): {accuracy}output spikes equal to the reference simulator's: "
        f"{'yes' if deployment.matches else 'NO'}; saved {out} and {page}"
    )
    return {**result, "report": str(page)}


def compare(args: argparse.Namespace, say: Say) -> dict[str, object]:
    from toolchain.report.html import comparison_section

    floating = _float_side(args)
    graph = _ruled(_fixed_graph(args.graph), args)
    if isinstance(floating, Graph):
        floating = _ruled(floating, args)
    images, labels = _samples(args, graph)
    if labels is None:
        raise GraphError(f"{args.inputs}: compare reports accuracies; give --labels Y.npy too")
    out = output_folder(args.out or args.graph.parent / f"{args.graph.stem}-compare")
    comparison = api.compare(
        floating,
        graph,
        images,
        labels=labels,
        budget_samples=args.budget_samples,
        plots=out,
        workers=args.workers,
        progress=not args.quiet,
    )
    report = comparison.to_json()
    write_text(out / "compare.json", json.dumps(report, indent=2))
    plots = comparison.plots
    page = _write_report(
        out / "report.html", graph, args.graph, images, [comparison_section(comparison, plots)]
    )
    say(f"{comparison.table()}\nwrote {out / 'compare.json'}, {', '.join(map(str, plots))}, {page}")
    return report


def _write_report(
    path: Path, graph: Graph, graph_file: Path, images: np.ndarray, sections: list[Any]
) -> Path:
    """report.html of compare and deploy, with the Loihi 2 plan of the first samples."""
    from toolchain.report.chip_plan import ACTIVITY_SAMPLES
    from toolchain.report.html import quantization_report, write_report_with_plan

    chip_plan = api.plan(graph, images[:ACTIVITY_SAMPLES])
    title = f"{graph.name}: {graph_file.name}"
    return write_report_with_plan(
        path,
        title,
        sections,
        chip_plan,
        quantization_report(graph_file.with_suffix(".report.json")),
    )


def _float_side(args: argparse.Namespace) -> Any:
    """The trained network of a checkpoint, or a float graph (an imported one, say)."""
    from toolchain.train.loop import model_from_checkpoint

    if not is_checkpoint(args.checkpoint):
        floating = api.load(args.checkpoint)
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
