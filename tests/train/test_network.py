"""The network glue around the TSSL-BP neuron: encoding, layers, pooling, dropout and losses."""

import dataclasses

import numpy as np
import pytest
import torch
from tsslbp_reference import reference_forward, reference_grad

from toolchain.train.config import Config, DenseSpec, LossConfig, NeuronConfig, load_config
from toolchain.train.losses import build_loss, default_pattern, desired_psp
from toolchain.train.network import SpikingNetwork, SumPool2d, TimeConsistentDropout

NEURON = NeuronConfig(T=5, tau_m=5.0, tau_s=3.0)


def test_input_is_psp_filtered_analog_image():
    net = SpikingNetwork(load_config("examples/digits_mlp.toml"), (1, 8, 8))
    x = torch.full((1, 1, 8, 8), 0.9)
    ramp = torch.tensor([1 - (2 / 3) ** (t + 1) for t in range(5)])
    torch.testing.assert_close(net.encode(x)[0, 0, 0, 0], 0.9 * ramp)


def test_mnist_cnn_shapes_and_paper_layout():
    config = load_config("examples/mnist_cnn.toml")
    net = SpikingNetwork(config, (1, 28, 28))
    psp, spikes = net(torch.rand(2, 1, 28, 28), return_spikes=True)
    assert psp.shape == (2, 10, 5)
    assert [tuple(s.shape[1:]) for s in spikes] == [
        (15, 24, 24, 5),
        (40, 8, 8, 5),
        (300, 5),
        (10, 5),
    ]
    assert net.layers[2].weight.shape == (40, 15, 5, 5)
    assert net.layers[4].weight.shape == (300, 640)


def test_sum_pool_is_1_1_times_window_sum():
    x = torch.arange(16.0).reshape(1, 1, 4, 4, 1).expand(1, 1, 4, 4, 3)
    out = SumPool2d(1.1)(x)
    expected = 1.1 * torch.tensor(
        [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]
    )
    torch.testing.assert_close(out[0, 0, :, :, 2], expected.float())


def test_dropout_mask_is_per_feature_and_constant_over_time():
    torch.manual_seed(0)
    drop = TimeConsistentDropout(0.5).train()
    out = drop(torch.ones(64, 30, 7))
    kept = out[..., 0] != 0
    assert torch.equal(out != 0, kept.unsqueeze(-1).expand_as(out)), "mask must not change in time"
    assert 0.4 < kept.float().mean() < 0.6
    torch.testing.assert_close(
        out[kept.unsqueeze(-1).expand_as(out)], torch.full_like(out[out != 0], 2.0)
    )
    assert torch.equal(drop.eval()(torch.ones(3, 4, 5)), torch.ones(3, 4, 5))


def test_weight_gradient_of_a_dense_layer_matches_closed_form():
    """dL/dW = sum_t (dL/dI_t) a_in_t^T with dL/dI from the independent reference."""
    config = dataclasses.replace(load_config("examples/digits_mlp.toml"), layers=(DenseSpec(10),))
    torch.manual_seed(1)
    net = SpikingNetwork(config, (1, 8, 8)).double()
    with torch.no_grad():
        net.layers[0].weight.mul_(3.0)
    images = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    grad_out = torch.randn(6, 10, 5, dtype=torch.float64)
    net(images).backward(grad_out)
    a_in = net.encode(images).flatten(1, -2).detach().numpy()  # (N, 64, T)
    current = np.einsum("oi,nit->not", net.layers[0].weight.detach().numpy(), a_in)
    assert reference_forward(current.reshape(-1, 5), 5, 3, 1.0)[1].mean() > 0.05
    grad_current = reference_grad(
        current.reshape(-1, 5), grad_out.numpy().reshape(-1, 5), 5, 3, 1.0
    )
    expected = np.einsum("not,nit->oi", grad_current.reshape(6, 10, 5), a_in)
    np.testing.assert_allclose(net.layers[0].weight.grad.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_kernel_loss_targets_single_and_double_filtered():
    double = desired_psp(LossConfig(target_filter="double"), NEURON)
    single = desired_psp(LossConfig(target_filter="single"), NEURON)
    np.testing.assert_allclose(double.numpy(), [0, 0.111, 0.259, 0.407, 0.539], atol=5e-4)
    np.testing.assert_allclose(single.numpy(), [0, 0.333, 0.556, 0.704, 0.802], atol=5e-4)
    assert default_pattern(5) == (0, 1, 1, 1, 1)
    assert default_pattern(12) == (0, 1) * 6


@pytest.mark.parametrize(
    ("steps", "pattern"),
    [
        # the final code (tsslbp.md 1.6): [0,1,1,1,1] repeated below T = 10, [0,1,0,1,...] from it
        (9, (0, 1, 1, 1, 1, 0, 1, 1, 1)),
        (10, (0, 1, 0, 1, 0, 1, 0, 1, 0, 1)),
        (11, (0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0)),
    ],
)
def test_default_pattern_switches_at_ten_steps(steps, pattern):
    assert default_pattern(steps) == pattern


def test_kernel_loss_value_and_gradient():
    loss_fn = build_loss(LossConfig(), NEURON)
    target = desired_psp(LossConfig(), NEURON)
    out = torch.rand(3, 10, 5, requires_grad=True)
    labels = torch.tensor([2, 0, 9])
    loss_fn(out, labels).backward()
    wanted = torch.zeros(3, 10, 5)
    wanted[[0, 1, 2], labels] = target
    torch.testing.assert_close(out.grad, out.detach() - wanted)


def test_count_loss_is_one_sided_and_its_gradient_is_delta():
    loss_fn = build_loss(LossConfig(type="count", desired_count=2.0, undesired_count=0.5), NEURON)
    out = torch.zeros(1, 3, 5)
    out[0, 0] = 0.6  # label class, count 3.0 >= 2: satisfied
    out[0, 1] = 0.2  # other class, count 1.0 > 0.5: delta = 0.5 / 5
    out[0, 2] = 0.05  # other class, count 0.25 <= 0.5: satisfied
    out.requires_grad_()
    loss = loss_fn(out, torch.tensor([0]))
    loss.backward()
    assert loss.item() == pytest.approx(0.5 * 5 * 0.1**2)
    expected = torch.zeros(1, 3, 5)
    expected[0, 1] = 0.1
    torch.testing.assert_close(out.grad, expected)
    below = torch.full((1, 3, 5), 0.2, requires_grad=True)  # label count 1.0 < 2
    loss_fn(below, torch.tensor([0])).backward()
    torch.testing.assert_close(below.grad[0, 0], torch.full((5,), -0.2))


def test_pooling_needs_even_size():
    config = load_config("examples/mnist_cnn.toml")
    with pytest.raises(ValueError, match=r"layers\[1\] \(pool\).*even"):
        SpikingNetwork(config, (1, 27, 27))


def test_config_is_serialisable():
    config = load_config("examples/mnist_cnn.toml")
    assert Config.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("config_path", ["examples/digits_mlp.toml", "examples/mnist_cnn.toml"])
def test_the_first_synapse_runs_once_and_equals_it_at_every_step(config_path):
    """The static image's current, r_t (W x), against W applied to the encoded PSP every step:
    equal to rounding, in the current and in the weight gradient."""
    config = load_config(config_path)
    shape = (1, 8, 8) if "digits" in config_path else (1, 28, 28)
    torch.manual_seed(0)
    net = SpikingNetwork(config, shape).double()
    images = torch.rand(4, *shape, dtype=torch.float64)
    first = net.layers[0]
    once = first.static_input_current(net.normalise(images), net.step_response(images))
    every_step = first.synapse(net.encode(images))
    torch.testing.assert_close(once, every_step, rtol=1e-12, atol=1e-12)
    grads = []
    for current in (once, every_step):
        first.weight.grad = None
        (current * torch.linspace(-1, 1, current.shape[-1], dtype=current.dtype)).sum().backward(
            retain_graph=True
        )
        grads.append(first.weight.grad.clone())
    torch.testing.assert_close(*grads, rtol=1e-10, atol=1e-12)
    assert grads[0].abs().sum() > 0
