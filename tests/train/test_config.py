"""Config files: the shipped examples load, and every bad value is named with its file."""

import pytest

from toolchain.train.config import ConfigError, ConvSpec, DenseSpec, PoolSpec, load_config


def test_examples_load_with_the_paper_fields():
    cnn = load_config("examples/mnist_cnn.toml")
    assert (cnn.neuron.T, cnn.neuron.tau_m, cnn.neuron.tau_s, cnn.neuron.threshold) == (5, 5, 3, 1)
    assert cnn.layers == (
        ConvSpec(15, 5),
        PoolSpec(),
        ConvSpec(40, 5),
        PoolSpec(),
        DenseSpec(300),
        DenseSpec(10),
    )
    assert (cnn.train.lr, cnn.train.batch_size, cnn.loss.type) == (5e-4, 50, "kernel")
    assert load_config("examples/mnist_mlp.toml").dataset == "mnist"
    assert load_config("examples/digits_mlp.toml").dataset == "digits"


BASE = """
name = "t"
dataset = "digits"
[neuron]
T = 5
tau_m = 5
tau_s = 3
[[layers]]
type = "dense"
out = 10
[train]
lr = 1e-3
batch_size = 8
epochs = 1
"""


@pytest.mark.parametrize(
    "edit,message",
    [
        (("tau_s = 3", "tau_s = 0.5"), "neuron.tau_s=0.5"),
        (("epochs = 1", "epochs = 1\nmomentum = 0.9"), "train: unknown keys ['momentum']"),
        (("out = 10", 'out = 10\n[[layers]]\ntype = "pool"'), "last layer must be dense"),
        (('dataset = "digits"', 'dataset = "cifar"'), "dataset='cifar'"),
        (("[train]", '[loss]\ntarget_filter = "triple"\n[train]'), "target_filter='triple'"),
        (("lr = 1e-3", ""), "train: "),
        (("T = 5", "T = 5\nT = 6"), "not valid TOML"),
    ],
)
def test_bad_values_name_the_file_and_the_key(tmp_path, edit, message):
    path = tmp_path / "exp.toml"
    path.write_text(BASE.replace(*edit))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        load_config(tmp_path / "nope.toml")
