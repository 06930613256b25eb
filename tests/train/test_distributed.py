"""Training over 2 processes (torch.distributed, gloo): the same run as one process."""

import dataclasses
import json

import pytest
import torch

from toolchain.atomic import write_text
from toolchain.cli import main
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import load_config


def write_config(folder, epochs: int, dropout: bool = False) -> str:
    """A small digits MLP with shifted images and a validation split, as TOML."""
    base = load_config("examples/digits_mlp.toml")
    lines = [
        'name = "ddp"', 'dataset = "digits"', "[neuron]",
        *(f"{k} = {v}" for k, v in dataclasses.asdict(base.neuron).items()),
        "[[layers]]", 'type = "dense"', "out = 32",
        *(["[[layers]]", 'type = "dropout"', "p = 0.2"] if dropout else []),
        "[[layers]]", 'type = "dense"', "out = 10",
        "[train]", f"lr = {base.train.lr}", "batch_size = 32", f"epochs = {epochs}",
        "augment_shift = 1", "validation = 200",
    ]  # fmt: skip
    path = folder / f"ddp-{epochs}-{dropout}.toml"
    write_text(path, "\n".join(lines) + "\n")
    return str(path)


def train(capsys, config: str, out, *extra: str) -> dict:
    assert main(["train", "--config", config, "--out", str(out), "--json", "--quiet", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def weights(out) -> dict[str, torch.Tensor]:
    return Checkpoint.load(out / "checkpoint.pt").model


def test_two_processes_train_the_one_process_run(tmp_path, capsys):
    """Same global batches, gradients summed over the two halves: the weights after 2 epochs
    equal one process's to float tolerance, and so do the accuracies and the loss."""
    config = write_config(tmp_path, 2)
    one = train(capsys, config, tmp_path / "one")
    two = train(capsys, config, tmp_path / "two", "--nproc", "2")
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=0), name
    ma = Checkpoint.load(tmp_path / "one/checkpoint.pt").metrics
    mb = Checkpoint.load(tmp_path / "two/checkpoint.pt").metrics
    for x, y in zip(ma, mb, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)
        for key in ("train_accuracy", "validation_accuracy", "test_accuracy"):
            assert x[key] == y[key], key
    assert one["test_accuracy"] == two["test_accuracy"] and two["epochs"] == 2


def test_a_resumed_distributed_run_equals_an_uninterrupted_one(tmp_path, capsys):
    train(capsys, write_config(tmp_path, 2), tmp_path / "straight", "--nproc", "2")
    train(capsys, write_config(tmp_path, 1), tmp_path / "split", "--nproc", "2")
    train(capsys, write_config(tmp_path, 2), tmp_path / "split", "--nproc", "2", "--resume")
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "split")
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_dropout_is_refused_over_several_processes(tmp_path, capsys):
    config = write_config(tmp_path, 1, dropout=True)
    assert main(["train", "--config", config, "--out", str(tmp_path / "r"), "--nproc", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("snn-deploy train: error:") and len(err.splitlines()) == 1, err
    assert "dropout layers draw their masks per process" in err
    assert not (tmp_path / "r").exists(), "refused before the run folder or a process was made"
