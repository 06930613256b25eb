"""The `snn-deploy` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from targets.loihi2.lava.network import LavaTargetUnavailable
from targets.loihi2.lava.session import LavaTimeout
from toolchain.atomic import atomic_path, write_text
from toolchain.data.datasets import DATASET_NAMES, DatasetError, Split, load_dataset
from toolchain.io import GraphFileError, OnnxFormatError, read_graph, save_onnx
from toolchain.ir import Graph, GraphError
from toolchain.ir.describe import describe
from toolchain.train.checkpoint import Checkpoint, CheckpointError
from toolchain.train.config import ConfigError, load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
USER_ERRORS = (
    ConfigError,
    DatasetError,
    CheckpointError,
    GraphError,
    GraphFileError,
    OnnxFormatError,
    LavaTargetUnavailable,
    LavaTimeout,
)


def _say(args: argparse.Namespace, text: str) -> None:
    """Human-readable output: stdout normally, stderr when stdout carries JSON."""
    print(text, file=sys.stderr if args.json else sys.stdout)


def _train(args: argparse.Namespace) -> dict[str, object]:
    from toolchain.train.loop import train

    config = load_config(args.config)
    if args.epochs is not None:
        config = config.with_epochs(args.epochs)
    result = train(
        config,
        args.out,
        data_dir=args.data_dir,
        resume=args.resume,
        progress=not args.quiet,
        device=args.device,
    )
    return result.to_json()


def _demo(args: argparse.Namespace) -> dict[str, object]:
    from toolchain.demo import run_demo

    if not (EXAMPLES / "digits_mlp.toml").is_file():
        raise ConfigError(f"{EXAMPLES}: the demo config ships with the source checkout")
    result = run_demo(args.out, progress=not args.quiet, say=lambda text: _say(args, text))
    _say(args, f"{result.table()}\nartifacts and plots in {result.run_dir}")
    return result.to_json()


def _lowered(graph: Graph) -> Graph:
    from toolchain.ir.lowering import lower

    return graph if graph.is_lowered else lower(graph)


def _split(args: argparse.Namespace, dataset: str) -> Split:
    test = load_dataset(dataset, args.data_dir).test
    if args.limit is None:
        return test
    return Split(test.images[: args.limit], test.labels[: args.limit])


def _export(args: argparse.Namespace) -> dict[str, object]:
    graph = read_graph(args.source)
    graph = _lowered(graph) if args.lower else graph
    if args.format == "netx":
        from targets.loihi2.netx import save_netx

        save_netx(graph, args.out)
    else:
        save_onnx(graph, args.out)
    _say(args, f"wrote {args.out}\n{describe(graph)}")
    return {"path": str(args.out), "fixed_point": graph.is_fixed, "lowered": graph.is_lowered}


def _inspect(args: argparse.Namespace) -> dict[str, object]:
    graph = read_graph(args.file)
    _say(args, describe(graph))
    return {
        "name": graph.name,
        "T": graph.T,
        "fixed_point": graph.is_fixed,
        "lowered": graph.is_lowered,
        "nodes": [
            {"name": n.name, "type": type(n).__name__, "shape": list(shape)}
            for n, shape in zip(graph.nodes, graph.shapes(), strict=True)
        ],
    }


def _quantize(args: argparse.Namespace) -> dict[str, object]:
    from quantize.pipeline import quantize_checkpoint

    checkpoint = Checkpoint.load(args.checkpoint)
    dataset = load_dataset(checkpoint.config.dataset, args.data_dir)
    result = quantize_checkpoint(
        checkpoint,
        dataset,
        calibration=args.calibration,
        finetune_epochs=args.finetune,
        progress=not args.quiet,
    )
    save_onnx(result.graph, args.out)
    report_path = args.out.with_suffix(".report.json")
    report = {"graph": str(args.out), **result.to_json()}
    write_text(report_path, json.dumps(report, indent=2))
    lines = [
        f"{'layer':<8}{'scale':>12}{'w_exp':>7}{'vth':>8}{'weights':>14}{'clipped':>9}"
        f"{'wraps':>7}{'saturated':>10}  limited by"
    ]
    for r in result.report.layers:
        lines.append(
            f"{r.population:<8}{r.scale:>12.1f}{r.weight_exp:>7}{r.vth:>8}"
            f"{f'[{r.weight_min}, {r.weight_max}]':>14}{r.weights_clipped:>9}"
            f"{r.current_wraps:>7}{r.voltage_saturations:>10}  {r.limited_by}"
        )
    lines.append(
        f"test accuracy: float {100 * result.float_accuracy:.2f} %, after PTQ "
        f"{100 * result.ptq_accuracy:.2f} %, fixed point {100 * result.fixed_accuracy:.2f} %"
    )
    if result.report.overflowing_layers:
        lines.append(
            f"warning: states left 24 bits on the calibration set in "
            f"{', '.join(result.report.overflowing_layers)}"
        )
    lines.append(f"wrote {args.out} and {report_path}")
    _say(args, "\n".join(lines))
    return report


def _simulate(args: argparse.Namespace) -> dict[str, object]:
    from targets.loihi2.simulator import simulate

    graph = read_graph(args.graph)
    split = _split(args, args.dataset)
    began = time.perf_counter()
    result = simulate(graph, split.images, progress=not args.quiet)
    seconds = time.perf_counter() - began
    accuracy = float((result.predictions == split.labels).mean())
    _say(
        args,
        f"{graph.name} on {args.dataset} ({len(split)} samples): fixed-point accuracy "
        f"{100 * accuracy:.2f} %, {len(split) / seconds:.0f} samples/s; current wraps "
        f"{result.current_wraps}, voltage saturations {result.voltage_saturations}",
    )
    return {
        "accuracy": accuracy,
        "samples": len(split),
        "seconds": seconds,
        "current_wraps": result.current_wraps,
        "voltage_saturations": result.voltage_saturations,
    }


def _deploy(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np

    import targets.loihi2.lava  # noqa: F401  (before anything imports lava)
    from targets.loihi2.lava.runner import run_on_lava
    from targets.loihi2.simulator import simulate

    graph = read_graph(args.graph)
    split = _split(args, args.dataset)
    lava = run_on_lava(graph, split.images, target=args.target, progress=not args.quiet)
    reference = simulate(graph, split.images)
    matches = bool(np.array_equal(lava.output_spikes, reference.output_window_spikes))
    out = args.out or args.graph.with_name(f"{args.graph.stem}-{args.target}.npz")
    with atomic_path(out) as tmp:
        with tmp.open("wb") as handle:
            np.savez_compressed(
                handle,
                output_spikes=lava.output_spikes,
                predictions=lava.predictions,
                labels=split.labels,
            )
    accuracy = float((lava.predictions == split.labels).mean())
    _say(
        args,
        f"{graph.name} on {args.target} ({len(split)} samples, {lava.steps} steps, "
        f"{lava.seconds:.1f} s): accuracy {100 * accuracy:.2f} %; output spikes equal to "
        f"the reference simulator's: {'yes' if matches else 'NO'}; saved {out}",
    )
    return {
        "target": args.target,
        "samples": len(split),
        "accuracy": accuracy,
        "matches_reference": matches,
        "steps": lava.steps,
        "seconds": lava.seconds,
        "output": str(out),
    }


def _compare(args: argparse.Namespace) -> dict[str, object]:
    from toolchain.report.compare import compare
    from toolchain.report.plots import plot_comparison
    from toolchain.train.loop import model_from_checkpoint

    checkpoint = Checkpoint.load(args.checkpoint)
    model = model_from_checkpoint(checkpoint)
    graph = read_graph(args.graph)
    comparison, raster = compare(model, graph, _split(args, args.dataset), progress=not args.quiet)
    out = args.out or args.graph.parent / f"{args.graph.stem}-compare"
    report = comparison.to_json()
    write_text(out / "compare.json", json.dumps(report, indent=2))
    plots = plot_comparison(comparison, raster, out)
    _say(
        args,
        f"{comparison.table()}\nwrote {out / 'compare.json'}, {', '.join(str(p) for p in plots)}",
    )
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snn-deploy", description="Train spiking networks with TSSL-BP and deploy them."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a network from a TOML config")
    p.add_argument("--config", required=True, type=Path, help="TOML config (see examples/)")
    p.add_argument("--out", required=True, type=Path, help="run folder for checkpoint.pt")
    p.add_argument("--epochs", type=int, help="total epochs, overriding the config")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train")
    p.set_defaults(run=_train)

    p = commands.add_parser("demo", help="the main job on the embedded digits set")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    p.set_defaults(run=_demo)

    p = commands.add_parser("export", help="write a Graph as an ONNX file")
    p.add_argument("source", type=Path, help="a training checkpoint or a graph .onnx file")
    p.add_argument(
        "--format",
        choices=["onnx", "netx"],
        default="onnx",
        help="onnx (float or fixed graph) or netx (lava-dl hdf5, lowered fixed graph)",
    )
    p.add_argument("--out", required=True, type=Path, help="the file to write")
    p.add_argument("--lower", action="store_true", help="fold pooling and flatten first")
    p.set_defaults(run=_export)

    p = commands.add_parser("inspect", help="print the layers of a graph .onnx file")
    p.add_argument("file", type=Path)
    p.set_defaults(run=_inspect)

    p = commands.add_parser("quantize", help="checkpoint -> fixed-point graph (.onnx)")
    p.add_argument("checkpoint", type=Path)
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="graph file (.onnx); a .report.json is written beside it",
    )
    p.add_argument("--calibration", type=int, default=1000, help="calibration images (train set)")
    p.add_argument(
        "--finetune",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="epochs of quantisation-aware fine-tuning",
    )
    p.set_defaults(run=_quantize)

    p = commands.add_parser("simulate", help="run a fixed-point graph, bit-accurately")
    p.add_argument("graph", type=Path, help="fixed-point graph (.onnx)")
    p.set_defaults(run=_simulate)

    p = commands.add_parser("deploy", help="run a fixed-point graph on Lava (CPU sim or chip)")
    p.add_argument("graph", type=Path, help="fixed-point graph (.onnx)")
    p.add_argument("--target", choices=["lava-sim", "loihi"], default="lava-sim")
    p.add_argument("--out", type=Path, help="output spikes .npz (default: beside the graph)")
    p.set_defaults(run=_deploy)

    p = commands.add_parser("compare", help="float checkpoint vs fixed-point graph, per layer")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("graph", type=Path)
    p.add_argument("--out", type=Path, help="report folder (default: beside the graph)")
    p.set_defaults(run=_compare)

    for name in ("simulate", "compare", "deploy"):
        sub = commands.choices[name]
        sub.add_argument("--dataset", required=True, choices=DATASET_NAMES)
        sub.add_argument("--limit", type=int, help="only the first N test samples")
    for name in ("train", "quantize", "simulate", "compare", "deploy"):
        commands.choices[name].add_argument(
            "--data-dir", type=Path, help="folder of the MNIST idx files (gzip or raw)"
        )
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
