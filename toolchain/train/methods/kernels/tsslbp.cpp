// TSSL-BP's forward recursion and final-mode backward, fused: one pass over T per neuron, the
// neurons split over threads. Tensors are time-first (T, n) and contiguous. The arithmetic is
// toolchain/train/methods/tsslbp.py's, step for step; that module stays the reference.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>
#include <vector>

namespace {

constexpr int64_t kGrain = 2048;  // neurons per task: a few cache lines per step and tensor

// One step of the forward over neurons [0, count); the pointers start at the chunk's first
// neuron. Branch-free and __restrict, as backward_step, so that it vectorises (the vector FMA,
// compare, multiply and division round as the scalar ones: the same floats).
template <typename scalar_t>
void forward_step(const scalar_t* __restrict in, scalar_t* __restrict u_reset,
                  scalar_t* __restrict a, scalar_t* __restrict out_a, scalar_t* __restrict out_u,
                  scalar_t* __restrict out_s, int64_t count, scalar_t alpha, scalar_t tau_s,
                  scalar_t threshold) {
  for (int64_t k = 0; k < count; ++k) {
    const scalar_t u = std::fma(alpha, u_reset[k], in[k]);  // torch.add(x, y, alpha=) fuses
    const scalar_t s = u > threshold ? scalar_t(1) : scalar_t(0);
    u_reset[k] = u * (scalar_t(1) - s);
    a[k] = a[k] + (s - a[k]) / tau_s;
    out_a[k] = a[k];
    out_u[k] = u;
    out_s[k] = s;
  }
}

template <typename scalar_t>
void forward_chunk(const scalar_t* current, scalar_t* psp, scalar_t* u_pre, scalar_t* spikes,
                   int64_t steps, int64_t n, int64_t begin, int64_t end, scalar_t alpha,
                   scalar_t tau_s, scalar_t threshold) {
  std::vector<scalar_t> u_reset(end - begin, 0), a(end - begin, 0);
  for (int64_t t = 0; t < steps; ++t) {
    const int64_t at = t * n + begin;
    forward_step<scalar_t>(current + at, u_reset.data(), a.data(), psp + at, u_pre + at,
                           spikes + at, end - begin, alpha, tau_s, threshold);
  }
}

template <typename scalar_t>
struct BackwardConstants {
  scalar_t tau_s, threshold, theta_m, beta_s, keep_m, active_from, clamp, surrogate_alpha;
};

// One step of the backward over neurons [0, count); the pointers start at the chunk's first
// neuron. `out` holds the clamped sigmoid on entry (computed by torch, vectorised: see
// surrogate.py) and dL/dI on exit; the surrogate sig (1 - sig) / alpha is formed here as
// surrogate.py does. The loop is branch-free so that it vectorises: 1/du is computed everywhere
// and selected, __restrict (honoured on parameters) spares it the alias checks that kept it
// scalar, and `prev` is loaded even at t = 0, as a conditional load blocks vectors too.
template <typename scalar_t>
void backward_step(const scalar_t* __restrict g, const scalar_t* __restrict a,
                   const scalar_t* __restrict u, const scalar_t* __restrict before,
                   scalar_t* __restrict out, scalar_t* __restrict e, scalar_t* __restrict g_next,
                   int64_t count, bool first, const BackwardConstants<scalar_t> c) {
  for (int64_t k = 0; k < count; ++k) {
    e[k] = g[k] / c.tau_s + c.beta_s * e[k];
    const scalar_t prev = before[k];
    const scalar_t reset = (first | (prev > c.threshold)) ? scalar_t(0) : prev;
    const scalar_t inv_du = std::min(scalar_t(1) / (u[k] - reset), c.clamp);
    const scalar_t fired = inv_du * (e[k] + c.theta_m * u[k] * g_next[k]);
    g_next[k] = u[k] > c.threshold ? fired : c.keep_m * g_next[k];
    const scalar_t sig = out[k];
    const scalar_t surrogate = sig * (scalar_t(1) - sig) / c.surrogate_alpha;
    out[k] = a[k] >= c.active_from ? g_next[k] : surrogate * e[k];
  }
}

// The final backward of neurons [begin, end), from the last step to the first; `grad` as
// backward_step's `out`.
template <typename scalar_t>
void backward_chunk(const scalar_t* grad_psp, const scalar_t* psp, const scalar_t* u_pre,
                    scalar_t* grad, int64_t steps, int64_t n, int64_t begin, int64_t end,
                    double tau_m, double tau_s, double threshold, double inv_du_clamp,
                    double surrogate_alpha) {
  // The constants as the reference has them: computed in double, rounded to the tensors' type.
  const BackwardConstants<scalar_t> c{scalar_t(tau_s),
                                      scalar_t(threshold),
                                      scalar_t(1.0 / tau_m),
                                      scalar_t(1.0 - 1.0 / tau_s),
                                      scalar_t(1.0 - 1.0 / tau_m),
                                      scalar_t(1.0 / (4.0 * tau_s)),
                                      scalar_t(inv_du_clamp),
                                      scalar_t(surrogate_alpha)};
  std::vector<scalar_t> e(end - begin, 0), g_next(end - begin, 0);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const int64_t at = t * n + begin, before = (t ? t - 1 : 0) * n + begin;
    backward_step<scalar_t>(grad_psp + at, psp + at, u_pre + at, u_pre + before, grad + at,
                            e.data(), g_next.data(), end - begin, t == 0, c);
  }
}

std::vector<at::Tensor> forward(const at::Tensor& current, double tau_m, double tau_s,
                                double threshold) {
  TORCH_CHECK(current.is_contiguous() && current.dim() >= 1, "current: contiguous (T, ...)");
  auto psp = at::empty_like(current), u_pre = at::empty_like(current);
  auto spikes = at::empty_like(current);
  const int64_t steps = current.size(0), n = steps ? current.numel() / steps : 0;
  AT_DISPATCH_FLOATING_TYPES(current.scalar_type(), "tsslbp_forward", [&] {
    const auto* in = current.data_ptr<scalar_t>();
    auto* a = psp.data_ptr<scalar_t>();
    auto* u = u_pre.data_ptr<scalar_t>();
    auto* s = spikes.data_ptr<scalar_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      forward_chunk<scalar_t>(in, a, u, s, steps, n, begin, end, scalar_t(1.0 - 1.0 / tau_m),
                              scalar_t(tau_s), scalar_t(threshold));
    });
  });
  return {psp, u_pre, spikes};
}

at::Tensor backward_final(const at::Tensor& grad_psp, const at::Tensor& psp,
                          const at::Tensor& u_pre, at::Tensor sigmoid, double tau_m,
                          double tau_s, double threshold, double inv_du_clamp,
                          double surrogate_alpha) {
  TORCH_CHECK(grad_psp.is_contiguous() && psp.is_contiguous() && u_pre.is_contiguous() &&
                  sigmoid.is_contiguous(),
              "time-first contiguous tensors");
  const int64_t steps = u_pre.size(0), n = steps ? u_pre.numel() / steps : 0;
  AT_DISPATCH_FLOATING_TYPES(u_pre.scalar_type(), "tsslbp_backward", [&] {
    const auto* g = grad_psp.data_ptr<scalar_t>();
    const auto* a = psp.data_ptr<scalar_t>();
    const auto* u = u_pre.data_ptr<scalar_t>();
    auto* out = sigmoid.data_ptr<scalar_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      backward_chunk<scalar_t>(g, a, u, out, steps, n, begin, end, tau_m, tau_s, threshold,
                               inv_du_clamp, surrogate_alpha);
    });
  });
  return sigmoid;
}

// How many threads one at::parallel_for of `tasks` single tasks ran on: 1 where the build lacks
// OpenMP, as the pragma in ATen's header is then ignored without a word.
int64_t parallel_threads(int64_t tasks) {
  std::mutex lock;
  std::set<int> threads;
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> hold(lock);
    threads.insert(at::get_thread_num());
  });
  return static_cast<int64_t>(threads.size());
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "time-first (psp, u before reset, spikes) of a time-first current");
  m.def("backward_final", &backward_final, "final-mode dL/dI, time-first, in the sigmoid");
  m.def("parallel_threads", &parallel_threads, "threads one at::parallel_for ran on");
}
