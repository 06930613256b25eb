"""TSSL-BP: the spiking layer's gradient as the authors' final code computes it.

Follows stonezwr/TSSL-BP at ffaac71 as described in `shared/reference/tsslbp.md` section 2.2.
The forward pass is the neuron core's (`toolchain.neuron.lif_sequence`), run without an
autograd graph; the spikes (u > threshold) and du_t = u_t - u^r_{t-1} are recomputed from u in
the backward pass. On the CPU the fused kernel (`fused.py`) runs the forward and the final
backward in one pass over T; this module is its reference, which the tests compare it with.

Backward ("final" mode), with g_t = dL/da_t, from T-1 down to 0:
    e_t = g_t / tau_s + (1 - 1/tau_s) e_{t+1}
    G_t = m_t (e_t + u_t G_{t+1} / tau_m) + (1 - s_t)(1 - 1/tau_m) G_{t+1}
    m_t = s_t min(1/du_t, 8)
    dL/dI_t = G_t where a_t >= 1/(4 tau_s), else sigmoid'(u_t) e_t   (G itself is never replaced)

Memory is O(T) per neuron: the PSP (shared with the layer's output) and u before reset are
saved, no T x T matrices. Internally time is the first axis, so that every
step is one contiguous block.
"""

from __future__ import annotations

from typing import Literal

import torch

from toolchain.neuron import lif_sequence, time_first, time_last
from toolchain.train.methods.fused import fused_kernel
from toolchain.train.methods.surrogate import SURROGATE_ALPHA, clamped_sigmoid, sigmoid_surrogate

Mode = Literal["final", "submission", "surrogate"]
MODES: tuple[str, ...] = ("final", "submission", "surrogate")

FINAL_INV_DU_CLAMP = 8.0  # final code: 1/du saturates at 8
SUBMISSION_INV_DU_CLAMP = 10.0  # June 2020 code: 1/du saturates at 10
SUBMISSION_RATE_SWITCH = 0.1  # June 2020 code: TSSL only in layers firing above this rate


def _kernel(x: torch.Tensor):  # the compiled module, or None
    return fused_kernel() if x.device.type == "cpu" else None


def _forward(
    current: torch.Tensor, tau_m: float, tau_s: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Time-first (psp, u before reset, spikes in the current's dtype) of a time-first current."""
    kernel = _kernel(current)
    if kernel is not None:
        return tuple(kernel.forward(current, tau_m, tau_s, threshold))  # type: ignore[return-value]
    with torch.no_grad():
        psp, spikes, u_pre = lif_sequence(current, tau_m=tau_m, tau_s=tau_s, threshold=threshold)
    return psp, u_pre, spikes.to(current.dtype)


def _du(u_pre: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """du_t = u_t - u^r_{t-1}, time-first, recomputed instead of stored."""
    du = u_pre.clone()
    du[1:] -= u_pre[:-1].masked_fill(spikes[:-1], 0.0)
    return du


def _kernel_backward(grad_psp: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Time-first e_t = sum_k eps_k g_{t+k}: the PSP kernel applied backwards, in O(T)."""
    beta_s = 1.0 - 1.0 / tau_s
    e = torch.empty_like(grad_psp)
    acc = torch.zeros_like(grad_psp[0])
    for t in reversed(range(len(grad_psp))):
        acc = grad_psp[t] / tau_s + beta_s * acc
        e[t] = acc
    return e


def _final_backward(
    grad_psp: torch.Tensor,
    psp: torch.Tensor,
    spikes: torch.Tensor,
    u_pre: torch.Tensor,
    *,
    tau_m: float,
    tau_s: float,
    threshold: float,
) -> torch.Tensor:
    """The final code's dL/dI, fused into one loop over the steps (time-first, spikes bool).

    e_t, du_t, m_t and the mask are made one contiguous step at a time, in cache, instead of as
    whole tensors. The surrogate is computed on the whole tensor: the vectorised sigmoid and a
    per-step one can differ in the last bit.
    """
    theta_m, beta_s = 1.0 / tau_m, 1.0 - 1.0 / tau_s
    grad = sigmoid_surrogate(u_pre, threshold)  # times e_t and overwritten where active
    active = psp >= 1.0 / (4.0 * tau_s)
    e_t = torch.zeros_like(u_pre[0])
    g_next = torch.zeros_like(u_pre[0])
    for t in reversed(range(len(u_pre))):
        e_t = grad_psp[t] / tau_s + beta_s * e_t
        du_t = u_pre[t] - u_pre[t - 1].masked_fill(spikes[t - 1], 0.0) if t else u_pre[t]
        m_t = torch.where(spikes[t], du_t.reciprocal().clamp(max=FINAL_INV_DU_CLAMP), 0.0)
        fired = m_t * (e_t + theta_m * u_pre[t] * g_next)
        g_next = torch.where(spikes[t], fired, (1.0 - theta_m) * g_next)
        torch.where(active[t], g_next, grad[t] * e_t, out=grad[t])
    return grad


def _submission_backward(
    grad_psp: torch.Tensor,
    spikes: torch.Tensor,
    u_pre: torch.Tensor,
    tau_s: float,
    threshold: float,
) -> torch.Tensor:
    e = _kernel_backward(grad_psp, tau_s)
    if spikes.float().mean() <= SUBMISSION_RATE_SWITCH:
        return sigmoid_surrogate(u_pre, threshold) * e
    du = _du(u_pre, spikes)
    inv_du = torch.where(spikes, 1.0 / du.masked_fill(~spikes, 1.0), 0.0)
    return inv_du.clamp(max=SUBMISSION_INV_DU_CLAMP) * e


def _grad(
    grad_psp: torch.Tensor,
    psp: torch.Tensor,
    spikes: torch.Tensor,
    u_pre: torch.Tensor,
    *,
    tau_m: float,
    tau_s: float,
    threshold: float,
    mode: str,
) -> torch.Tensor:
    """Time-first dL/dI from time-first tensors; spikes as bool. du is recomputed from u."""
    if mode == "final":
        return _final_backward(
            grad_psp, psp, spikes, u_pre, tau_m=tau_m, tau_s=tau_s, threshold=threshold
        )
    if mode == "submission":
        return _submission_backward(grad_psp, spikes, u_pre, tau_s, threshold)
    return sigmoid_surrogate(u_pre, threshold) * _kernel_backward(grad_psp, tau_s)


def tsslbp_grad(
    grad_psp: torch.Tensor,
    psp: torch.Tensor,
    spikes: torch.Tensor,
    u_pre: torch.Tensor,
    *,
    tau_m: float,
    tau_s: float,
    threshold: float,
    mode: Mode = "final",
) -> torch.Tensor:
    """dL/dI from dL/dPSP at a forward operating point (psp, spikes, u before reset).

    All tensors (..., T), time last; spikes 0/1. For callers with their own forward pass (the
    fixed-point fine-tuning): du_t = u_t - u^r_{t-1} is recomputed from u and the spikes.
    """
    grad_psp, psp, u_pre = (time_first(x) for x in (grad_psp, psp, u_pre))
    spikes = time_first(spikes > 0)
    grad = _grad(
        grad_psp, psp, spikes, u_pre, tau_m=tau_m, tau_s=tau_s, threshold=threshold, mode=mode
    )
    return time_last(grad)


class _TSSLBP(torch.autograd.Function):
    """Saves the PSP (the output's own storage) and u: no spikes, no du, no T x T."""

    @staticmethod
    def forward(ctx, current, tau_m, tau_s, threshold, mode):  # type: ignore[override]
        psp, u_pre, spikes = _forward(time_first(current), tau_m, tau_s, threshold)
        ctx.save_for_backward(psp, u_pre)
        ctx.params = {"tau_m": tau_m, "tau_s": tau_s, "threshold": threshold, "mode": mode}
        out_spikes = time_last(spikes)
        ctx.mark_non_differentiable(out_spikes)
        ctx.set_materialize_grads(False)  # no zeros for the spikes' gradient: it is never read
        return time_last(psp), out_spikes

    @staticmethod
    def backward(ctx, grad_psp, _grad_spikes):  # type: ignore[override]
        if grad_psp is None:  # the PSP reached no loss (grads are not materialised as zeros)
            return None, None, None, None, None
        psp, u_pre = ctx.saved_tensors
        p = ctx.params
        kernel = _kernel(u_pre)
        if kernel is not None and p["mode"] == "final":
            args = (p["tau_m"], p["tau_s"], p["threshold"], FINAL_INV_DU_CLAMP, SURROGATE_ALPHA)
            sigmoid = clamped_sigmoid(u_pre, p["threshold"])  # overwritten by dL/dI
            grad = kernel.backward_final(time_first(grad_psp), psp, u_pre, sigmoid, *args)
        else:
            grad = _grad(time_first(grad_psp), psp, u_pre > p["threshold"], u_pre, **p)
        return time_last(grad), None, None, None, None


def _check_params(tau_m: float, tau_s: float, threshold: float, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {MODES}")
    if not tau_m >= 1.0 or not tau_s >= 1.0:
        raise ValueError(f"tau_m={tau_m} and tau_s={tau_s} must be >= 1 (time steps)")
    if not threshold > 0.0:
        raise ValueError(f"threshold={threshold} must be positive")


def tsslbp_forward(
    current: torch.Tensor,
    *,
    tau_m: float,
    tau_s: float,
    threshold: float,
    mode: Mode = "final",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spiking layer: input current (..., T) -> (PSP, spikes). Only the PSP carries gradient."""
    _check_params(tau_m, tau_s, threshold, mode)
    return _TSSLBP.apply(current, float(tau_m), float(tau_s), float(threshold), mode)


def tsslbp_psp(
    current: torch.Tensor,
    *,
    tau_m: float,
    tau_s: float,
    threshold: float,
    mode: Mode = "final",
) -> torch.Tensor:
    """The layer's PSP (same shape as `current`, time last), differentiable with TSSL-BP.

    `mode`: "final" (the authors' final backward), "submission" (June 2020: inter-neuron term
    only, 1/du clamped at 10, the layer switches to the surrogate when its firing rate is at most
    0.1) or "surrogate" (sigmoid surrogate through the PSP kernel only), for ablations.
    """
    psp, _ = tsslbp_forward(current, tau_m=tau_m, tau_s=tau_s, threshold=threshold, mode=mode)
    return psp
