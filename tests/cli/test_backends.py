"""`simulate --backend torch` computes the numpy simulator's predictions and counts; fine-tuning
runs on either backend to the same weights; a device the machine lacks is refused by name."""

import json

import numpy as np
from cli_runs import refused

from quantize.pipeline import quantize_checkpoint
from toolchain.cli import main
from toolchain.data.datasets import Dataset, Split


def test_simulate_on_the_torch_backend_equals_numpy(workspace, capsys):
    fixed = str(workspace / "fixed.onnx")
    results = {}
    for backend in ("numpy", "torch"):
        argv = ["simulate", fixed, "--dataset", "digits", "--backend", backend]
        assert main([*argv, "--json", "--quiet"]) == 0
        results[backend] = json.loads(capsys.readouterr().out)
    numpy_run, torch_run = results["numpy"], results["torch"]
    assert torch_run["accuracy"] == numpy_run["accuracy"]
    assert torch_run["layers"] == numpy_run["layers"]  # every population's spike count


def test_a_missing_cuda_device_is_refused(workspace, capsys):
    import torch

    if torch.cuda.is_available():
        return  # this machine has one: nothing to refuse
    argv = ["simulate", str(workspace / "fixed.onnx"), "--dataset", "digits"]
    refused(capsys, [*argv, "--backend", "torch", "--device", "cuda"], "--device cuda", "CUDA")


def test_finetuning_on_the_torch_backend_gives_the_same_weights(digits, digits_checkpoint):
    """One epoch of fine-tuning on a few hundred images: the integer forward pass of either
    backend, so the same gradients and the same fixed-point graph."""
    train = Split(digits.train.images[:300], digits.train.labels[:300])
    small = Dataset(digits.name, train, digits.test)
    graphs = [
        quantize_checkpoint(
            digits_checkpoint,
            small,
            calibration=100,
            finetune_epochs=1,
            progress=False,
            backend=backend,
        ).graph
        for backend in ("numpy", "torch")
    ]
    for a, b in zip(graphs[0].nodes, graphs[1].nodes, strict=True):
        if getattr(a, "weight_int", None) is not None:
            np.testing.assert_array_equal(a.weight_int, b.weight_int)
