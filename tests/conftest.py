"""Shared fixtures: real data and one trained digits network for the whole session."""

import shutil
from pathlib import Path

import pytest
from conformance_records import record

from toolchain.data.datasets import load_digits, mnist_dir
from toolchain.train.checkpoint import Checkpoint
from toolchain.train.config import load_config
from toolchain.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = mnist_dir()


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory, digits):
    """The shipped digits MLP config, trained to the end (about 5 s)."""
    out = tmp_path_factory.mktemp("digits-run")
    return train(
        load_config(ROOT / "examples" / "digits_mlp.toml"), out, dataset=digits, progress=False
    )


@pytest.fixture(scope="session")
def digits_checkpoint(digits_run) -> Checkpoint:
    return Checkpoint.load(digits_run.checkpoint)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, digits_run):
    """A copy of the trained digits checkpoint and its fixed-point graph, to be abused."""
    from toolchain.cli import main

    root = tmp_path_factory.mktemp("bad-input")
    checkpoint = root / "checkpoint.pt"
    shutil.copy(digits_run.checkpoint, checkpoint)
    fixed = root / "fixed.onnx"
    assert main(["quantize", str(checkpoint), "--out", str(fixed), "--quiet"]) == 0
    return root


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Each conformance-marked test's result, where SNN_DEPLOY_CONFORMANCE asks for them."""
    outcome = yield
    record(item, outcome.get_result())
