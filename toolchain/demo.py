"""The main job end to end in one run folder, on digits (trained here in seconds) or on MNIST
(the shipped network of `examples/pretrained/mnist_cnn/`, no training).

digits: train (TSSL-BP) -> quantise (PTQ + fine-tuning on the integer forward) -> ONNX.
mnist:  the shipped checkpoint and its fixed-point ONNX graph.
Then, for both: the float network and the bit-accurate reference simulator on the whole test
set (the float-vs-fixed report, JSON and plots), Lava's CPU simulation of Loihi 2 on the first
`lava_samples` test images, and one table: float accuracy, fixed-point accuracy, accuracy on
Lava, and whether Lava and the reference agreed on every spike.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from toolchain.atomic import write_text
from toolchain.data.datasets import Dataset, Split

FINETUNE_EPOCHS = 5
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PRETRAINED_MNIST = EXAMPLES / "pretrained" / "mnist_cnn"
LAVA_SAMPLES = {"digits": 450, "mnist": 200}


@dataclass(frozen=True)
class DemoResult:
    dataset: str
    float_accuracy: float
    reference_accuracy: float
    reference_samples: int
    lava_accuracy: float
    lava_samples: int
    lava_matches_reference: bool
    loihi2_cores: int
    loihi2_fits: bool
    energy_per_inference_j: float
    run_dir: Path

    def table(self) -> str:
        agree = "yes, every spike" if self.lava_matches_reference else "NO"
        rows = [
            (f"float (TSSL-BP, PyTorch), {self.reference_samples} samples", self.float_accuracy),
            (
                f"fixed point, reference simulator, {self.reference_samples}",
                self.reference_accuracy,
            ),
            (f"fixed point, Lava (Loihi2SimCfg fixed_pt), {self.lava_samples}", self.lava_accuracy),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{self.dataset} test set"]
        lines += [f"{name:<{width}}  {100 * value:.2f} %" for name, value in rows]
        lines.append(f"{'Lava == reference simulator':<{width}}  {agree}")
        fits = "fits" if self.loihi2_fits else "does NOT fit"
        lines.append(
            f"{'Loihi 2 plan':<{width}}  {fits} on {self.loihi2_cores} neuro cores, "
            f"{self.energy_per_inference_j * 1e6:.3g} uJ per inference (modelled)"
        )
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "run_dir": str(self.run_dir)}


def _digits_network(run_dir: Path, dataset: Dataset, progress: bool, say):
    """Trains and quantises the digits MLP in `run_dir`: (checkpoint, fixed graph)."""
    from quantize.pipeline import quantize_checkpoint
    from toolchain.io import save_onnx
    from toolchain.train.checkpoint import Checkpoint
    from toolchain.train.config import load_config
    from toolchain.train.loop import train

    config = load_config(EXAMPLES / "digits_mlp.toml")
    say("training the digits MLP with TSSL-BP")
    trained = train(config, run_dir, dataset=dataset, progress=progress, overwrite=True)
    checkpoint = Checkpoint.load(trained.checkpoint)
    say("quantising to Loihi integers (PTQ, then fine-tuning on the integer forward pass)")
    quantized = quantize_checkpoint(
        checkpoint, dataset, finetune_epochs=FINETUNE_EPOCHS, progress=progress
    )
    save_onnx(quantized.graph, run_dir / "digits_fixed.onnx")
    write_text(run_dir / "quantize.report.json", json.dumps(quantized.to_json(), indent=2))
    return checkpoint, quantized.graph


def _shipped_network(say):
    """The shipped MNIST CNN: (checkpoint, fixed graph)."""
    from toolchain.io import load_onnx
    from toolchain.train.checkpoint import Checkpoint

    say(f"loading the shipped MNIST CNN from {PRETRAINED_MNIST}")
    return Checkpoint.load(PRETRAINED_MNIST / "model.pt"), load_onnx(
        PRETRAINED_MNIST / "fixed.onnx"
    )


def run_demo(
    run_dir: Path,
    *,
    dataset: str = "digits",
    data_dir: Path | None = None,
    lava_samples: int | None = None,
    workers: int = 1,
    progress: bool = True,
    say=print,
) -> DemoResult:
    """Every stage of the pipeline; artifacts and the report go to `run_dir`."""
    from toolchain.data.datasets import load_dataset
    from toolchain.pipeline import deploy_and_verify
    from toolchain.report.chip_plan import ACTIVITY_SAMPLES, chip_plan_of, plot_plan
    from toolchain.report.compare import compare
    from toolchain.report.html import (
        comparison_section,
        deployment_section,
        quantization_report,
        write_report_with_plan,
    )
    from toolchain.report.plots import plot_comparison
    from toolchain.train.loop import model_from_checkpoint

    data = load_dataset(dataset, data_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if dataset == "digits":
        checkpoint, graph = _digits_network(run_dir, data, progress, say)
        quantized_report = run_dir / "quantize.report.json"
    else:
        checkpoint, graph = _shipped_network(say)
        quantized_report = PRETRAINED_MNIST / "fixed.report.json"
    test = data.test
    say(f"float network and reference simulator on all {len(test)} test images")
    model = model_from_checkpoint(checkpoint)
    comparison, raster = compare(model, graph, test, progress=progress, workers=workers)
    write_text(run_dir / "compare.json", json.dumps(comparison.to_json(), indent=2))
    pictures = plot_comparison(comparison, raster, run_dir)
    count = min(lava_samples or LAVA_SAMPLES[dataset], len(test))
    first = Split(test.images[:count], test.labels[:count])
    say(f"streaming the first {count} test images through Lava (Loihi2SimCfg, fixed_pt)")
    deployment = deploy_and_verify(
        graph,
        first.images,
        workers=workers,
        progress=progress,
        save=run_dir / "lava_output.npz",
        labels=first.labels,
    )
    chip_plan = chip_plan_of(graph, first.images[:ACTIVITY_SAMPLES])
    say(f"the Loihi 2 plan (activity of the first {ACTIVITY_SAMPLES}):\n{chip_plan.table()}")
    write_text(run_dir / "plan.json", json.dumps(chip_plan.to_json(), indent=2))
    picture = plot_plan(chip_plan, run_dir / "plan.png")
    assert chip_plan.cost is not None
    deployed = {
        "target": "lava-sim",
        "samples": count,
        "steps": deployment.lava.steps,
        "seconds": deployment.lava_seconds,
        "accuracy": deployment.accuracy(first.labels),
        "matches_reference": deployment.matches,
    }
    write_report_with_plan(
        run_dir / "report.html",
        f"snn-deploy demo: {dataset}",
        [comparison_section(comparison, pictures), deployment_section(deployed)],
        chip_plan,
        quantization_report(quantized_report),
        picture,
    )
    result = DemoResult(
        dataset=dataset,
        float_accuracy=comparison.float_accuracy,
        reference_accuracy=comparison.fixed_accuracy,
        reference_samples=len(test),
        lava_accuracy=deployment.accuracy(first.labels),
        lava_samples=count,
        lava_matches_reference=deployment.matches,
        loihi2_cores=chip_plan.placed.cores,
        loihi2_fits=chip_plan.fits,
        energy_per_inference_j=chip_plan.cost.energy_per_inference_j,
        run_dir=run_dir,
    )
    write_text(run_dir / "demo.json", json.dumps(result.to_json(), indent=2))
    return result
