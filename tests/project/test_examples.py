"""The examples run: the Python script and the notebook (its code cells in order, as a kernel
would run them), each on a few test images, in a fresh folder."""

import json
import runpy

import matplotlib
from conftest import ROOT

matplotlib.use("Agg")


def fresh(tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)


def test_the_example_script_compares_plans_and_deploys(tmp_path, monkeypatch, capsys):
    fresh(tmp_path, monkeypatch)
    script = runpy.run_path(str(ROOT / "examples" / "deploy_mnist_cnn.py"))
    plots = script["main"](samples=100, out=tmp_path / "plots", on_lava=4)
    assert {p.name for p in plots} == {"layers.png", "raster.png", "budget.png"}
    printed = capsys.readouterr().out
    assert "samples 100: float accuracy" in printed and "error budget" in printed
    assert "fits Loihi 2: yes" in printed
    assert "every output spike equal to the reference: True" in printed


def test_the_notebook_runs_cell_by_cell(tmp_path, monkeypatch, capsys):
    fresh(tmp_path, monkeypatch)
    notebook = json.loads((ROOT / "examples" / "deploy_mnist_cnn.ipynb").read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    namespace: dict = {}
    for cell in cells:
        exec(compile(cell.replace("SAMPLES = 500", "SAMPLES = 100"), "notebook", "exec"), namespace)
    assert namespace["deployment"].matches
    assert (tmp_path / "runs" / "notebook" / "budget.png").is_file()
    assert "every output spike equal: True" in capsys.readouterr().out
