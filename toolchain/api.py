"""The Python API: snn-deploy's commands as functions that return objects instead of printing,
for notebooks and scripts. Errors are the commands' typed errors (`toolchain.errors.UserError`
and its kinds: `GraphError`, `ConfigError`, `DatasetError`, ...), with the same messages.

    >>> from toolchain import api
    >>> digits = api.dataset("digits")
    >>> run = api.train("examples/digits_mlp.toml", "runs/api", overwrite=True)
    >>> fixed = api.quantize(run.checkpoint, digits).graph
    >>> api.compare(run.checkpoint, fixed, digits).fixed_accuracy > 0.95
    True

Models and graphs are given as objects or as paths: a training checkpoint (`.pt`), a graph file
(ONNX, lava-dl netx), and data as a `Dataset` (its test split; calibration from its training
split), a dataset's name, or an array of inputs (N, C, H, W) or (N, T, C, H, W) in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from toolchain.data.datasets import Dataset, Split, load_dataset
from toolchain.io import FORMATS, Format, is_checkpoint, named_for, read_graph
from toolchain.ir import Graph
from toolchain.ir.lowering import lower
from toolchain.paths import PathError
from toolchain.train.config import ConfigError

if TYPE_CHECKING:
    from quantize.pipeline import QuantizationResult
    from targets.loihi2.simulator import SimulationResult
    from toolchain.ir.float_runner import FloatResult
    from toolchain.pipeline import Deployment
    from toolchain.report.chip_plan import ChipPlan
    from toolchain.report.compare import Comparison
    from toolchain.train.checkpoint import Checkpoint
    from toolchain.train.loop import TrainResult
    from toolchain.train.network import SpikingNetwork

PathLike = str | Path
Data = Dataset | str | np.ndarray


def dataset(name: str = "digits", data_dir: PathLike | None = None) -> Dataset:
    """A dataset by name: "digits" (built in) or "mnist" (from `data_dir`, `$SNN_DEPLOY_MNIST`
    or ../shared/datasets/mnist).

    >>> api.dataset("digits").test.images.shape
    (450, 1, 8, 8)
    """
    return load_dataset(name, data_dir)


def train(
    config: PathLike,
    out: PathLike,
    *,
    epochs: int | None = None,
    nproc: int = 1,
    data_dir: PathLike | None = None,
    device: str = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> TrainResult:
    """Trains a TOML config into the folder `out` (`out/checkpoint.pt`), as `snn-deploy train`:
    `epochs` replaces the config's; `nproc` processes on this machine split every batch; a folder
    holding a checkpoint is continued (`resume`) or started again (`overwrite`).

    >>> run = api.train("examples/digits_mlp.toml", "runs/api", overwrite=True)
    >>> run.test_accuracy > 0.95, run.checkpoint.name
    (True, 'checkpoint.pt')
    """
    from toolchain.train.config import load_config
    from toolchain.train.launch import launch

    loaded = load_config(Path(config))
    if epochs is not None:
        loaded = loaded.with_epochs(epochs)
    return launch(
        loaded,
        Path(out),
        nproc=nproc,
        device=device,
        data_dir=data_dir,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
    )


def load(path: PathLike) -> Graph:
    """The Graph of a file: a checkpoint's float graph, an ONNX graph or a lava-dl netx file.

    >>> api.load("examples/pretrained/mnist_cnn/fixed.onnx").is_fixed
    True
    """
    return read_graph(path)


def save(graph: Graph, path: PathLike, format: str | None = None) -> Path:
    """Writes the graph atomically, as `snn-deploy export`, in the format its name says (.onnx;
    .net or .h5: lava-dl netx; .nir) or `format` ("onnx", "netx", "nir"); returns the path.
    netx holds a lowered fixed-point graph.

    >>> fixed = api.load("examples/pretrained/mnist_cnn/fixed.onnx")
    >>> api.save(fixed, "runs/api/cnn.onnx").name, api.save(fixed, "runs/api/cnn.net").name
    ('cnn.onnx', 'cnn.net')
    """
    path = Path(path)
    fmt = _written_format(path, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt.write(graph, path)
    return path


def import_nir(path: PathLike, library: str = "nir", **options: object) -> Graph:
    """The float Graph of a NIR file read with its exporter's conventions, as `snn-deploy
    import --from LIBRARY` (library: nir, snntorch, norse, sinabs, spikingjelly, rockpool;
    options: dt, reset, max_spikes, steps, levels).

    >>> graph = api.import_nir("../shared/reference/nir-paper/cnn_sinabs.nir", "sinabs")
    >>> len(graph.populations)
    5
    """
    from toolchain.io.nir_read import read_nir

    return read_nir(path, convention=library, **options)


def import_netx(path: PathLike, *, steps: int | None = None, levels: int | None = None) -> Graph:
    """The fixed-point Graph of a lava-dl netx file (.net/.h5, from SLAYER's `export_hdf5`), as
    `snn-deploy import`; `steps`: time steps per sample; `levels`: the input's grey levels.

    >>> fixed = api.load("examples/pretrained/mnist_cnn/fixed.onnx")
    >>> netx = api.import_netx(api.save(fixed, "runs/api/cnn.net"))
    >>> netx.is_fixed, netx.T == fixed.T
    (True, True)
    """
    from toolchain.io.netx_read import read_netx_graph

    return read_netx_graph(path, steps=steps, levels=levels)


def quantize(
    model: PathLike | Graph | Checkpoint,
    data: Data = "digits",
    *,
    labels: np.ndarray | None = None,
    calibration: int = 1000,
    finetune: int = 0,
    auto: bool = False,
    levels: int | None = None,
    headroom: float | None = None,
    netx: bool = False,
    backend: str = "numpy",
    workers: int = 1,
    progress: bool = False,
) -> QuantizationResult:
    """Loihi's integers for a checkpoint (a path or loaded) or a float graph, as `snn-deploy
    quantize`: the result
    has the fixed-point `graph`, the `report` per layer and the accuracies. A checkpoint
    calibrates on its own dataset's training images; a float graph on `data` (a dataset, or
    inputs whose first `calibration` calibrate, with `labels` for accuracies). `backend`: the
    simulator of fine-tuning's forward pass; `workers`: processes for calibration and simulation.

    >>> run = api.train("examples/digits_mlp.toml", "runs/api", overwrite=True)
    >>> result = api.quantize(run.checkpoint, "digits", calibration=300)
    >>> result.graph.is_fixed, result.fixed_accuracy > 0.95
    (True, True)
    """
    from quantize.auto import Options
    from quantize.pipeline import calibration_images, post_training, quantize_checkpoint
    from toolchain.train.checkpoint import Checkpoint

    given = {"headroom": headroom, "levels": levels}
    options = Options(**{key: value for key, value in given.items() if value is not None})
    if not isinstance(model, Graph | Checkpoint) and is_checkpoint(model):
        model = Checkpoint.load(model)
    if isinstance(model, Checkpoint):
        trained_on = data if isinstance(data, Dataset) else load_dataset(model.config.dataset)
        return quantize_checkpoint(
            model,
            trained_on,
            calibration=calibration,
            finetune_epochs=finetune,
            progress=progress,
            netx=netx,
            workers=workers,
            options=options,
            auto=auto,
            backend=backend,
        )
    graph = lower(_graph(model))
    if isinstance(data, np.ndarray):
        images, test, test_labels = data[:calibration], data, labels
    else:
        split = _dataset(data)
        images = calibration_images(split.train, calibration, seed=0)
        test, test_labels = split.test.images, split.test.labels
    return post_training(
        graph,
        images,
        test,
        test_labels,
        netx=netx,
        workers=workers,
        options=options,
        auto=auto,
    )


def simulate(
    graph: PathLike | Graph,
    inputs: Data,
    *,
    backend: str = "numpy",
    device: str = "cpu",
    workers: int = 1,
    progress: bool = False,
) -> SimulationResult | FloatResult:
    """Runs a graph on inputs (or a dataset's test images), as `snn-deploy simulate`: a
    fixed-point graph bit-accurately (`SimulationResult`: output spikes, predictions, per-layer
    counts; `backend` "torch" on `device`), a float graph in PyTorch (`FloatResult`).

    >>> result = api.simulate("examples/pretrained/mnist_cnn/fixed.onnx", "mnist")
    >>> float((result.predictions == api.dataset("mnist").test.labels).mean())
    0.9945
    """
    graph = _graph(graph)
    images = _inputs(inputs)
    if graph.is_fixed:
        from targets.loihi2.simulator import simulate as run_fixed

        options = {"backend": backend, "device": device, "workers": workers}
        return run_fixed(graph, images, progress=progress, **options)
    from toolchain.ir.float_runner import run_float

    return run_float(graph, images, workers=workers)


def compare(
    model: PathLike | Graph | SpikingNetwork,
    graph: PathLike | Graph,
    data: Data,
    *,
    labels: np.ndarray | None = None,
    budget_samples: int = 1000,
    plots: PathLike | None = None,
    workers: int = 1,
    progress: bool = False,
) -> Comparison:
    """The float network against its fixed-point graph on a dataset's test split (or inputs with
    `labels`), as `snn-deploy compare`: accuracies, per-layer agreement, the first divergences
    (`.divergences`) and the error budget (`.budget`); with `plots`, the report's PNGs
    (layers.png, raster.png, budget.png) written into that folder, their paths in `.plots`.

    >>> run = api.train("examples/digits_mlp.toml", "runs/api", overwrite=True)
    >>> fixed = api.quantize(run.checkpoint, "digits").graph
    >>> result = api.compare(run.checkpoint, fixed, "digits", budget_samples=100)
    >>> result.samples, result.budget.ranking()[0]
    (450, 'weights')
    """
    from toolchain.report.compare import compare as compare_runs

    floating = _float_model(model)
    fixed = _graph(graph)
    if isinstance(data, np.ndarray):
        if labels is None:
            raise ConfigError("compare reports accuracies: give `labels` for the inputs")
        split = Split(data, labels)
    else:
        split = _dataset(data).test
    result, raster = compare_runs(
        floating,
        fixed,
        split,
        budget_samples=budget_samples,
        workers=workers,
        progress=progress,
    )
    if plots is not None:
        from toolchain.report.plots import plot_comparison

        Path(plots).mkdir(parents=True, exist_ok=True)
        result.plots = plot_comparison(result, raster, Path(plots))
    return result


def plan(graph: PathLike | Graph, inputs: Data | None = None) -> ChipPlan:
    """Will the fixed-point graph fit Loihi 2, on how many cores and chips, at what cost (with
    activity counted on `inputs`), as `snn-deploy plan`.

    >>> chip = api.plan("examples/pretrained/mnist_cnn/fixed.onnx")
    >>> chip.fits, chip.placed.cores > 0
    (True, True)
    """
    from toolchain.report.chip_plan import chip_plan_of

    return chip_plan_of(_graph(graph), None if inputs is None else _inputs(inputs))


def deploy(
    graph: PathLike | Graph,
    inputs: Data,
    *,
    target: str = "lava-sim",
    workers: int = 1,
    labels: np.ndarray | None = None,
    save: PathLike | None = None,
    progress: bool = False,
) -> Deployment:
    """Runs the fixed-point graph on Lava (`target` "lava-sim": Lava's bit-accurate CPU
    simulation of Loihi 2; "loihi": the chip) and the reference simulator on the same inputs,
    compared spike for spike, as `snn-deploy deploy`; with `save`, Lava's output spikes,
    predictions and the `labels` written there (.npz).

    >>> images = api.dataset("mnist").test.images[:4]
    >>> api.deploy("examples/pretrained/mnist_cnn/fixed.onnx", images).matches
    True
    """
    from toolchain.pipeline import deploy_and_verify

    return deploy_and_verify(
        _graph(graph),
        _inputs(inputs),
        target=target,
        workers=workers,
        progress=progress,
        save=None if save is None else Path(save),
        labels=labels,
    )


def _written_format(path: Path, key: str | None) -> Format:
    """The writable format `key` names (the path named as it), else the one the path's name says."""
    writable = [fmt for fmt in FORMATS if fmt.write is not None]
    if key is None:
        named = [fmt for fmt in writable if path.suffix.lower() in fmt.suffixes]
        if not named:
            names = ", ".join(f"{fmt.name} (*{' or *'.join(fmt.suffixes)})" for fmt in writable)
            raise PathError(f"{path}: its name says no format save writes; name it as {names}")
        return named[0]
    named = [fmt for fmt in writable if fmt.key == key]
    if not named:
        keys = ", ".join(fmt.key for fmt in writable)
        raise ConfigError(f"format {key!r}: not one save writes; accepted: {keys}")
    named_for(path, named[0])
    return named[0]


def _graph(graph: PathLike | Graph) -> Graph:
    return graph if isinstance(graph, Graph) else read_graph(graph)


def _dataset(data: Dataset | str) -> Dataset:
    return data if isinstance(data, Dataset) else load_dataset(data)


def _inputs(data: Data) -> np.ndarray:
    """Inputs as an array: given, or a dataset's test images."""
    return data if isinstance(data, np.ndarray) else _dataset(data).test.images


def _float_model(model: PathLike | Graph | SpikingNetwork) -> Graph | SpikingNetwork:
    """A trained network (from a checkpoint) or a float graph."""
    if not isinstance(model, str | Path):
        return model
    if is_checkpoint(model):
        from toolchain.train.checkpoint import Checkpoint
        from toolchain.train.loop import model_from_checkpoint

        return model_from_checkpoint(Checkpoint.load(model))
    return read_graph(model)
