"""docs/nir.md's export snippets, run as written: each library's own exporter writes net.nir
from a network as its tutorials build it, and `snn-deploy import` reads it."""

import math
import re

import pytest
from cli_runs import run
from conftest import ROOT

from toolchain.io import load_onnx


def snippets() -> dict[str, tuple[str, list[str]]]:
    """Library heading -> (its python block, its import command's arguments)."""
    text = (ROOT / "docs" / "nir.md").read_text()
    section = text.split("## Exporting from each library")[1].split("\n## ")[0]
    found = {}
    for part in section.split("\n### ")[1:]:
        title = part.splitlines()[0]
        code = re.search(r"```python\n(.*?)```", part, flags=re.S).group(1)
        command = re.search(r"```sh\n(.*?)```", part, flags=re.S).group(1).split()
        found[title] = (code, command[1:])
    return found


def test_every_library_has_a_snippet():
    titles = " ".join(snippets())
    for library in ("snnTorch", "Norse", "Sinabs", "SpikingJelly", "Rockpool"):
        assert library in titles


@pytest.mark.parametrize("title", list(snippets()))
def test_the_snippet_exports_and_the_file_imports(title, tmp_path, monkeypatch, capsys):
    code, command = snippets()[title]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"docs/nir.md: {title}", "exec"), {"__name__": "snippet"})
    assert run([*command, "--quiet"]) == 0, capsys.readouterr().err
    graph = load_onnx(tmp_path / "float.onnx")
    assert [p.name for p in graph.populations] and graph.shapes()[-1] == (10,)
    assert math.prod(graph.input.image_shape) == 784
