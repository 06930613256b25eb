"""Builds the documentation site: docs/ with the generated pages added, by MkDocs in strict mode
(a broken link or a page missing from the navigation fails the build).

Generated, never hand-copied: `cli.md`, every command's options from the argument parser
(`toolchain.cli.build_parser`), and `api.md`, the Python API's functions with their signatures
and docstrings (`toolchain.api`, whose examples tests/project/test_api.py runs). The pages
are assembled in a temporary folder, so that nothing generated is written into docs/.

    python tools/docs.py [--site DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolchain.cli import build_parser  # noqa: E402

CONFIG = ROOT / "mkdocs.yml"


def cli_reference() -> str:
    """Every command's usage and options, from the parser itself."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = [
        "# Command-line reference",
        "",
        "Generated from `toolchain/cli.py`'s argument parser by `tools/docs.py`.",
        "",
    ]
    for name, sub in commands.choices.items():
        help_text = next(a.help for a in commands._choices_actions if a.dest == name)
        lines += [f"## `snn-deploy {name}`", "", help_text or "", ""]
        lines += ["```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def api_reference() -> str:
    """The Python API: the module's docstring, then every public function's signature and
    docstring, in the module's order."""
    import inspect

    from toolchain import api

    lines = [
        "# Python API",
        "",
        "Generated from `toolchain/api.py`'s docstrings by `tools/docs.py`.",
        "",
        "```python",
        inspect.cleandoc(api.__doc__ or ""),
        "```",
        "",
    ]
    for name, function in vars(api).items():
        if name.startswith("_") or not inspect.isfunction(function):
            continue
        if function.__module__ != api.__name__:
            continue
        lines += [f"## `api.{name}`", "", "```python"]
        lines += [f"def {name}{inspect.signature(function)}", "```", ""]
        lines += ["```text", inspect.cleandoc(function.__doc__ or ""), "```", ""]
    return "\n".join(lines)


def assemble(folder: Path) -> Path:
    """docs/ and the generated pages in `folder`; returns the MkDocs config that builds them."""
    shutil.copytree(ROOT / "docs", folder / "docs")
    (folder / "docs" / "cli.md").write_text(cli_reference())
    (folder / "docs" / "api.md").write_text(api_reference())
    config = folder / "mkdocs.yml"
    config.write_text(CONFIG.read_text().replace("docs_dir: docs", f"docs_dir: {folder / 'docs'}"))
    return config


def build(site: Path) -> None:
    """The site into `site`, strictly."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(str(assemble(Path(tmp))), site_dir=str(site), strict=True)
        mkdocs_build(config)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="where the site goes")
    build(parser.parse_args(argv).site)


if __name__ == "__main__":
    main()
