"""The training curves of a run: loss and accuracies per epoch, as JSON and as a plot."""

from __future__ import annotations

import json
from pathlib import Path

from toolchain.atomic import atomic_path, write_text

ACCURACIES = ("train_accuracy", "validation_accuracy", "test_accuracy")


def write_metrics(metrics: list[dict[str, float]], out_dir: Path) -> list[Path]:
    """`metrics.json` and `metrics.png` (loss, and every accuracy present) in `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    json_path, png_path = out_dir / "metrics.json", out_dir / "metrics.png"
    write_text(json_path, json.dumps(metrics, indent=2))
    epochs = [m["epoch"] for m in metrics]
    fig, (loss, accuracy) = plt.subplots(1, 2, figsize=(10, 3.5))
    loss.plot(epochs, [m["loss"] for m in metrics])
    loss.set(xlabel="epoch", ylabel="loss per sample", yscale="log", title="training loss")
    for key in ACCURACIES:
        if key in metrics[0]:
            values = [100 * m[key] for m in metrics]
            accuracy.plot(epochs, values, label=key.removesuffix("_accuracy"))
    accuracy.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    accuracy.legend()
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return [json_path, png_path]
