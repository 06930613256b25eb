"""The Python API does what its documentation says: every function's example (and the module's)
runs as written, in a fresh folder beside a `shared` like the checkout's."""

import doctest

import pytest
from conftest import ROOT

from toolchain import api

EXAMPLES = {
    test.name.split(".")[-1]: test
    for test in doctest.DocTestFinder().find(api, globs={"api": api})
    if test.examples
}


def test_every_public_function_has_an_example():
    public = {name for name in api.__all__} if hasattr(api, "__all__") else set()
    functions = {
        name
        for name, value in vars(api).items()
        if callable(value) and not name.startswith("_") and value.__module__ == api.__name__
    }
    assert functions | public <= set(EXAMPLES), sorted(functions - set(EXAMPLES))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_documented_example_runs(name, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    monkeypatch.chdir(work)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(EXAMPLES[name], clear_globs=True)
    assert result.failed == 0 and result.attempted > 0
