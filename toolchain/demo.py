"""The main job on the embedded digits set, end to end, in one run folder.

train (TSSL-BP) -> quantise (PTQ + fine-tuning on the integer forward) -> export ONNX ->
run on Lava's CPU simulation of Loihi 2 -> one table: float accuracy, fixed-point accuracy in
the reference simulator, accuracy on Lava, and whether Lava and the reference agreed on every
spike; the float-vs-fixed report (JSON and plots) lands beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolchain.atomic import write_text

FINETUNE_EPOCHS = 5


@dataclass(frozen=True)
class DemoResult:
    float_accuracy: float
    reference_accuracy: float
    lava_accuracy: float
    lava_matches_reference: bool
    samples: int
    run_dir: Path

    def table(self) -> str:
        agree = "yes, every spike" if self.lava_matches_reference else "NO"
        rows = [
            ("float (TSSL-BP, PyTorch)", f"{100 * self.float_accuracy:.2f} %"),
            ("fixed point, reference simulator", f"{100 * self.reference_accuracy:.2f} %"),
            ("fixed point, Lava (Loihi2SimCfg fixed_pt)", f"{100 * self.lava_accuracy:.2f} %"),
            ("Lava == reference simulator", agree),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"digits test set, {self.samples} samples"]
        lines += [f"{name:<{width}}  {value}" for name, value in rows]
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "float_accuracy": self.float_accuracy,
            "reference_accuracy": self.reference_accuracy,
            "lava_accuracy": self.lava_accuracy,
            "lava_matches_reference": self.lava_matches_reference,
            "run_dir": str(self.run_dir),
        }


def run_demo(run_dir: Path, *, progress: bool = True, say=print) -> DemoResult:
    """Every stage of the pipeline on digits; artifacts and the report go to `run_dir`."""
    from quantize.pipeline import quantize_checkpoint
    from targets.loihi2.lava.runner import run_on_lava
    from targets.loihi2.simulator import simulate
    from toolchain.data.datasets import load_digits
    from toolchain.io import save_onnx
    from toolchain.report.compare import compare
    from toolchain.report.plots import plot_comparison
    from toolchain.train.checkpoint import Checkpoint
    from toolchain.train.config import load_config
    from toolchain.train.loop import model_from_checkpoint, train

    dataset = load_digits()
    config = load_config(Path(__file__).resolve().parents[1] / "examples" / "digits_mlp.toml")
    say("1/5 training the digits MLP with TSSL-BP")
    trained = train(config, run_dir, dataset=dataset, progress=progress, overwrite=True)
    checkpoint = Checkpoint.load(trained.checkpoint)
    say("2/5 quantising to Loihi integers (PTQ, then fine-tuning on the integer forward pass)")
    quantized = quantize_checkpoint(
        checkpoint, dataset, finetune_epochs=FINETUNE_EPOCHS, progress=progress
    )
    graph = quantized.graph
    save_onnx(graph, run_dir / "digits_fixed.onnx")
    write_text(run_dir / "quantize.report.json", json.dumps(quantized.to_json(), indent=2))
    say("3/5 running the bit-accurate reference simulator")
    images, labels = dataset.test.images, dataset.test.labels
    reference = simulate(graph, images)
    say(f"4/5 streaming {len(images)} samples through Lava (Loihi2SimCfg, fixed_pt)")
    lava = run_on_lava(graph, images, progress=progress)
    matches = bool(np.array_equal(lava.output_spikes, reference.output_window_spikes))
    np.savez_compressed(
        run_dir / "lava_output.npz",
        output_spikes=lava.output_spikes,
        predictions=lava.predictions,
        labels=labels,
    )
    say("5/5 float vs fixed-point report")
    comparison, raster = compare(model_from_checkpoint(checkpoint), graph, dataset.test)
    write_text(run_dir / "compare.json", json.dumps(comparison.to_json(), indent=2))
    plot_comparison(comparison, raster, run_dir)
    result = DemoResult(
        float_accuracy=comparison.float_accuracy,
        reference_accuracy=float((reference.predictions == labels).mean()),
        lava_accuracy=float((lava.predictions == labels).mean()),
        lava_matches_reference=matches,
        samples=len(images),
        run_dir=run_dir,
    )
    write_text(run_dir / "demo.json", json.dumps(result.to_json(), indent=2))
    return result
