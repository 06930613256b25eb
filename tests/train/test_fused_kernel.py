"""The fused TSSL-BP kernel (`toolchain/train/methods/kernels/tsslbp.cpp`) against the
reference implementation in `tsslbp.py`, bit for bit in float64 and float32, on random currents
with silent neurons, spikes at the last step and 1/du at its clamp: forward and backward, every
mode. (Bit for bit, so training with either gives the same network.)"""

import os
import re

import numpy as np
import pytest
import torch

from toolchain.neuron import lif_sequence
from toolchain.train.methods import MODES, fused, tsslbp
from toolchain.train.methods.surrogate import SURROGATE_ALPHA, clamped_sigmoid

PARAMS = {"tau_m": 5.0, "tau_s": 3.0, "threshold": 1.0}


def currents(seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Time-first (T, 50, 40) currents covering the cases the backward branches on."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 1.6, (7, 50, 40))
    x[:, :5] = -1.0  # silent
    x[:-1, 5:10], x[-1, 5:10] = 0.0, 3.0  # a spike at the last step only
    x[:, 10:15] = 1.0 + rng.uniform(0, 0.05, (7, 5, 40))  # du just above 0: 1/du clamped at 8
    return torch.tensor(x, dtype=dtype)


def test_the_kernel_is_built_here():
    assert fused.fused_kernel() is not None, "g++ and ninja are on this machine: it must build"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing to thread over")
def test_the_kernel_runs_on_torch_threads():
    """Built without OpenMP, an extension's at::parallel_for runs on one thread, silently."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert fused.fused_kernel().parallel_threads(2) == 2
    finally:
        torch.set_num_threads(threads)


DTYPES = [torch.float64, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_equals_the_reference(dtype):
    current = currents(0, dtype)
    psp, u_pre, spikes = fused.fused_kernel().forward(current, *PARAMS.values())
    ref_psp, ref_spikes, ref_u = lif_sequence(current, **PARAMS)
    assert torch.equal(u_pre > PARAMS["threshold"], ref_spikes.bool())
    assert spikes.dtype == dtype and torch.equal(spikes, ref_spikes)
    assert torch.equal(psp, ref_psp) and torch.equal(u_pre, ref_u)
    assert ref_spikes[-1, 5:10].all() and not ref_spikes[:, :5].any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_final_backward_equals_the_reference(dtype):
    current = currents(1, dtype)
    psp, u_pre, _ = fused.fused_kernel().forward(current, *PARAMS.values())
    grad_psp = torch.tensor(np.random.default_rng(2).normal(size=current.shape), dtype=dtype)
    spikes = u_pre > PARAMS["threshold"]
    sigmoid = clamped_sigmoid(u_pre, PARAMS["threshold"])
    constants = (tsslbp.FINAL_INV_DU_CLAMP, SURROGATE_ALPHA)
    ours = fused.fused_kernel().backward_final(
        grad_psp, psp, u_pre, sigmoid, *PARAMS.values(), *constants
    )
    ref = tsslbp._final_backward(grad_psp, psp, spikes, u_pre, **PARAMS)
    assert torch.equal(ours, ref)
    du = u_pre - torch.cat([torch.zeros_like(u_pre[:1]), u_pre[:-1].masked_fill(spikes[:-1], 0)])
    assert ((1 / du[spikes]) > tsslbp.FINAL_INV_DU_CLAMP).any()  # the clamp was exercised


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_training_gradients_equal_the_reference_path(mode, dtype, monkeypatch):
    """Through autograd, time last, as a layer uses it: fused and reference give the same PSP,
    spikes and dL/dI."""
    results = []
    for kernel in (fused.fused_kernel(), None):
        monkeypatch.setattr(tsslbp, "_kernel", lambda x, k=kernel: k)
        current = currents(3, dtype).movedim(0, -1).clone().requires_grad_(True)
        psp, spikes = tsslbp.tsslbp_forward(current, mode=mode, **PARAMS)
        (psp * torch.linspace(-1, 1, psp.shape[-1], dtype=psp.dtype)).sum().backward()
        results.append((psp.detach(), spikes, current.grad))
    (psp, spikes, grad), (ref_psp, ref_spikes, ref_grad) = results
    assert torch.equal(spikes, ref_spikes) and torch.equal(psp, ref_psp)
    assert torch.equal(grad, ref_grad)
    assert ref_grad.abs().sum() > 0


def test_without_openmp_the_kernel_is_built_for_one_thread_with_one_warning(monkeypatch):
    builds = []

    def no_openmp(**kwargs):
        builds.append(kwargs["extra_cflags"])
        if "-fopenmp" in kwargs["extra_cflags"]:
            raise RuntimeError("unrecognized command-line option '-fopenmp'")
        return "the module"

    monkeypatch.setattr("torch.utils.cpp_extension.load", no_openmp)
    with pytest.warns(UserWarning, match=r"'-fopenmp'.*runs on one thread"):
        assert fused.fused_kernel.__wrapped__() == "the module"
    assert ["-fopenmp" in flags for flags in builds] == [True, False]


def test_without_a_compiler_training_falls_back_with_one_warning(monkeypatch):
    def no_compiler(**kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr("torch.utils.cpp_extension.load", no_compiler)
    with pytest.warns(UserWarning) as warned:
        assert fused.fused_kernel.__wrapped__() is None
    assert len(warned) == 1
    assert re.search(r"no C\+\+ compiler.*reference implementation runs", str(warned[0].message))
    monkeypatch.setenv(fused.KERNEL_ENV, "reference")
    assert fused.fused_kernel.__wrapped__() is None
    monkeypatch.setenv(fused.KERNEL_ENV, "fast")
    with pytest.raises(ValueError, match="one of fused, reference"):
        fused.fused_kernel.__wrapped__()
