"""Hardening, round two (issue 22), through the real command line: device nodes and FIFOs are never
written through or read from, every input counts as an input, HDF5 files keep their data inside,
every option acts or is refused, one layout for saved spikes, work beyond this machine is refused
with its estimate, and no traceback. Each refusal is one line with exit status 2, naming the file,
key, node or value, and leaves every file as it was. (Killed runs: test_faults.py.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import h5py
import nir
import numpy as np
import onnx
import pytest
from cli_runs import DIGITS, refused, run, snapshot
from conftest import ROOT

from toolchain.cli import main

TINY_NET = ROOT / "tests/fixtures/lava_dl/tiny.net"
SHARED = ROOT.parent / "shared/reference/nir-paper"


def cli(*argv, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """The command in its own process (for what could block or needs signals)."""
    command = [sys.executable, "-m", "toolchain.cli", *map(str, argv)]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs
    )


@pytest.fixture
def inputs(tmp_path, digits) -> tuple[Path, Path]:
    """Three digits test images and their labels as the user's .npy files."""
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, digits.test.images[:3])
    np.save(y, digits.test.labels[:3])
    return x, y


# ------------------------------------------------------------ 1. devices and FIFOs, never through


def device_and_fifo(tmp_path: Path) -> list[Path]:
    """A FIFO, and a character device like /dev/null where root may make one, in tmp_path."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    nodes = [fifo]
    if os.geteuid() == 0:
        null = tmp_path / "null"
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        nodes.append(null)
    return nodes


@pytest.mark.parametrize(
    "command",
    [
        ["export", "{fixed}", "--out", "{target}"],
        ["simulate", "{fixed}", "--dataset", "digits", "--limit", "2", "--save-spikes", "{target}"],
        ["deploy", "{fixed}", "--dataset", "digits", "--limit", "2", "--out", "{target}"],
        ["quantize", "{checkpoint}", "--out", "{target}"],
    ],
)
def test_an_output_that_is_a_device_or_fifo_is_refused_and_kept(
    capsys, workspace, tmp_path, command
):
    for target in device_and_fifo(tmp_path):
        kind = stat.S_IFMT(target.lstat().st_mode)
        names = {"fixed": workspace / "fixed.onnx", "checkpoint": workspace / "checkpoint.pt"}
        argv = [part.format(target=target, **names) for part in command]
        words = "a FIFO" if target.name == "fifo" else "a character device"
        refused(capsys, argv, str(target), words, "only regular files")
        assert stat.S_IFMT(target.lstat().st_mode) == kind  # still what it was


@pytest.mark.parametrize(
    "command",
    [
        ["inspect", "{fifo}"],
        ["import", "{fifo}", "--out", "{tmp}/g.onnx"],
        ["simulate", "{fixed}", "--inputs", "{fifo}"],
        ["train", "--config", "{fifo}", "--out", "{tmp}/run"],
    ],
)
def test_an_input_that_is_a_fifo_is_refused_at_once(workspace, tmp_path, command):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    names = {"fifo": fifo, "fixed": workspace / "fixed.onnx", "tmp": tmp_path}
    done = cli(*[part.format(**names) for part in command], timeout=60)  # a read would block
    assert done.returncode == 2, done.stderr
    assert f"{fifo}: is a FIFO, not a regular file" in done.stderr
    assert "not found" not in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------ 2. every input is an input


@pytest.mark.parametrize(
    "command",
    [
        ["simulate", "{fixed}", "--inputs", "{x}", "--save-spikes", "{x}"],
        ["simulate", "{fixed}", "--inputs", "{x}", "--labels", "{y}", "--save-spikes", "{y}"],
        ["deploy", "{fixed}", "--inputs", "{x}", "--out", "{x}"],
        ["deploy", "{fixed}", "--inputs", "{x}", "--labels", "{y}", "--out", "{y}"],
    ],
)
def test_an_output_that_is_an_inputs_or_labels_file_is_refused(capsys, workspace, inputs, command):
    x, y = inputs
    argv = [part.format(fixed=workspace / "fixed.onnx", x=x, y=y) for part in command]
    refused(capsys, argv, "is the input", keep=snapshot(x, y))


# ------------------------------------------------------------ 5. HDF5 data stays in the file


def first_dataset(path: Path, name: str) -> str:
    found = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda key, item: found.append(key) if key.endswith(name) else None)
    return found[0]


def linked_away(path: Path, dataset: str, make_link) -> Path:
    """`path` with `dataset` replaced by what make_link(file, name, source) puts there."""
    source = path.parent / "elsewhere.h5"
    with h5py.File(path, "r") as f:
        data = f[dataset][()]
    with h5py.File(source, "w") as f:
        f["data"] = data
    with h5py.File(path, "a") as f:
        del f[dataset]
        make_link(f, dataset, source)
    return path


def external(f, name, source):
    f[name] = h5py.ExternalLink(str(source), "/data")


def to_passwd(f, name, source):
    f[name] = h5py.ExternalLink("/etc/passwd", "/data")


def virtual(f, name, source):
    with h5py.File(source, "r") as s:
        shape, dtype = s["data"].shape, s["data"].dtype
    layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
    layout[...] = h5py.VirtualSource(str(source), "data", shape=shape)
    f.create_virtual_dataset(name, layout)


def dangling(f, name, source):
    f[name] = h5py.SoftLink("/nowhere/weight")


@pytest.mark.parametrize("make_link", [external, to_passwd, virtual, dangling])
@pytest.mark.parametrize("original", [TINY_NET, SHARED / "lif_norse.nir"])
def test_hdf5_data_from_outside_the_file_is_refused_naming_the_dataset(
    capsys, tmp_path, original, make_link
):
    path = shutil.copy(original, tmp_path / original.name)
    dataset = first_dataset(Path(path), "weight")
    linked = linked_away(Path(path), dataset, make_link)
    keep = snapshot(linked)
    fragment = f"/{dataset}"
    refused(capsys, ["import", linked, "--out", tmp_path / "g.onnx"], str(linked), fragment)
    if linked.suffix == ".net":  # inspect reads graph files: netx, not NIR
        refused(capsys, ["inspect", linked], fragment, keep=keep)
    assert not (tmp_path / "g.onnx").exists()


# ------------------------------------------------------------ 6. every option acts or is refused


def test_options_that_would_be_ignored_are_refused(capsys, workspace, inputs, tmp_path):
    x, y = inputs
    checkpoint, fixed = workspace / "checkpoint.pt", workspace / "fixed.onnx"
    out = tmp_path / "q.onnx"
    refused(capsys, ["quantize", checkpoint, "--inputs", x, "--out", out], "takes no --inputs")
    refused(
        capsys,
        ["quantize", checkpoint, "--dataset", "mnist", "--out", out],
        "was trained on 'digits', not on --dataset 'mnist'",
    )
    refused(
        capsys,
        ["simulate", fixed, "--dataset", "digits", "--labels", y],
        "--labels go with --inputs",
    )
    refused(
        capsys,
        ["import", TINY_NET, "--from", "snntorch", "--dt", "0.5", "--out", out],
        "netx file",
        "takes no --from, --dt",
    )
    refused(
        capsys,
        ["export", fixed, "--format", "nir", "--out", tmp_path / "x.onnx"],
        "a NIR graph file is named *.nir",
    )
    assert not out.exists() and not (tmp_path / "x.onnx").exists()


def test_steps_act_on_a_netx_import(capsys, tmp_path):
    assert run(["import", TINY_NET, "--steps", "3", "--out", tmp_path / "t.onnx", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["T"] == 3


def test_levels_act_on_a_netx_import_with_input_neurons(capsys, tmp_path):
    """tiny.net's input neurons take the sample as their bias: SLAYER's blocks compute in units
    of 1 << 6, so a SLAYER-trained network wants round(64 x), `--levels 64`."""
    from graphs import unpacked

    from toolchain.io import load_onnx

    out = tmp_path / "t.onnx"
    assert run(["import", TINY_NET, "--levels", "64", "--out", out, "--quiet"]) == 0
    assert load_onnx(out).input.levels == 64
    binary = unpacked("netx_tutorial_mnist.net", tmp_path)  # no input layer: binary spikes
    refused(capsys, ["import", binary, "--levels", "64", "--out", out], "no input neurons")


# ------------------------------------------------------------ 7. one layout for saved spikes


def test_simulate_and_deploy_save_spikes_in_one_layout(capsys, workspace, tmp_path):
    fixed = workspace / "fixed.onnx"
    common = ["--dataset", "digits", "--limit", "3", "--quiet"]
    assert run(["simulate", fixed, *common, "--save-spikes", tmp_path / "s.npz"]) == 0
    assert run(["deploy", fixed, *common, "--out", tmp_path / "d.npz"]) == 0
    simulated, deployed = np.load(tmp_path / "s.npz"), np.load(tmp_path / "d.npz")
    steps = 5  # the digits network's T
    assert simulated["output_spikes"].shape == (3, steps, 10)
    np.testing.assert_array_equal(deployed["output_spikes"], simulated["output_spikes"])
    np.testing.assert_array_equal(deployed["predictions"], simulated["predictions"])


# ------------------------------------------------------------ 8. work beyond this machine


def with_metadata(source: Path, target: Path, key: str, value: str) -> Path:
    model = onnx.load(str(source))
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
    onnx.save(model, str(target))
    return target


def test_a_graph_of_huge_steps_is_refused(capsys, workspace, tmp_path, inputs):
    fixed = workspace / "fixed.onnx"
    huge = with_metadata(fixed, tmp_path / "huge.onnx", "time_steps", "100000000")
    x, _ = inputs
    refused(capsys, ["simulate", huge, "--inputs", x], "T=100000000", "1 .. 100000")
    args = ["import", TINY_NET, "--steps", "1000000000", "--out", tmp_path / "steps.onnx"]
    refused(capsys, args, "T=1000000000", "1 .. 100000")


def test_samples_beyond_this_machines_memory_are_refused_with_the_estimate(
    capsys, workspace, tmp_path, monkeypatch
):
    long = with_metadata(workspace / "fixed.onnx", tmp_path / "long.onnx", "time_steps", "100000")
    x = tmp_path / "many.npy"
    np.save(x, np.zeros((200000, 1, 8, 8), np.float32))  # 200000 x 10 x 100002 steps: 200 GB
    message = refused(capsys, ["simulate", long, "--inputs", x], "needs about", "available")
    assert "GB" in message
    refused(capsys, ["deploy", long, "--inputs", x, "--out", tmp_path / "d.npz"], "needs about")
    monkeypatch.setenv("SNN_DEPLOY_MEMORY_BYTES", "1000000")  # a machine of 1 MB
    refused(capsys, ["simulate", workspace / "fixed.onnx", "--inputs", x], "needs about", "1 MB")


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("T = 5", "T = 100000000", "neuron.T=100000000: need an integer in 1 .. 100000"),
        ("T = 5", "T = 100000", "needs about"),
        ("out = 200", "out = 3000000", "needs about"),
        ("epochs = 40", "epochs = 40\naverage_epochs = 100000000", "average_epochs=100000000"),
        ("seed = 3", "seed = 99999999999999999999", "seed=99999999999999999999"),
    ],
)
def test_configs_asking_for_the_impossible_are_refused(capsys, tmp_path, old, new, fragment):
    text = Path(DIGITS).read_text()
    assert old in text, old
    config = tmp_path / "big.toml"
    config.write_text(text.replace(old, new, 1))
    refused(capsys, ["train", "--config", config, "--out", tmp_path / "run"], fragment)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_a_npy_header_promising_more_than_its_file_is_refused(capsys, workspace, tmp_path):
    lying = tmp_path / "huge.npy"
    with lying.open("wb") as handle:
        header = {"descr": "<f4", "fortran_order": False, "shape": (10**10, 1, 8, 8)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(bytes(4096))
    refused(capsys, ["simulate", workspace / "fixed.onnx", "--inputs", lying], "truncated")


def test_more_processes_than_cores_need_force(capsys, workspace, tmp_path):
    many = str(4 * (os.cpu_count() or 1))
    args = ["train", "--config", DIGITS, "--out", tmp_path / "run", "--nproc", many]
    refused(capsys, args, f"--nproc {many}", "cores", "--force")
    args = ["simulate", workspace / "fixed.onnx", "--dataset", "digits", "--workers", many]
    refused(capsys, args, f"--workers {many}", "--force")


# ----------------------------------------------------- 9 and 10. no traceback, the right words


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="needs a torch without a CUDA device"
)
def test_cuda_on_a_cpu_only_torch(capsys, tmp_path):
    args = ["train", "--config", DIGITS, "--out", tmp_path / "run", "--device", "cuda"]
    refused(capsys, args, "--device cuda", "no CUDA device")


def small_nir(tmp_path: Path, nodes: dict, edges: list, metadata: dict | None = None) -> Path:
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False, metadata=metadata or {})
    nir.write(tmp_path / "g.nir", graph)
    return tmp_path / "g.nir"


def dense_lif(threshold: float) -> dict:
    return {
        "input": nir.Input(input_type={"input": np.array([3])}),
        "fc": nir.Linear(np.ones((2, 3))),
        "lif": nir.LIF(np.full(2, 1e-3), np.ones(2), np.zeros(2), np.full(2, threshold)),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }


CHAIN = [("input", "fc"), ("fc", "lif"), ("lif", "output")]


def test_nir_files_are_refused_by_what_is_wrong(capsys, tmp_path):
    out = ["--out", tmp_path / "g.onnx", "--from", "snntorch"]
    for threshold in (0.0, float("nan")):
        path = small_nir(tmp_path, dense_lif(threshold), CHAIN)
        refused(capsys, ["import", path, *out], "node 'lif': v_threshold", "> 0")
    path = small_nir(tmp_path, dense_lif(1.0), [*CHAIN, ("lif", "ghost")])
    refused(capsys, ["import", path, *out], "edge 'lif' -> 'ghost'", "no node 'ghost'")
    recorded = {"producer": "snn-deploy", "dt": "fast"}
    path = small_nir(tmp_path, dense_lif(1.0), CHAIN, recorded)
    refused(capsys, ["import", path, "--out", tmp_path / "g.onnx"], "metadata dt='fast'")
    braille = SHARED / "braille_noDelay_noBias_subtract.nir"
    refused(capsys, ["import", braille, "--from", "sinabs", *out[:2]], "CubaLIF", "--from")
    missing = tmp_path / "missing.nir"
    refused(capsys, ["import", missing, *out[:2]], f"{missing}: not found")


@pytest.mark.parametrize(
    ("stored", "fragment"),
    [
        (np.array([np.void(b"opaque")] * 4), "weight holds |V6"),
        (np.full((2, 2), np.nan), "weight holds NaN"),
    ],
)
def test_netx_weights_that_are_not_numbers_are_named(capsys, tmp_path, stored, fragment):
    path = Path(shutil.copy(TINY_NET, tmp_path / "tiny.net"))
    with h5py.File(path, "a") as f:
        del f["layer/1/weight"]
        f["layer/1/weight"] = stored
    refused(capsys, ["import", path, "--out", tmp_path / "g.onnx"], "layer 1", fragment)


def test_unreadable_inputs_and_outputs_say_what_they_are(capsys, workspace, tmp_path):
    fixed = workspace / "fixed.onnx"
    (tmp_path / "empty.npy").write_bytes(b"")
    refused(capsys, ["simulate", fixed, "--inputs", tmp_path / "empty.npy"], "not a readable")
    np.savez(tmp_path / "a.npz", x=np.zeros((2, 1, 8, 8)))
    refused(capsys, ["simulate", fixed, "--inputs", tmp_path / "a.npz"], ".npz archive", ": x")
    refused(capsys, ["export", fixed, "--out", "/proc/x.onnx"], "/proc/x.onnx", "cannot create")


def test_netx_export_of_a_graph_not_quantised_for_it_says_what_to_do(capsys, workspace, tmp_path):
    args = ["export", workspace / "fixed.onnx", "--format", "netx", "--out", tmp_path / "n.net"]
    if run(args) == 0:  # this network happens to need no dense exponent
        pytest.skip("the digits network's dense exponents are all 0")
    assert "snn-deploy quantize ... --netx" in capsys.readouterr().err


def interrupted(argv: list, after_s: float) -> subprocess.CompletedProcess:
    """Runs the command as a terminal would, and sends its process group Ctrl-C."""
    command = [sys.executable, "-m", "toolchain.cli", *map(str, argv)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a shell runs background jobs with SIGINT ignored, which Python then keeps
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(after_s)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.mark.parametrize("after_s", [0.3, 0.8])  # the interpreter itself starts in ~0.05 s
def test_ctrl_c_while_starting_is_one_line(workspace, after_s):
    done = interrupted(["inspect", workspace / "fixed.onnx"], after_s)
    if done.returncode == 0:
        pytest.skip("finished before the interrupt")
    assert done.returncode == 130 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().endswith("interrupted")


def test_ctrl_c_while_training_in_two_processes_is_one_line(tmp_path):
    args = ["train", "--config", DIGITS, "--out", tmp_path, "--nproc", "2", "--epochs", "500"]
    done = interrupted([*args, "--quiet", "--force"], 12.0)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr


# ------------------------------------------------------------ 11. one training run per folder


def test_a_second_training_run_into_the_same_folder_is_refused(capsys, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--config", DIGITS, "--out", out, "--epochs", "500", "--quiet"]
    first = subprocess.Popen(
        [sys.executable, "-m", "toolchain.cli", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        lock = out / ".train.lock"
        deadline = time.monotonic() + 60
        while not (lock.is_file() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, first.stderr.read().decode()
        refused(capsys, args, str(out), f"another training run (process {first.pid})")
    finally:
        first.kill()
        first.wait()
    assert main([str(a) for a in [*args[:-3], "--epochs", "1", "--overwrite", "--quiet"]]) == 0
