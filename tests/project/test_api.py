"""The Python API does what its documentation says: every function's example (and the module's)
runs as written, in a fresh folder beside a `shared` like the checkout's."""

import doctest

import pytest
from conftest import ROOT

from toolchain import api
from toolchain.errors import UserError

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


FIXED_CNN = ROOT / "examples/pretrained/mnist_cnn/fixed.onnx"


@pytest.mark.parametrize(
    ("name", "format", "error", "named"),
    [
        ("cnn.txt", None, api.PathError, "cnn.txt: its name says no format save writes"),
        ("cnn.onnx", "checkpoint", api.ConfigError, "'checkpoint': not one save writes"),
        ("cnn.h5", "nir", api.PathError, "cnn.h5: a NIR graph file is named"),
    ],
)
def test_save_refuses_a_format_it_cannot_write_or_a_misleading_name(
    tmp_path, name, format, error, named
):
    with pytest.raises(error, match=named):
        api.save(api.load(FIXED_CNN), tmp_path / name, format)
    assert list(tmp_path.iterdir()) == []


def test_save_writes_the_format_asked(tmp_path):
    floating = api.load(FIXED_CNN.with_name("model.pt"))
    assert api.import_nir(api.save(floating, tmp_path / "cnn.nir", "nir")).T == floating.T


def test_a_fixed_point_graph_is_not_written_as_nir_which_has_no_integers(tmp_path):
    with pytest.raises(UserError, match="is fixed point, and NIR states float parameters"):
        api.save(api.load(FIXED_CNN), tmp_path / "cnn.nir")
    assert list(tmp_path.iterdir()) == []


def test_compare_on_inputs_without_labels_is_a_typed_error():
    images = api.dataset("digits").test.images[:4]
    with pytest.raises(api.ConfigError, match="give `labels`"):
        api.compare(FIXED_CNN, FIXED_CNN, images)
