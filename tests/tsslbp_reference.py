"""TSSL-BP written independently of the module: per neuron, explicit sums over the PSP kernel
and over the neuron's own spike times (tsslbp.md 2.2), float64. Tests compare against it."""

import math

import numpy as np

ALPHA = 0.2  # the surrogate's width in the authors' final code (tsslbp.md 2.2)


def reference_forward(current: np.ndarray, tau_m: float, tau_s: float, threshold: float):
    """Plain per-neuron loop over scalars: (psp, spikes, u before reset, du)."""
    n, steps = current.shape
    psp, spikes, u_pre, du = (np.zeros((n, steps)) for _ in range(4))
    for i in range(n):
        u_reset, a = 0.0, 0.0
        for t in range(steps):
            u = (1 - 1 / tau_m) * u_reset + current[i, t]
            s = 1.0 if u > threshold else 0.0
            du[i, t] = u - u_reset
            u_reset = 0.0 if s else u
            a = (1 - 1 / tau_s) * a + s / tau_s
            psp[i, t], spikes[i, t], u_pre[i, t] = a, s, u
    return psp, spikes, u_pre, du


def reference_grad(current, grad_psp, tau_m, tau_s, threshold):
    """dL/dI from the closed form of tsslbp.md section 2.2, explicit sums, float64."""
    _, spikes, u_pre, du = reference_forward(current, tau_m, tau_s, threshold)
    n, steps = current.shape
    theta_m, beta_s = 1 / tau_m, 1 - 1 / tau_s
    eps = [(1 / tau_s) * beta_s**k for k in range(steps)]
    grad = np.zeros((n, steps))
    for i in range(n):
        e = [sum(eps[k] * grad_psp[i, t + k] for k in range(steps - t)) for t in range(steps)]
        fire = [t for t in range(steps) if spikes[i, t]]
        g_tssl = np.zeros(steps)
        for j in reversed(range(len(fire))):  # each spike, chained to the next one only
            t = fire[j]
            m = min(1 / du[i, t], 8.0)
            intra = 0.0
            if j + 1 < len(fire):
                t_next = fire[j + 1]
                intra = theta_m * u_pre[i, t] * (1 - theta_m) ** (t_next - t - 1) * g_tssl[t_next]
            g_tssl[t] = m * (e[t] + intra)
        for t in range(steps):  # silent steps: the leak carries the next spike's value back
            later = [f for f in fire if f > t]
            if not spikes[i, t] and later:
                g_tssl[t] = (1 - theta_m) ** (later[0] - t) * g_tssl[later[0]]
        for t in range(steps):
            psp_t = sum(eps[t - k] * spikes[i, k] for k in range(t + 1))
            if psp_t >= 1 / (4 * tau_s):
                grad[i, t] = g_tssl[t]
            else:
                z = min(max((threshold - u_pre[i, t]) / ALPHA, -8.0), 8.0)
                grad[i, t] = math.exp(z) / (1 + math.exp(z)) ** 2 / ALPHA * e[t]
    return grad
