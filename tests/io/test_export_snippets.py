"""The export snippets of the "Coming from" pages (docs/from-*.md), run as written: each
library's own exporter writes net.nir from a network as its tutorials build it, and
`snn-deploy import` reads it."""

import math
import re

import pytest
from cli_runs import run
from conftest import ROOT

from toolchain.io import load_onnx


def snippets() -> dict[str, tuple[str, list[str]]]:
    """Library page title -> (its python block, its import command's arguments), for each page
    with a NIR export snippet."""
    found = {}
    for page in sorted((ROOT / "docs").glob("from-*.md")):
        text = page.read_text()
        code = re.search(r"```python\n(.*?)```", text, flags=re.S)
        if code is None:  # lava-dl: netx files, no snippet
            continue
        title = text.splitlines()[0].removeprefix("# Coming from ")
        command = re.search(r"```sh\n(.*?)```", text, flags=re.S).group(1).split()
        found[title] = (code.group(1), command[1:])
    return found


def test_every_library_has_a_snippet():
    titles = " ".join(snippets())
    for library in ("snnTorch", "Norse", "Sinabs", "SpikingJelly", "Rockpool"):
        assert library in titles


@pytest.mark.parametrize("title", list(snippets()))
def test_the_snippet_exports_and_the_file_imports(title, tmp_path, monkeypatch, capsys):
    code, command = snippets()[title]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"docs: {title}", "exec"), {"__name__": "snippet"})
    assert run([*command, "--quiet"]) == 0, capsys.readouterr().err
    graph = load_onnx(tmp_path / "float.onnx")
    assert [p.name for p in graph.populations] and graph.shapes()[-1] == (10,)
    assert math.prod(graph.input.image_shape) == 784
