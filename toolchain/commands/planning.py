"""`snn-deploy plan`: whether a graph fits Loihi 2, on how many cores, and with samples what an
inference costs there (targets/loihi2: plan, partition, chip_rules, activity, cost)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from toolchain import api
from toolchain.atomic import write_text
from toolchain.commands.arguments import Say, inputs_of, same_dataset
from toolchain.commands.run import _fixed_graph, _samples
from toolchain.io import is_checkpoint
from toolchain.ir import Graph
from toolchain.paths import output_file, output_folder


def plan(args: argparse.Namespace, say: Say) -> dict[str, object]:
    from toolchain.report.chip_plan import plot_plan
    from toolchain.report.html import quantization_report, write_report_with_plan

    out = None if args.out is None else output_folder(args.out)
    written = None if out is None else output_file(out / "plan.json", *inputs_of(args))
    graph = _graph_to_plan(args)
    chip_plan = api.plan(graph, _activity_samples(args, graph))
    result = chip_plan.to_json()
    say(chip_plan.table())
    if out is not None and written is not None:
        write_text(written, json.dumps(result, indent=2))
        picture = plot_plan(chip_plan, output_file(out / "plan.png", *inputs_of(args)))
        report = quantization_report(args.graph.with_suffix(".report.json"))
        page = output_file(out / "report.html", *inputs_of(args))
        title = f"{graph.name}: Loihi 2 plan"
        write_report_with_plan(page, title, [], chip_plan, report, picture)
        say(f"wrote {written}, {picture}, {page}")
    return result


def _graph_to_plan(args: argparse.Namespace) -> Graph:
    """The fixed-point graph of a graph file, or of a checkpoint quantised as `quantize` does."""
    if not is_checkpoint(args.graph):
        return _fixed_graph(args.graph)
    from quantize.pipeline import fixed_graph_of
    from toolchain.data.datasets import load_dataset
    from toolchain.train.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(args.graph)
    trained_on = checkpoint.config.dataset
    same_dataset(args.graph, trained_on, args.dataset)
    dataset = load_dataset(trained_on, args.data_dir)
    return fixed_graph_of(checkpoint, dataset, workers=args.workers)


def _activity_samples(args: argparse.Namespace, graph: Graph) -> np.ndarray | None:
    """The samples to count activity on (None without --dataset or --inputs)."""
    from toolchain.report.chip_plan import ACTIVITY_SAMPLES

    if args.dataset is None and args.inputs is None:
        return None
    images, _ = _samples(args, graph)
    return images if args.limit is not None else images[:ACTIVITY_SAMPLES]
