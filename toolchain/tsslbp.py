"""TSSL-BP, the functional core: the spiking layer's forward pass and its gradient.

Follows the authors' final code (stonezwr/TSSL-BP at ffaac71) as described in
`shared/reference/tsslbp.md` sections 1.2 and 2.2. Time is the last axis of every tensor.

Forward, per neuron, from u^r = 0 and a = 0:
    u_t = (1 - 1/tau_m) u^r_{t-1} + I_t        (du_t = u_t - u^r_{t-1})
    s_t = [u_t > V_th],  u^r_t = u_t (1 - s_t)  (hard reset to 0)
    a_t = a_{t-1} + (s_t - a_{t-1}) / tau_s    (the layer's output, its PSP)

Backward ("final" mode), with g_t = dL/da_t, from T-1 down to 0:
    e_t = g_t / tau_s + (1 - 1/tau_s) e_{t+1}
    G_t = m_t (e_t + u_t G_{t+1} / tau_m) + (1 - s_t)(1 - 1/tau_m) G_{t+1}
    m_t = s_t min(1/du_t, 8)
    dL/dI_t = G_t where a_t >= 1/(4 tau_s), else sigmoid'(u_t) e_t   (G itself is never replaced)

Memory is O(T) per neuron: four saved tensors of the input's shape, no T x T matrices.
"""

from __future__ import annotations

from typing import Literal

import torch

Mode = Literal["final", "submission", "surrogate"]
MODES: tuple[str, ...] = ("final", "submission", "surrogate")

SURROGATE_ALPHA = 0.2  # width of the sigmoid surrogate, in units of the membrane potential
FINAL_INV_DU_CLAMP = 8.0  # final code: 1/du saturates at 8
SUBMISSION_INV_DU_CLAMP = 10.0  # June 2020 code: 1/du saturates at 10
SUBMISSION_RATE_SWITCH = 0.1  # June 2020 code: TSSL only in layers firing above this rate


def psp_filter(x: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Synaptic filter of the last axis: y_t = (1 - 1/tau_s) y_{t-1} + x_t / tau_s."""
    beta_s = 1.0 - 1.0 / tau_s
    out = torch.empty_like(x)
    y = torch.zeros_like(x[..., 0])
    for t in range(x.shape[-1]):
        y = beta_s * y + x[..., t] / tau_s
        out[..., t] = y
    return out


def lif_forward(
    current: torch.Tensor, *, tau_m: float, tau_s: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs the neuron over time; returns (psp, spikes, u before reset, du), each (..., T)."""
    theta_m = 1.0 / tau_m
    psp = torch.empty_like(current)
    spikes = torch.empty_like(current)
    u_pre = torch.empty_like(current)
    du = torch.empty_like(current)
    u_reset = torch.zeros_like(current[..., 0])
    a = torch.zeros_like(current[..., 0])
    for t in range(current.shape[-1]):
        du_t = current[..., t] - theta_m * u_reset
        u_t = u_reset + du_t
        s_t = (u_t > threshold).to(current.dtype)
        u_reset = u_t * (1.0 - s_t)
        a = a + (s_t - a) / tau_s
        psp[..., t], spikes[..., t], u_pre[..., t], du[..., t] = a, s_t, u_t, du_t
    return psp, spikes, u_pre, du


def sigmoid_surrogate(u: torch.Tensor, threshold: float) -> torch.Tensor:
    """sigma'((u - V_th)/alpha)/alpha with the argument clipped to [-8, 8], as the authors' code."""
    z = ((threshold - u) / SURROGATE_ALPHA).clamp(-8.0, 8.0)
    sig = torch.sigmoid(z)
    return sig * (1.0 - sig) / SURROGATE_ALPHA


def kernel_backward(grad_psp: torch.Tensor, tau_s: float) -> torch.Tensor:
    """e_t = sum_k eps_k g_{t+k}: the PSP kernel applied backwards in time, in O(T)."""
    beta_s = 1.0 - 1.0 / tau_s
    e = torch.empty_like(grad_psp)
    acc = torch.zeros_like(grad_psp[..., 0])
    for t in reversed(range(grad_psp.shape[-1])):
        acc = grad_psp[..., t] / tau_s + beta_s * acc
        e[..., t] = acc
    return e


def _final_backward(
    e: torch.Tensor,
    psp: torch.Tensor,
    spikes: torch.Tensor,
    u_pre: torch.Tensor,
    du: torch.Tensor,
    *,
    tau_m: float,
    tau_s: float,
    threshold: float,
) -> torch.Tensor:
    theta_m = 1.0 / tau_m
    # du > 0 wherever the neuron spiked; elsewhere m is 0 and the guard only avoids 1/0.
    inv_du = torch.where(spikes > 0, 1.0 / du.where(spikes > 0, torch.ones_like(du)), 0.0)
    m = spikes * inv_du.clamp(max=FINAL_INV_DU_CLAMP)
    active = psp >= 1.0 / (4.0 * tau_s)
    surrogate = sigmoid_surrogate(u_pre, threshold) * e
    grad = torch.empty_like(e)
    g_next = torch.zeros_like(e[..., 0])
    for t in reversed(range(e.shape[-1])):
        s_t = spikes[..., t]
        g_t = m[..., t] * (e[..., t] + theta_m * u_pre[..., t] * g_next)
        g_t = g_t + (1.0 - s_t) * (1.0 - theta_m) * g_next
        grad[..., t] = torch.where(active[..., t], g_t, surrogate[..., t])
        g_next = g_t
    return grad


def _submission_backward(
    e: torch.Tensor, spikes: torch.Tensor, u_pre: torch.Tensor, du: torch.Tensor, threshold: float
) -> torch.Tensor:
    if spikes.mean() > SUBMISSION_RATE_SWITCH:
        inv_du = torch.where(spikes > 0, 1.0 / du.where(spikes > 0, torch.ones_like(du)), 0.0)
        return spikes * inv_du.clamp(max=SUBMISSION_INV_DU_CLAMP) * e
    return sigmoid_surrogate(u_pre, threshold) * e


def tsslbp_grad(
    grad_psp: torch.Tensor,
    psp: torch.Tensor,
    spikes: torch.Tensor,
    u_pre: torch.Tensor,
    du: torch.Tensor,
    *,
    tau_m: float,
    tau_s: float,
    threshold: float,
    mode: Mode = "final",
) -> torch.Tensor:
    """dL/dI from dL/dPSP at a forward operating point (psp, spikes, u before reset, du)."""
    e = kernel_backward(grad_psp, tau_s)
    if mode == "final":
        return _final_backward(
            e, psp, spikes, u_pre, du, tau_m=tau_m, tau_s=tau_s, threshold=threshold
        )
    if mode == "submission":
        return _submission_backward(e, spikes, u_pre, du, threshold)
    return sigmoid_surrogate(u_pre, threshold) * e


class _TSSLBP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, current, tau_m, tau_s, threshold, mode):  # type: ignore[override]
        psp, spikes, u_pre, du = lif_forward(current, tau_m=tau_m, tau_s=tau_s, threshold=threshold)
        ctx.save_for_backward(psp, spikes, u_pre, du)
        ctx.params = {"tau_m": tau_m, "tau_s": tau_s, "threshold": threshold, "mode": mode}
        ctx.mark_non_differentiable(spikes)
        return psp, spikes

    @staticmethod
    def backward(ctx, grad_psp, _grad_spikes):  # type: ignore[override]
        return tsslbp_grad(grad_psp, *ctx.saved_tensors, **ctx.params), None, None, None, None


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
