"""Training methods behind one interface: TSSL-BP and surrogate-gradient BPTT share the neuron
core's forward, BPTT's gradient is the closed form of tsslbp.md 2.3, and both train digits."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from tsslbp_reference import reference_forward

from toolchain.train.config import ConfigError, TrainConfig, load_config
from toolchain.train.loop import train
from toolchain.train.methods import METHODS, spiking_forward
from toolchain.train.methods.bptt import bptt_forward
from toolchain.train.network import SpikingNetwork

ALPHA = 0.2


def bptt_reference_grad(current, grad_psp, tau_m, tau_s, threshold):
    """dL/dI of BPTT with the sigmoid surrogate phi' and the reset not detached, per neuron:
    dL/du_t = phi'(u_t) [e_t - beta u_t G_{t+1}] + (1 - s_t) beta G_{t+1}, G = dL/du,
    e_t = sum_k eps_k g_{t+k}; dL/dI_t = dL/du_t. Explicit sums, float64."""
    _, spikes, u_pre, _ = reference_forward(current, tau_m, tau_s, threshold)
    n, steps = current.shape
    beta = 1 - 1 / tau_m
    eps = [(1 / tau_s) * (1 - 1 / tau_s) ** k for k in range(steps)]
    grad = np.zeros((n, steps))
    for i in range(n):
        g_next = 0.0
        for t in reversed(range(steps)):
            e = sum(eps[k] * grad_psp[i, t + k] for k in range(steps - t))
            z = min(max((threshold - u_pre[i, t]) / ALPHA, -8.0), 8.0)
            phi = math.exp(z) / (1 + math.exp(z)) ** 2 / ALPHA
            g_next = phi * (e - beta * u_pre[i, t] * g_next) + (1 - spikes[i, t]) * beta * g_next
            grad[i, t] = g_next
    return grad


def test_bptt_gradient_matches_the_closed_form():
    rng = np.random.default_rng(3)
    current = rng.normal(0.7, 0.8, size=(40, 7))
    grad_psp = rng.normal(size=(40, 7))
    x = torch.tensor(current, requires_grad=True)
    psp, _ = bptt_forward(x, tau_m=5.0, tau_s=3.0, threshold=1.0)
    psp.backward(torch.tensor(grad_psp))
    expected = bptt_reference_grad(current, grad_psp, 5.0, 3.0, 1.0)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_both_methods_run_the_same_forward():
    current = torch.randn(6, 20, 5, dtype=torch.float64) + 0.8
    outputs = [
        spiking_forward(method)(current, tau_m=5.0, tau_s=3.0, threshold=1.0) for method in METHODS
    ]
    (psp_a, spikes_a), (psp_b, spikes_b) = outputs
    assert spikes_a.sum() > 0 and torch.equal(spikes_a, spikes_b) and torch.equal(psp_a, psp_b)


def test_the_config_selects_the_method():
    config = load_config("examples/digits_mlp.toml")
    assert config.train.method == "tsslbp"
    bptt = dataclasses.replace(config, train=dataclasses.replace(config.train, method="bptt"))
    layer = SpikingNetwork(bptt, (1, 8, 8)).layers[0]
    assert layer.spiking is bptt_forward
    with pytest.raises(ConfigError, match="method=.adjoint.: one of tsslbp, bptt"):
        TrainConfig(lr=1e-3, batch_size=8, epochs=1, method="adjoint")


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_digits(digits, tmp_path, method):
    config = load_config("examples/digits_mlp.toml")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, method=method))
    result = train(config, tmp_path, dataset=digits, progress=False)
    assert result.test_accuracy >= 0.95, (method, result.metrics[-3:])
