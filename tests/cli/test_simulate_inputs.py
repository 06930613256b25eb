"""`simulate` and `quantize` on a user's own inputs (`--inputs X.npy --labels Y.npy`)."""

import json

import numpy as np
import pytest
import torch

from quantize.pipeline import quantize_checkpoint
from quantize.scales import quantize_graph
from targets.loihi2.simulator import simulate
from targets.loihi2.timing import population_window
from toolchain.cli import main
from toolchain.io import read_graph, save_onnx
from toolchain.ir.lowering import lower
from toolchain.train.loop import model_from_checkpoint

SAMPLES = 40


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits, digits_run, digits_checkpoint):
    """The trained digits checkpoint, its fixed-point graph, and the first test images."""
    folder = tmp_path_factory.mktemp("inputs")
    fixed = quantize_checkpoint(digits_checkpoint, digits, calibration=300, progress=False).graph
    save_onnx(fixed, folder / "fixed.onnx")
    np.save(folder / "x.npy", digits.test.images[:SAMPLES])
    np.save(folder / "y.npy", digits.test.labels[:SAMPLES])
    return {
        "checkpoint": digits_run.checkpoint,
        "fixed": folder / "fixed.onnx",
        "graph": fixed,
        "folder": folder,
    }


def run(capsys, *args) -> tuple[int, dict]:
    code = main(["simulate", *map(str, args), "--json", "--quiet"])
    out = capsys.readouterr().out
    return code, json.loads(out) if code == 0 else {}


def test_fixed_graph_spikes_are_the_simulators_on_the_float_time_axis(files, digits, capsys):
    f = files["folder"]
    code, result = run(
        capsys,
        files["fixed"],
        "--inputs",
        f / "x.npy",
        "--labels",
        f / "y.npy",
        "--save-spikes",
        f / "fixed.npz",
    )
    assert code == 0 and result["kind"] == "fixed-point" and result["samples"] == SAMPLES
    expected = simulate(files["graph"], digits.test.images[:SAMPLES])
    saved = np.load(f / "fixed.npz")
    window = expected.output_window_spikes  # (N, 10, T)
    assert saved["output_spikes"].shape == (SAMPLES, files["graph"].T, 10)
    assert np.array_equal(saved["output_spikes"], window.transpose(0, 2, 1))
    assert np.array_equal(saved["predictions"], expected.predictions)
    labels = digits.test.labels[:SAMPLES]
    assert result["accuracy"] == np.mean(expected.predictions == labels)


def test_float_checkpoint_gives_the_trained_models_spikes(files, digits, digits_checkpoint, capsys):
    f = files["folder"]
    code, result = run(
        capsys, files["checkpoint"], "--inputs", f / "x.npy", "--save-spikes", f / "float.npz"
    )
    assert code == 0 and result["kind"] == "float" and "accuracy" not in result
    model = model_from_checkpoint(digits_checkpoint)
    with torch.no_grad():
        psp, spikes = model(torch.from_numpy(digits.test.images[:SAMPLES]), return_spikes=True)
    saved = np.load(f / "float.npz")
    assert np.array_equal(saved["output_spikes"], spikes[-1].permute(0, 2, 1).numpy())
    assert np.array_equal(saved["predictions"], model.predict(psp).numpy())


def test_per_step_inputs_are_read_along_time(files, digits, capsys):
    """Repeating the image in every frame is the static input; a frame changed at step 2 leaves
    the output of steps 0 and 1 as it was (the float model is causal) and changes a later one."""
    f, images = files["folder"], digits.test.images[:SAMPLES]
    T = files["graph"].T
    frames = np.repeat(images[:, None], T, axis=1)
    np.save(f / "frames.npy", frames)
    changed = frames.copy()
    changed[:, 2] = 1.0 - changed[:, 2]
    np.save(f / "changed.npy", changed)
    outputs = {}
    for name in ("x", "frames", "changed"):
        assert (
            run(
                capsys,
                files["checkpoint"],
                "--inputs",
                f / f"{name}.npy",
                "--save-spikes",
                f / f"{name}.npz",
            )[0]
            == 0
        )
        outputs[name] = np.load(f / f"{name}.npz")["output_spikes"]
    assert np.array_equal(outputs["x"], outputs["frames"])
    assert np.array_equal(outputs["changed"][:, :2], outputs["x"][:, :2])
    assert not np.array_equal(outputs["changed"][:, 2:], outputs["x"][:, 2:])


def test_simulate_reports_every_layers_spikes(files, digits, capsys):
    """Spikes per sample and rate of each population in its sample's T steps, fixed and float."""
    f, graph = files["folder"], files["graph"]
    code, result = run(capsys, files["fixed"], "--inputs", f / "x.npy")
    assert code == 0
    reference = simulate(graph, digits.test.images[:SAMPLES], record=True)
    shapes = dict(zip((n.name for n in graph.nodes), graph.shapes(), strict=True))
    for index, (layer, population) in enumerate(
        zip(result["layers"], graph.populations, strict=True)
    ):
        window = reference.spikes[population.name][..., population_window(graph, index)]
        neurons = int(np.prod(shapes[population.name]))
        assert layer == {
            "name": population.name,
            "neurons": neurons,
            "spikes_per_sample": window.sum() / SAMPLES,
            "rate": window.sum() / (SAMPLES * neurons * graph.T),
        }
        assert 0 < layer["rate"] < 1
    code, floats = run(capsys, files["checkpoint"], "--inputs", f / "x.npy")
    assert code == 0 and [layer["neurons"] for layer in floats["layers"]] == [200, 10]


def test_a_fixed_graph_takes_per_step_inputs(files, digits, capsys):
    """Frames that repeat the image give the static input's spikes; a frame changed at step 2
    leaves the output window's first two steps as they were and changes a later one."""
    f, images, graph = files["folder"], digits.test.images[:SAMPLES], files["graph"]
    frames = np.repeat(images[:, None], graph.T, axis=1)
    changed = frames.copy()
    changed[:, 2] = 1.0 - changed[:, 2]
    static = simulate(graph, images).output_window_spikes
    np.testing.assert_array_equal(simulate(graph, frames).output_window_spikes, static)
    moved = simulate(graph, changed).output_window_spikes
    np.testing.assert_array_equal(moved[..., :2], static[..., :2])
    assert not np.array_equal(moved[..., 2:], static[..., 2:])
    np.save(f / "changed.npy", changed)
    code, result = run(
        capsys,
        files["fixed"],
        "--inputs",
        f / "changed.npy",
        "--save-spikes",
        f / "changed-fixed.npz",
    )
    assert code == 0 and result["kind"] == "fixed-point"
    saved = np.load(f / "changed-fixed.npz")["output_spikes"]
    np.testing.assert_array_equal(saved, moved.transpose(0, 2, 1))


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda d: np.zeros((3, 7)), ("--inputs", "bad.npy"), r"shape \(3, 7\); this graph takes"),
        (lambda d: np.full((2, 1, 8, 8), np.nan), ("--inputs", "bad.npy"), "NaN"),
        (lambda d: np.array(["a"]), ("--inputs", "bad.npy"), "need numbers"),
        (lambda d: d.test.images[:3] * 2, ("--inputs", "bad.npy"), r"takes inputs in \[0, 1\]"),
        (
            lambda d: np.array([0, 1, 10]),
            ("--inputs", "x3.npy", "--labels", "bad.npy"),
            r"labels must lie in 0 .. 9",
        ),
        (
            lambda d: np.array([0, 1]),
            ("--inputs", "x3.npy", "--labels", "bad.npy"),
            r"need \(3,\), one label per input",
        ),
        (lambda d: np.zeros(1), ("--inputs", "missing.npy"), "missing.npy: not found"),
        (lambda d: np.zeros(1), ("--inputs", "x3.npy", "--dataset", "digits"), "either"),
        (lambda d: np.zeros(1), (), "either --dataset NAME or --inputs"),
    ],
)
def test_bad_inputs_are_refused_in_one_line(files, digits, tmp_path, capsys, make, args, message):
    np.save(tmp_path / "bad.npy", make(digits))
    np.save(tmp_path / "x3.npy", digits.test.images[:3])
    args = [str(tmp_path / a) if a.endswith(".npy") else a for a in args]
    assert main(["simulate", str(files["fixed"]), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("snn-deploy simulate: error:"), err
    assert __import__("re").search(message, err), err


def test_quantize_a_float_graph_on_your_own_inputs(files, digits, capsys):
    """Calibration on the first --calibration inputs; accuracies (with --labels) and the
    float-vs-fixed agreement are those `simulate` measures on the same inputs."""
    f = files["folder"]
    assert main(["export", str(files["checkpoint"]), "--out", str(f / "float.onnx")]) == 0
    capsys.readouterr()
    args = ["quantize", str(f / "float.onnx"), "--inputs", str(f / "x.npy"), "--calibration", "30"]
    assert main([*args, "--labels", str(f / "y.npy"), "--out", str(f / "q.onnx"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    runs = {}
    for name in ("float.onnx", "q.onnx"):
        code, runs[name] = run(capsys, f / name, "--inputs", f / "x.npy", "--labels", f / "y.npy",
                               "--save-spikes", f / f"{name}.npz")  # fmt: skip
        assert code == 0
    assert report["float_accuracy"] == runs["float.onnx"]["accuracy"]
    assert report["fixed_accuracy"] == runs["q.onnx"]["accuracy"]
    preds = [np.load(f / f"{name}.npz")["predictions"] for name in ("float.onnx", "q.onnx")]
    assert report["prediction_agreement"] == np.mean(preds[0] == preds[1])
    fixed = read_graph(f / "q.onnx")
    calibrated = quantize_graph(lower(read_graph(f / "float.onnx")), digits.test.images[:30])[0]
    assert [p.vth for p in fixed.populations] == [p.vth for p in calibrated.populations]
    assert main([*args, "--out", str(f / "u.onnx"), "--json"]) == 0
    unlabelled = json.loads(capsys.readouterr().out)
    assert unlabelled["float_accuracy"] is None and unlabelled["fixed_accuracy"] is None
    assert unlabelled["prediction_agreement"] == report["prediction_agreement"]


@pytest.mark.parametrize("command", ["compare", "deploy"])
def test_inputs_a_fixed_graph_cannot_take_are_refused_before_any_run(
    files, tmp_path, capsys, command
):
    """Values outside [0, 1] are no graded spikes: refused in one line, nothing written."""
    np.save(tmp_path / "big.npy", np.full((3, 1, 8, 8), 2.0))
    np.save(tmp_path / "y.npy", np.zeros(3, int))
    first = [str(files["checkpoint"])] if command == "compare" else []
    out = tmp_path / ("cmp" if command == "compare" else "out.npz")
    args = [command, *first, str(files["fixed"]), "--inputs", str(tmp_path / "big.npy")]
    args += ["--labels", str(tmp_path / "y.npy"), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1 and "big.npy: a fixed-point graph takes inputs in [0, 1]" in err
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "{ckpt}", "{fixed}", "--inputs", "{x}"], "give --labels Y.npy too"),
        (["compare", "{fixed}", "{fixed}", "--dataset", "digits"], "compare needs the float"),
        (
            ["quantize", "{float}", "--inputs", "{x}", "--dataset", "digits", "--out", "{q}"],
            "a float graph is quantised on --dataset NAME",
        ),
        (["quantize", "{float}", "--out", "{q}"], "a float graph is quantised on --dataset NAME"),
    ],
)
def test_commands_on_own_inputs_refuse_what_they_cannot_do(files, tmp_path, capsys, argv, message):
    f = files["folder"]
    if not (f / "float.onnx").exists():
        assert main(["export", str(files["checkpoint"]), "--out", str(f / "float.onnx")]) == 0
    names = {
        "ckpt": files["checkpoint"],
        "fixed": files["fixed"],
        "float": f / "float.onnx",
        "x": f / "x.npy",
        "q": tmp_path / "q.onnx",
    }
    capsys.readouterr()
    assert main([part.format(**names) for part in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "q.onnx").exists()
