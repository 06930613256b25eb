"""Commands that turn one file into another: export, import, inspect, quantize."""

from __future__ import annotations

import argparse
import json
from typing import Any

from toolchain import api
from toolchain.atomic import write_text
from toolchain.commands.arguments import (
    Say,
    fits,
    inputs_of,
    lowered,
    refuse_options,
    same_dataset,
    stray_labels,
    user_samples,
)
from toolchain.data.datasets import load_dataset
from toolchain.io import by_key, format_of, is_checkpoint, named_for
from toolchain.ir.describe import describe
from toolchain.paths import PathError, output_file
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import ConfigError


def export(args: argparse.Namespace, say: Say) -> dict[str, object]:
    out = named_for(output_file(args.out, *inputs_of(args)), by_key(args.format))
    graph = api.load(args.source)
    graph = lowered(graph) if args.lower else graph
    api.save(graph, out, args.format)
    say(f"wrote {out}\n{describe(graph)}")
    return {"path": str(out), "fixed_point": graph.is_fixed, "lowered": graph.is_lowered}


def import_nir(args: argparse.Namespace, say: Say) -> dict[str, object]:
    out = named_for(output_file(args.out, *inputs_of(args)), by_key("onnx"))
    if not args.model.exists():
        raise PathError(f"{args.model}: not found; expected a .nir file or a lava-dl .net/.h5 file")
    fmt = format_of(args.model)
    if fmt is None or fmt.key not in ("netx", "nir"):
        what = "not a file import reads" if fmt is None else f"a {fmt.name}, read as it is"
        raise PathError(f"{args.model}: {what}; import reads NIR and lava-dl netx files")
    if fmt.key == "netx":  # lava-dl netx: already fixed point
        refuse_options(args, "a lava-dl netx file, already fixed point", NIR_ONLY)
        graph = api.import_netx(args.model, steps=args.steps, levels=args.levels)
    else:
        graph = api.import_nir(
            args.model,
            args.source or "nir",
            dt=args.dt,
            reset=args.reset,
            max_spikes=args.max_spikes,
            steps=args.steps,
            levels=args.levels,
        )
    api.save(graph, out, "onnx")
    if args.source == "sinabs" and args.max_spikes is None:
        say(
            "note: a Sinabs NIR file does not say its layers' spike function; read as "
            "MultiSpike (spike counts), Sinabs' default. Layers with SingleSpike: --max-spikes 1"
        )
    say(f"wrote {out}\n{describe(graph)}")
    return {"path": str(out), "T": graph.T, "populations": len(graph.populations)}


# import's options that only a NIR file's reading takes (a netx file states them itself)
NIR_ONLY = {"source": "--from", "dt": "--dt", "reset": "--reset", "max_spikes": "--max-spikes"}


def inspect(args: argparse.Namespace, say: Say) -> dict[str, object]:
    graph = api.load(args.file)
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


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The quantiser's options the command line sets, as `api.quantize` takes them."""
    return {
        "calibration": args.calibration,
        "auto": args.auto,
        "levels": args.levels,
        "headroom": args.headroom,
        "netx": args.netx,
        "workers": args.workers,
        "progress": not args.quiet,
    }


def quantize(args: argparse.Namespace, say: Say) -> dict[str, object]:
    source = args.source
    out = named_for(output_file(args.out, *inputs_of(args)), by_key("onnx"))
    report_path = output_file(out.with_suffix(".report.json"), *inputs_of(args))
    if is_checkpoint(source):
        checkpoint = Checkpoint.load(source)
        trained_on = checkpoint.config.dataset
        refuse_options(
            args,
            f"a checkpoint, calibrated on its own dataset's training images ({trained_on})",
            {"inputs": "--inputs", "labels": "--labels"},
        )
        same_dataset(source, trained_on, args.dataset)
        dataset = load_dataset(trained_on, args.data_dir)
        result = api.quantize(
            checkpoint, dataset, finetune=args.finetune, backend=args.backend, **_options(args)
        )
    else:
        graph = lowered(api.load(source))
        if (args.dataset is None) == (args.inputs is None) or args.finetune or stray_labels(args):
            raise ConfigError(
                f"{source}: a float graph is quantised on --dataset NAME (calibration from its "
                "training images, accuracy on its test images) or on --inputs X.npy (the first "
                "--calibration of them; --labels Y.npy for accuracies); --finetune needs a "
                "checkpoint"
            )
        if args.inputs is None:
            fits(graph, source, args.dataset)
            data, labels = load_dataset(args.dataset, args.data_dir), None
        else:
            data, labels = user_samples(graph, args.inputs, args.labels, graded=True)
        result = api.quantize(graph, data, labels=labels, **_options(args))
    api.save(result.graph, out, "onnx")
    report = {"graph": str(out), **result.to_json()}
    write_text(report_path, json.dumps(report, indent=2))
    say(f"{result.table()}\nwrote {out} and {report_path}")
    return report
