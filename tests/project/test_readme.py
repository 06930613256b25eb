"""The README's and the documentation's commands, as written and in order, on fresh folders.

Every `snn-deploy` line of a fenced block runs: the README's in one folder, the pages' in
another, page after page in the site's order. Those on MNIST (hours of training, or the paper
network's minutes of quantisation) have their arguments parsed, which catches a renamed option.
The chip command runs and must be refused with the missing package named, as it is on a machine
without lava-loihi. The README's Python runs as written; every `make` target a block names
exists. (The Python export snippets of docs/from-*.md run in tests/io/test_export_snippets.py.)
"""

import re
import shlex
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from toolchain.cli import build_parser, main
from toolchain.data.datasets import mnist_dir

SHARED = ROOT.parent / "shared"


def pages() -> list[Path]:
    """The documentation's pages in the site's order (mkdocs.yml), those that exist in docs/."""

    def names(entries: list) -> list[str]:
        found = []
        for entry in entries:
            for value in entry.values():
                found += names(value) if isinstance(value, list) else [value]
        return found

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    return [ROOT / "docs" / name for name in names(nav) if (ROOT / "docs" / name).exists()]


def block_lines(path: Path) -> list[str]:
    blocks = re.findall(r"```\n(.*?)```", path.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines()]


def commands(*paths: Path) -> list[list[str]]:
    lines = [line for path in paths for line in block_lines(path)]
    return [shlex.split(line.split("#")[0])[1:] for line in lines if line.startswith("snn-deploy ")]


README = commands(ROOT / "README.md")
DOCS = commands(*pages())


def test_the_readme_tours_the_five_commands_and_the_docs_the_rest():
    assert [argv[0] for argv in README] == ["train", "quantize", "compare", "plan", "deploy"]
    documented = {argv[0] for argv in DOCS}
    for command in ("train", "export", "import", "quantize", "inspect", "simulate", "compare"):
        assert command in documented
    assert {"deploy", "plan"} <= documented


def run_in(folder: Path, argvs: list[list[str]], monkeypatch, capsys) -> None:
    (folder / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(folder)
    for argv in argvs:
        argv = [str(mnist_dir()) if part == "../shared/datasets/mnist" else part for part in argv]
        argv = [part.replace("../shared/", f"{SHARED}/") for part in argv]
        if any("mnist" in part for part in argv):
            build_parser().parse_args(argv)
            continue
        code = main(argv)
        err = capsys.readouterr().err
        if "--target" in argv and argv[argv.index("--target") + 1] == "loihi":
            assert code == 2 and "lava-loihi" in err, err
        else:
            assert code == 0, (argv, err)


def test_every_readme_command_runs_as_written(tmp_path, monkeypatch, capsys):
    run_in(tmp_path, README, monkeypatch, capsys)


def test_every_documented_command_runs_as_written(tmp_path, monkeypatch, capsys):
    run_in(tmp_path, DOCS, monkeypatch, capsys)


@pytest.mark.parametrize("argv", README + DOCS, ids=lambda argv: " ".join(argv[:2]))
def test_commands_parse(argv):
    build_parser().parse_args(argv)


def test_the_readmes_python_runs_as_written(tmp_path, monkeypatch, capsys):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert "float accuracy" in printed and printed.rstrip().endswith("True")


def test_every_make_target_named_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, flags=re.M))
    named = {
        line.split()[1]
        for path in (ROOT / "README.md", *pages())
        for line in block_lines(path)
        if line.startswith("make ")
    }
    assert named and named <= targets, named - targets
