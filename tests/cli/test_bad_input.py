"""Bad input through the real command line: exit status 2, one line that names the file, node,
key or value and what is accepted, no traceback, and every file that existed before unchanged."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runs import DIGITS, refused, run, snapshot

from toolchain.cli import main
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import load_config


def saved_variant(workspace: Path, name: str, change) -> Path:
    """The workspace checkpoint with `change(payload)` applied, saved as `name`."""
    payload = torch.load(workspace / "checkpoint.pt", weights_only=True)
    change(payload)
    path = workspace / name
    torch.save(payload, path)
    return path


# ------------------------------------------------------------------------------- NaN and inf


def test_a_checkpoint_with_a_nan_weight_is_refused_everywhere(capsys, workspace, tmp_path):
    def poison(payload):
        payload["model"]["layers.1.weight"][3, 7] = float("nan")

    bad = saved_variant(workspace, "nan.pt", poison)
    keep = snapshot(bad)
    message = ("nan.pt", "'layers.1.weight' has non-finite values")
    refused(capsys, ["compare", bad, workspace / "fixed.onnx", "--dataset", "digits"], *message)
    refused(capsys, ["quantize", bad, "--out", tmp_path / "q.onnx"], *message, keep=keep)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(bad, run / "checkpoint.pt")
    keep = snapshot(run / "checkpoint.pt")
    args = ["train", "--config", DIGITS, "--out", run, "--resume", "--epochs", "41"]
    refused(capsys, args, *message[1:], keep=keep)


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("out = 200", "out = 200\nweight_scale = nan", "weight_scale=nan: need a finite number"),
        ("tau_m = 5.0", "tau_m = inf", "neuron.tau_m=inf: need a finite number >= 1"),
        ("out = 200", "out = 20.5", "out=20.5: need an integer >= 1"),
        ("out = 200", 'out = "many"', "out='many': need an integer >= 1"),
        ("lr = 2e-3", 'lr = "fast"', "train.lr='fast': need a finite number > 0"),
        ("batch_size = 50", "batch_size = true", "train.batch_size=True: need an integer"),
    ],
)
def test_config_values_of_the_wrong_kind_name_the_key(capsys, tmp_path, old, new, fragment):
    text = Path(DIGITS).read_text()
    assert old in text
    config = tmp_path / "bad.toml"
    config.write_text(text.replace(old, new))
    refused(capsys, ["train", "--config", config, "--out", tmp_path / "run"], "bad.toml", fragment)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (
            '[[layers]]\ntype = "conv"\nout = 4\nkernel = 9\n',
            "layers[0] (conv): kernel 9 with padding 0 does not fit its input (1, 8, 8)",
        ),
        (
            '[[layers]]\ntype = "pool"\n' * 4,
            "layers[3] (pool): 2x2 pooling needs an even height and width, its input is (1, 1, 1)",
        ),
        ("[loss]\ndesired_pattern = [0, 1, 1]\n", "desired_pattern has 3 steps; need neuron.T=5"),
    ],
)
def test_networks_that_cannot_be_built_are_refused_at_load(capsys, tmp_path, extra, fragment):
    config = tmp_path / "net.toml"
    layers = "" if extra.startswith("[loss]") else extra
    loss = extra if extra.startswith("[loss]") else ""
    config.write_text(
        'name = "x"\ndataset = "digits"\n[neuron]\nT = 5\ntau_m = 5.0\ntau_s = 3.0\n'
        f'{layers}[[layers]]\ntype = "dense"\nout = 10\n'
        f"[train]\nlr = 1e-3\nbatch_size = 8\nepochs = 1\n{loss}"
    )
    refused(capsys, ["train", "--config", config, "--out", tmp_path / "run"], "net.toml", fragment)


def test_training_stops_at_a_nan_loss_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    from toolchain.train import loop

    config = load_config(DIGITS).with_epochs(1)
    loop.train(config, tmp_path, dataset=digits, progress=False)
    keep = snapshot(tmp_path / "checkpoint.pt")
    real = loop.build_loss(config.loss, config.neuron)
    calls = []

    def nan_at_the_third_step(output, labels):
        calls.append(1)
        return real(output, labels) * (float("nan") if len(calls) == 3 else 1.0)

    loop_loss = loop.build_loss
    loop.build_loss = lambda *args: nan_at_the_third_step
    try:
        with pytest.raises(loop.TrainingError, match="epoch 2, step 3: the loss is nan"):
            loop.train(config.with_epochs(2), tmp_path, dataset=digits, resume=True)
    finally:
        loop.build_loss = loop_loss
    assert snapshot(tmp_path / "checkpoint.pt") == keep


def test_training_names_the_first_weight_that_turned_non_finite(digits, tmp_path, monkeypatch):
    from toolchain.train import loop

    real = loop.build_loss(load_config(DIGITS).loss, load_config(DIGITS).neuron)

    def nan_gradient(output, labels):
        output.register_hook(lambda grad: grad * float("nan"))
        return real(output, labels)

    monkeypatch.setattr(loop, "build_loss", lambda *args: nan_gradient)
    with pytest.raises(
        loop.TrainingError, match=r"epoch 1, step 1: layers.0.weight has non-finite"
    ):
        loop.train(load_config(DIGITS), tmp_path, dataset=digits, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()


# ------------------------------------------------------------------ files that must survive


def test_no_command_writes_over_its_input(capsys, workspace):
    checkpoint, fixed = workspace / "checkpoint.pt", workspace / "fixed.onnx"
    keep = snapshot(checkpoint, fixed)
    same = "is the input"
    refused(capsys, ["quantize", checkpoint, "--out", checkpoint], "checkpoint.pt", same, keep=keep)
    refused(capsys, ["export", checkpoint, "--out", checkpoint], same, keep=keep)
    refused(capsys, ["export", fixed, "--out", fixed], "fixed.onnx", same, keep=keep)
    args = ["deploy", fixed, "--dataset", "digits", "--limit", "1", "--out", fixed]
    refused(capsys, args, same, keep=keep)
    report = workspace / "model.report.json"
    report_keep = dict(keep)
    shutil.copy(checkpoint, report)  # the report would land on an input
    report_keep[report] = report.read_bytes()
    args = ["quantize", report, "--out", workspace / "model.onnx"]
    refused(capsys, args, "model.report.json", same, keep=report_keep)


def test_train_refuses_a_folder_that_holds_a_checkpoint_without_resume(capsys, digits, tmp_path):
    from toolchain.train.loop import train

    train(load_config(DIGITS).with_epochs(1), tmp_path, dataset=digits, progress=False)
    keep = snapshot(tmp_path / "checkpoint.pt")
    args = ["train", "--config", DIGITS, "--out", tmp_path, "--epochs", "1"]
    refused(capsys, args, str(tmp_path), "already holds checkpoint.pt", "--resume", keep=keep)
    nothing = ["train", "--config", DIGITS, "--out", tmp_path / "empty", "--resume"]
    refused(capsys, nothing, "holds no checkpoint.pt to resume")
    assert run([*args, "--overwrite", "--quiet"]) == 0
    assert Checkpoint.load(tmp_path / "checkpoint.pt").epoch == 1


def test_resuming_past_the_requested_total_says_so(capsys, digits, tmp_path):
    from toolchain.train.loop import train

    train(load_config(DIGITS).with_epochs(3), tmp_path, dataset=digits, progress=False)
    keep = snapshot(tmp_path / "checkpoint.pt")
    args = ["train", "--config", DIGITS, "--out", tmp_path, "--resume", "--epochs", "2"]
    refused(capsys, args, "already trained 3 epochs, past the requested total of 2", keep=keep)
    assert run([*args[:-1], "3", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 3


def test_a_save_removes_what_a_killed_save_left_behind(tmp_path):
    from toolchain.atomic import write_text

    dead = tmp_path / ".report.json.999999999.x1.tmp"  # no such process
    empty = tmp_path / ".report.json.abcdef.tmp"  # an older naming, without a process id
    alive = tmp_path / f".report.json.{os.getpid()}.y2.tmp"  # a writer still running
    other = tmp_path / ".other.json.999999999.z3.tmp"
    for path in (dead, empty, alive, other):
        path.write_bytes(b"")
    write_text(tmp_path / "report.json", "{}")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([alive.name, other.name, "report.json"])


# ------------------------------------------------------------------------- paths and numbers


@pytest.mark.parametrize(
    "command",
    [
        ["inspect", "{missing}"],
        ["simulate", "{missing}", "--dataset", "digits"],
        ["deploy", "{missing}", "--dataset", "digits"],
        ["compare", "{checkpoint}", "{missing}", "--dataset", "digits"],
        ["compare", "{missing}", "{fixed}", "--dataset", "digits"],
        ["export", "{missing}", "--out", "{tmp}/x.onnx"],
        ["quantize", "{missing}", "--out", "{tmp}/x.onnx"],
        ["train", "--config", "{missing}", "--out", "{tmp}/run"],
    ],
)
@pytest.mark.parametrize("kind", ["missing file", "folder"])
def test_missing_inputs_and_folders_given_as_inputs(capsys, workspace, tmp_path, command, kind):
    target = tmp_path / "nothing.onnx" if kind == "missing file" else tmp_path
    names = {"missing": target, "checkpoint": workspace / "checkpoint.pt", "tmp": tmp_path}
    names["fixed"] = workspace / "fixed.onnx"
    argv = [part.format(**names) for part in command]
    what = "not found" if kind == "missing file" else ("directory" if kind == "folder" else "")
    refused(capsys, argv, str(target), what)


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        (["export", "{fixed}", "--out", "{tmp}"], "is a folder; --out needs a file path"),
        (["quantize", "{checkpoint}", "--out", "{tmp}"], "is a folder; --out needs a file path"),
        (["export", "{fixed}", "--out", "{fixed}/x.onnx"], "fixed.onnx is a file, not a folder"),
        (["train", "--config", "examples/digits_mlp.toml", "--out", "{fixed}"], "is a file"),
        (
            ["compare", "{checkpoint}", "{fixed}", "--dataset", "digits", "--out", "{fixed}"],
            "is a file",
        ),
    ],
)
def test_outputs_where_a_folder_or_a_file_already_is(
    capsys, workspace, tmp_path, command, fragment
):
    names = {"fixed": workspace / "fixed.onnx", "checkpoint": workspace / "checkpoint.pt"}
    names["tmp"] = tmp_path
    argv = [part.format(**names) for part in command]
    refused(capsys, argv, fragment, keep=snapshot(names["fixed"], names["checkpoint"]))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: no unwritable folder here")
def test_an_unwritable_run_folder_is_found_before_training(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    refused(capsys, ["train", "--config", DIGITS, "--out", locked], "cannot write")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["simulate", "{fixed}", "--dataset", "digits", "--limit", "0"], "0 is below 1"),
        (["simulate", "{fixed}", "--dataset", "digits", "--limit", "-1"], "-1 is below 1"),
        (["deploy", "{fixed}", "--dataset", "digits", "--limit", "x"], "'x' is not an integer"),
        (["compare", "{checkpoint}", "{fixed}", "--dataset", "digits", "--limit", "0"], "below 1"),
        (["quantize", "{checkpoint}", "--out", "{tmp}/q.onnx", "--calibration", "0"], "below 1"),
        (["quantize", "{checkpoint}", "--out", "{tmp}/q.onnx", "--calibration", "-5"], "below"),
        (["quantize", "{checkpoint}", "--out", "{tmp}/q.onnx", "--finetune", "-1"], "below 0"),
        (["train", "--config", DIGITS, "--out", "{tmp}", "--epochs", "0"], "0 is below 1"),
    ],
)
def test_numbers_outside_their_range(capsys, workspace, tmp_path, argv, fragment):
    names = {"fixed": workspace / "fixed.onnx", "checkpoint": workspace / "checkpoint.pt"}
    names["tmp"] = tmp_path
    refused(capsys, [part.format(**names) for part in argv], fragment)


def test_a_non_utf8_config_and_a_binary_checkpoint(capsys, tmp_path):
    config = tmp_path / "latin1.toml"
    config.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    refused(capsys, ["train", "--config", config, "--out", tmp_path / "r"], "latin1.toml", "UTF-8")
    junk = tmp_path / "notes.pt"
    junk.write_bytes(b"PK\x03\x04 not really a zip archive")
    err = refused(capsys, ["quantize", junk, "--out", tmp_path / "q.onnx"], "notes.pt")
    assert "weights_only" not in err and "file an issue" not in err


# ------------------------------------------------------------------- damaged and mismatched


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda p: p.pop("config"), "damaged checkpoint, missing ['config']"),
        (lambda p: p.pop("model"), "missing ['model']"),
        (lambda p: p["model"].pop("layers.1.weight"), "missing tensors ['layers.1.weight']"),
        (
            lambda p: p["model"].update({"layers.2.weight": torch.zeros(1)}),
            "unexpected tensors ['layers.2.weight']",
        ),
        (
            lambda p: p["model"].update({"layers.0.weight": torch.zeros(200, 63)}),
            "'layers.0.weight' has shape (200, 63), its config needs (200, 64)",
        ),
        (lambda p: p.update(input_shape=[1, 28, 28]), "input shape (1, 28, 28)"),
        (lambda p: p["config"]["neuron"].update(T=0), "its config: neuron.T=0"),
    ],
)
def test_damaged_checkpoints_name_the_file_and_the_fault(capsys, workspace, change, fragment):
    bad = saved_variant(workspace, "damaged.pt", change)
    refused(capsys, ["export", bad, "--out", workspace / "x.onnx"], "damaged.pt", fragment)


def test_a_network_and_a_graph_of_different_data(capsys, workspace, tmp_path):
    mnist = load_config("examples/mnist_mlp.toml")
    from toolchain.train.loop import build_model

    model = build_model(mnist, (1, 28, 28))
    fake = tmp_path / "mnist.pt"
    Checkpoint(mnist, (1, 28, 28), 1, model.state_dict(), {}, [], torch.get_rng_state()).save(fake)
    fixed = workspace / "fixed.onnx"
    args = ["compare", fake, fixed, "--dataset", "digits"]
    refused(capsys, args, "mnist.pt", "trained on 'mnist', not on --dataset 'digits'")
    graph28 = tmp_path / "mnist-fixed.onnx"
    assert run(["quantize", fake, "--out", graph28, "--calibration", "20", "--quiet"]) == 0
    capsys.readouterr()
    args = ["simulate", graph28, "--dataset", "digits"]
    refused(capsys, args, "mnist-fixed.onnx", "takes images of shape (1, 28, 28)", "(1, 8, 8)")


def test_readers_go_by_content_not_by_suffix(capsys, workspace, tmp_path):
    disguised = tmp_path / "net.graph"
    shutil.copy(workspace / "fixed.onnx", disguised)
    assert run(["inspect", disguised, "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["fixed_point"] is True
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    refused(capsys, ["inspect", text], "notes.txt", "not a graph file", "ONNX graph (.onnx)")


def test_a_nan_threshold_in_an_onnx_file(capsys, workspace, tmp_path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(workspace / "fixed.onnx")
    lif = next(n for n in model.graph.node if n.op_type == "CubaLIF")
    for attribute in lif.attribute:
        if attribute.name == "threshold":
            attribute.f = float("nan")
        if attribute.name == "threshold_f64":
            attribute.t.CopyFrom(numpy_helper.from_array(np.array(np.nan), "threshold_f64"))
    onnx.save(model, tmp_path / "nan.onnx")
    refused(capsys, ["inspect", tmp_path / "nan.onnx"], "nan.onnx", "threshold=nan is not finite")


# ---------------------------------------------------------------------------------- JSON out


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--config", DIGITS, "--out", "{tmp}/run", "--epochs", "2"],
        ["quantize", "{checkpoint}", "--out", "{tmp}/q.onnx", "--finetune", "1"],
        ["simulate", "{fixed}", "--dataset", "digits", "--limit", "5"],
    ],
)
def test_json_is_one_strict_object_on_stdout_with_progress(capsys, workspace, tmp_path, argv):
    names = {"fixed": workspace / "fixed.onnx", "checkpoint": workspace / "checkpoint.pt"}
    names["tmp"] = tmp_path
    assert main([*(part.format(**names) for part in argv), "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert isinstance(result, dict) and out.count("\n") == 1


def test_strict_json_replaces_non_finite_numbers():
    from toolchain.cli import strict

    assert strict({"a": [1.0, float("nan")], "b": float("inf")}) == {"a": [1.0, None], "b": None}
