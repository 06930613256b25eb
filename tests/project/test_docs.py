"""The documentation site builds in strict mode, with the command-line reference generated from
the parser; a broken link fails the build."""

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import docs  # noqa: E402
from toolchain.cli import build_parser  # noqa: E402


def test_the_site_builds_strictly_with_every_page(tmp_path):
    docs.build(tmp_path / "site")
    pages = sorted(p.parent.name for p in (tmp_path / "site").glob("*/index.html"))
    for page in ("getting-started", "training", "quantisation", "deploying", "importing", "api"):
        assert page in pages
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "--budget-samples" in cli and "--auto" in cli
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for function in ("train", "load", "quantize", "simulate", "compare", "plan", "deploy"):
        assert f"api.{function}" in api
    formats = (tmp_path / "site" / "formats" / "index.html").read_text()
    for module, _ in [(name, title) for title, name in docs.FORMATS]:
        assert module in formats


def test_the_cli_reference_names_every_command_and_option():
    reference = docs.cli_reference()
    commands = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices)
    for name, parser in commands.choices.items():
        assert f"## `snn-deploy {name}`" in reference
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in reference, (name, flag)


def test_a_broken_link_fails_the_build(tmp_path):
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    config = docs.assemble(tmp_path)
    page = tmp_path / "docs" / "training.md"
    page.write_text(page.read_text() + "\nSee [the missing page](missing.md).\n")
    with pytest.raises(Abort):
        build(load_config(str(config), site_dir=str(tmp_path / "site"), strict=True))
