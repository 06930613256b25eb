"""Training end to end on real data: accuracy floor, checkpoints, exact resume, command line."""

import dataclasses
import json

import pytest
import torch

from toolchain.atomic import FILE_MODE, atomic_path
from toolchain.cli import main
from toolchain.data.datasets import hold_out, load_digits
from toolchain.train.checkpoint import Checkpoint, CheckpointError
from toolchain.train.config import DenseSpec, DropoutSpec, load_config
from toolchain.train.loop import evaluate, learning_rate, model_from_checkpoint, train

DIGITS = "examples/digits_mlp.toml"


def test_digits_mlp_reaches_95_percent(digits_run):
    result = digits_run
    assert result.test_accuracy >= 0.95, result.metrics[-5:]
    saved = Checkpoint.load(result.checkpoint)
    assert saved.epoch == 40 and saved.metrics == result.metrics
    assert saved.config == load_config(DIGITS)


def small_config_with_dropout(epochs: int, **train_fields):
    """A small digits MLP with dropout, shifted images and a validation split: every source of
    randomness and state that resuming must restore."""
    config = load_config(DIGITS)
    layers = (DenseSpec(64), DropoutSpec(0.2), DenseSpec(10))
    train_fields = {"augment_shift": 1, "validation": 200, **train_fields}
    training = dataclasses.replace(config.train, epochs=epochs, **train_fields)
    return dataclasses.replace(config, layers=layers, train=training)


def test_resumed_run_equals_uninterrupted_run(digits, tmp_path):
    straight = train(small_config_with_dropout(4), tmp_path / "a", dataset=digits, progress=False)
    train(small_config_with_dropout(2), tmp_path / "b", dataset=digits, progress=False)
    resumed = train(
        small_config_with_dropout(4), tmp_path / "b", dataset=digits, resume=True, progress=False
    )
    a, b = Checkpoint.load(straight.checkpoint), Checkpoint.load(resumed.checkpoint)
    assert a.model.keys() == b.model.keys()
    for name in a.model:
        assert torch.equal(a.model[name], b.model[name]), name
    drop_time = [{k: v for k, v in m.items() if k != "seconds"} for m in a.metrics]
    assert drop_time == [{k: v for k, v in m.items() if k != "seconds"} for m in b.metrics]


def test_every_step_clamps_the_weights(digits, tmp_path):
    """The paper clamps the weights after each optimiser step; with a clamp far below the
    trained weights' size, every weight must end inside it and many exactly on it."""
    config = small_config_with_dropout(1)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, weight_clamp=0.02))
    result = train(config, tmp_path, dataset=digits, progress=False)
    for name, weight in Checkpoint.load(result.checkpoint).model.items():
        assert weight.abs().max() <= 0.02, f"{name} left the clamp [-0.02, 0.02]"
        assert (weight.abs() == 0.02).float().mean() > 0.1, f"{name}: the clamp never bound"


def test_best_epoch_is_chosen_on_held_out_training_data(digits, tmp_path):
    result = train(small_config_with_dropout(4), tmp_path, dataset=digits, progress=False)
    validation = [m["validation_accuracy"] for m in result.metrics]
    best = Checkpoint.load(result.best)
    assert best.epoch == 1 + validation.index(max(validation)) and best.optimizer == {}
    _, held = hold_out(digits.train, 200)
    assert evaluate(model_from_checkpoint(best), held) == max(validation)
    assert result.to_json()["best"] == str(tmp_path / "best.pt")


def test_cosine_schedule_anneals_to_zero():
    config = small_config_with_dropout(10, lr=1e-3, lr_schedule="cosine")
    rates = [learning_rate(config, epoch) for epoch in (0, 2.5, 5, 10 - 1e-9)]
    assert rates == pytest.approx([1e-3, 0.5e-3 * (1 + 2**-0.5), 0.5e-3, 0.0])
    assert learning_rate(small_config_with_dropout(10, lr=1e-3), 7.5) == 1e-3


def test_averaged_epochs_yield_the_mean_of_their_weights(digits, tmp_path):
    """Two epochs of schedule then two averaged, split by a resume: the live weights after epochs
    3 and 4, read from the checkpoints, average to average.pt, which equals an uninterrupted
    run's; the averaged epochs train at the scaled constant rate and report the mean's accuracy."""
    config = small_config_with_dropout(2, lr_schedule="cosine", average_lr_scale=0.5)
    three = dataclasses.replace(config, train=dataclasses.replace(config.train, average_epochs=1))
    four = dataclasses.replace(config, train=dataclasses.replace(config.train, average_epochs=2))
    train(three, tmp_path / "split", dataset=digits, progress=False)
    after_3 = Checkpoint.load(tmp_path / "split/checkpoint.pt").model
    split = train(four, tmp_path / "split", dataset=digits, resume=True, progress=False)
    after_4 = Checkpoint.load(split.checkpoint).model
    straight = train(four, tmp_path / "straight", dataset=digits, progress=False)
    averaged = Checkpoint.load(split.average)
    assert averaged.epoch == 4 and split.to_json()["average"] == str(split.average)
    for name, value in averaged.model.items():
        assert torch.allclose(value, (after_3[name] + after_4[name]) / 2, atol=1e-7), name
        assert torch.equal(value, Checkpoint.load(straight.average).model[name]), name
        assert not torch.equal(after_3[name], after_4[name]), name
    _, held = hold_out(digits.train, 200)
    last = split.metrics[-1]
    assert evaluate(model_from_checkpoint(averaged), held) == last["validation_accuracy"]
    assert evaluate(model_from_checkpoint(averaged), digits.test) == last["test_accuracy"]
    assert learning_rate(four, 1.99) < learning_rate(four, 2) == learning_rate(four, 3.5) == 1e-3


def test_averaging_refuses_a_changed_schedule(digits, tmp_path):
    config = small_config_with_dropout(1)
    averaging = dataclasses.replace(
        config, train=dataclasses.replace(config.train, average_epochs=1)
    )
    train(averaging, tmp_path, dataset=digits, progress=False)
    with pytest.raises(CheckpointError, match="keep epochs = 1"):
        train(averaging.with_epochs(2), tmp_path, dataset=digits, resume=True, progress=False)


def test_resume_refuses_a_different_config(digits, tmp_path):
    train(small_config_with_dropout(1), tmp_path, dataset=digits, progress=False)
    other = dataclasses.replace(load_config(DIGITS), layers=(DenseSpec(10),)).with_epochs(2)
    with pytest.raises(CheckpointError, match="different config"):
        train(other, tmp_path, dataset=digits, resume=True, progress=False)


def test_damaged_checkpoint_is_refused_by_name(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint.pt: not a readable checkpoint"):
        Checkpoint.load(bad)
    with pytest.raises(CheckpointError, match="not found"):
        Checkpoint.load(tmp_path / "missing.pt")


def test_written_files_get_the_usual_permissions(tmp_path):
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == FILE_MODE != 0o600


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "artifact.bin"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact.bin"]


def test_cli_train_json_and_resume(tmp_path, capsys):
    args = ["train", "--config", DIGITS, "--out", str(tmp_path), "--quiet", "--json"]
    assert main([*args, "--epochs", "1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["epochs"] == 1 and first["checkpoint"] == str(tmp_path / "checkpoint.pt")
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    second = json.loads(capsys.readouterr().out)
    saved = Checkpoint.load(tmp_path / "checkpoint.pt")
    assert second["epochs"] == 2 and saved.epoch == 2
    assert second["test_accuracy"] == saved.metrics[-1]["test_accuracy"]
    model = model_from_checkpoint(saved)
    test = load_digits().test
    with torch.no_grad():
        predicted = model.predict(model(torch.from_numpy(test.images))).numpy()
    assert second["test_accuracy"] == (predicted == test.labels).mean()


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\ndataset = "digits"\n[neuron]\nT = 5\ntau_m = 5\ntau_s = 3\n'
        '[[layers]]\ntype = "lstm"\n[train]\nlr = 1e-3\nbatch_size = 8\nepochs = 1\n'
    )
    assert main(["train", "--config", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "type='lstm'" in err and "dense" in err
    mnist = ["train", "--config", "examples/mnist_mlp.toml", "--out", str(tmp_path)]
    assert main([*mnist, "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
