"""The README's commands, as written and in order, on a fresh folder.

Every `snn-deploy` line of a fenced block runs, except those on MNIST (hours of training, or the
paper network's minutes of quantisation): their arguments are parsed, which catches a renamed
option. The chip command runs and must be refused with the missing package named, as it is on
a machine without lava-loihi.
"""

import re
import shlex

import pytest
from conftest import ROOT

from toolchain.cli import build_parser, main
from toolchain.data.datasets import mnist_dir

SHARED = ROOT.parent / "shared"


def readme_commands() -> list[list[str]]:
    blocks = re.findall(r"```\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    commands = [line.split("#")[0] for line in lines if line.startswith("snn-deploy ")]
    return [shlex.split(command)[1:] for command in commands]


def test_the_readme_has_the_digits_walk_through():
    commands = [argv[0] for argv in readme_commands()]
    for command in ("train", "export", "quantize", "inspect", "simulate", "compare", "deploy"):
        assert command in commands


def test_every_readme_command_runs_as_written(tmp_path, monkeypatch, capsys):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    for argv in readme_commands():
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


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda argv: " ".join(argv[:2]))
def test_readme_commands_parse(argv):
    build_parser().parse_args(argv)
