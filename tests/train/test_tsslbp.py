"""TSSL-BP against an independent float64 implementation of the closed form (tsslbp.md 2.2).

The reference below is written per neuron with explicit sums over the PSP kernel and over the
neuron's own spike times (next-spike chaining), not with the step recursion the module uses.
"""

import numpy as np
import pytest
import torch
from tsslbp_reference import reference_forward, reference_grad

from toolchain.train.methods.tsslbp import tsslbp_forward, tsslbp_grad, tsslbp_psp


def autograd_grad(current, grad_psp, tau_m, tau_s, threshold, mode="final"):
    x = torch.tensor(current, dtype=torch.float64, requires_grad=True)
    psp = tsslbp_psp(x, tau_m=tau_m, tau_s=tau_s, threshold=threshold, mode=mode)
    psp.backward(torch.tensor(grad_psp))
    return psp.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("steps,tau_m,tau_s", [(5, 5, 3), (30, 8, 4), (12, 5, 2), (8, 2, 6)])
def test_gradient_matches_closed_form_on_random_currents(steps, tau_m, tau_s):
    rng = np.random.default_rng(steps * 100 + tau_m)
    current = rng.normal(0.6, 0.8, size=(64, steps))
    grad_psp = rng.normal(size=(64, steps))
    psp, grad = autograd_grad(current, grad_psp, tau_m, tau_s, 1.0)
    spikes = reference_forward(current, tau_m, tau_s, 1.0)[1]
    assert 0.05 < spikes.mean() < 0.8, "the random currents must make neurons fire"
    assert (spikes.sum(1) >= 2).sum() > 5, "some neurons must fire more than once (intra term)"
    np.testing.assert_allclose(psp, reference_forward(current, tau_m, tau_s, 1.0)[0], atol=1e-12)
    np.testing.assert_allclose(
        grad, reference_grad(current, grad_psp, tau_m, tau_s, 1.0), rtol=1e-10, atol=1e-12
    )


def test_forward_matches_plain_loop_in_float32():
    rng = np.random.default_rng(0)
    current = rng.normal(0.5, 1.0, size=(4, 3, 2, 2, 7)).astype(np.float32)
    psp, spikes = tsslbp_forward(torch.tensor(current), tau_m=5, tau_s=3, threshold=1.0)
    ref_psp, ref_spikes, _, _ = reference_forward(
        current.reshape(-1, 7).astype(np.float64), 5, 3, 1
    )
    np.testing.assert_array_equal(spikes.numpy().reshape(-1, 7), ref_spikes)
    np.testing.assert_allclose(psp.numpy().reshape(-1, 7), ref_psp, atol=1e-6)


def test_silent_neuron_gets_pure_surrogate():
    current = np.array([[0.1, 0.3, -0.3, 0.5, 0.2]])  # u peaks at 0.6, never crosses 1.0
    grad_psp = np.array([[1.0, -2.0, 0.5, 1.0, 3.0]])
    _, grad = autograd_grad(current, grad_psp, 5, 3, 1.0)
    assert reference_forward(current, 5, 3, 1.0)[1].sum() == 0
    assert np.all(grad != 0), "a silent neuron still learns through the surrogate"
    np.testing.assert_allclose(grad, reference_grad(current, grad_psp, 5, 3, 1.0), rtol=1e-12)


def test_spike_at_last_step_and_small_du_clamp():
    current = np.array(
        [
            [0.2, 0.2, 0.2, 0.2, 1.5],  # fires only at the last step
            [0.99, 0.0, 0.0, 0.0, 0.0],  # silent
            [
                0.95,
                0.25,
                0.0,
                0.0,
                0.0,
            ],  # u = 0.76 + 0.25 = 1.01 > 1, du = 0.06 < 0.125: clamp at 8
        ]
    )
    grad_psp = np.array([[0.3, -1.0, 2.0, 0.7, 1.1]] * 3)
    _, spikes, _, du = reference_forward(current, 5, 3, 1.0)
    assert spikes[0, 4] == 1 and spikes[0, :4].sum() == 0
    assert spikes[2, 1] == 1 and 0 < du[2, 1] < 0.125
    _, grad = autograd_grad(current, grad_psp, 5, 3, 1.0)
    np.testing.assert_allclose(grad, reference_grad(current, grad_psp, 5, 3, 1.0), rtol=1e-12)
    e_last = grad_psp[0, 4] / 3
    assert grad[0, 4] == pytest.approx(min(1 / du[0, 4], 8) * e_last)
    e_1 = sum((1 / 3) * (2 / 3) ** k * grad_psp[2, 1 + k] for k in range(4))
    assert grad[2, 1] == pytest.approx(8.0 * e_1), "1/du must saturate at 8"


def test_surrogate_mode_and_submission_switch():
    rng = np.random.default_rng(1)
    current = rng.normal(0.0, 0.3, size=(32, 5))  # almost silent layer: rate <= 0.1
    grad_psp = rng.normal(size=(32, 5))
    _, surrogate = autograd_grad(current, grad_psp, 5, 3, 1.0, mode="surrogate")
    _, submission = autograd_grad(current, grad_psp, 5, 3, 1.0, mode="submission")
    np.testing.assert_allclose(submission, surrogate, rtol=1e-12)
    busy = rng.normal(1.2, 0.5, size=(32, 5))  # rate well above 0.1: inter-neuron term only
    _, spikes, _, du = reference_forward(busy, 5, 3, 1.0)
    _, grad = autograd_grad(busy, grad_psp, 5, 3, 1.0, mode="submission")
    e = np.stack(
        [
            [
                sum((1 / 3) * (2 / 3) ** k * grad_psp[i, t + k] for k in range(5 - t))
                for t in range(5)
            ]
            for i in range(32)
        ]
    )
    expected = spikes * np.minimum(1 / np.where(spikes > 0, du, 1.0), 10.0) * e
    np.testing.assert_allclose(grad, expected, rtol=1e-12)


def test_bad_parameters_are_refused():
    x = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="mode='bogus'"):
        tsslbp_psp(x, tau_m=5, tau_s=3, threshold=1.0, mode="bogus")
    with pytest.raises(ValueError, match="tau_s=0.5"):
        tsslbp_psp(x, tau_m=5, tau_s=0.5, threshold=1.0)
    with pytest.raises(ValueError, match="threshold=0"):
        tsslbp_psp(x, tau_m=5, tau_s=3, threshold=0)


def test_tsslbp_grad_at_an_operating_point_matches_the_closed_form():
    """The fixed-point fine-tuning calls tsslbp_grad with its own forward's states: here those of
    the plain numpy loop, and the result is the closed form's."""
    rng = np.random.default_rng(7)
    current = rng.normal(0.9, 0.8, size=(24, 6))
    grad_psp = rng.normal(size=(24, 6))
    psp, spikes, u_pre, _ = reference_forward(current, 5.0, 3.0, 1.0)
    assert (spikes.sum(1) >= 2).any() and (spikes.sum(1) == 0).any()
    got = tsslbp_grad(
        *(torch.from_numpy(x) for x in (grad_psp, psp, spikes, u_pre)),
        tau_m=5.0,
        tau_s=3.0,
        threshold=1.0,
    )
    expected = reference_grad(current, grad_psp, 5.0, 3.0, 1.0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)
