// One Lava step of a CUBA LIF population in one pass: the reference simulator's `_update`
// (targets/loihi2/simulator.py), element by element in the same float64 arithmetic, so the
// integers it holds come out bit for bit the same. One thread: the synaptic products beside it
// (numpy's BLAS) have the cores, and two thread pools on them slow both down. Loihi's
// constants (the decay unity, the 24-bit limits) come from targets/loihi2/formats.py as
// arguments.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int64_t kChunk = 16384;  // elements whose u stays in cache between the two passes

double wrap_current(double u, double u_wrap) {
  // Lava's int32 sum: conversion to a signed type is modular (C++20).
  double w = static_cast<int32_t>(static_cast<uint32_t>(static_cast<int64_t>(u)));
  if (w > u_wrap) w -= 2 * u_wrap;
  if (w <= -u_wrap) w += 2 * u_wrap;
  return w;
}

}  // namespace

// v, the spike and the reset over one chunk. The choices that would branch inside the loop (a
// bias, recording v where spiking) are template arguments and the pointers __restrict, so that
// the loop vectorises; `bias` holds the chunk's bias element by element.
template <bool kBias, bool kCrossing>
int64_t voltage_pass(double* __restrict pv, const double* __restrict pu,
                     const double* __restrict bias, bool* __restrict ps, double* __restrict pc,
                     int64_t count, double cv, double threshold, double reset_sub, bool subtract,
                     double state_limit) {
  int64_t clipped = 0;
  for (int64_t i = 0; i < count; ++i) {
    double y = std::trunc(pv[i] * cv);
    y += pu[i];
    if constexpr (kBias) y += bias[i];
    clipped += (y < -state_limit) | (y > state_limit);
    y = std::min(std::max(y, -state_limit), state_limit);
    const bool s = y > threshold;
    ps[i] = s;
    if constexpr (kCrossing) pc[i] = s ? y : pc[i];
    pv[i] = s ? (subtract ? y - reset_sub : 0.0) : y;
  }
  return clipped;
}

// The bias of elements [begin, begin + count) of a state laid out (N, channels, inner).
void chunk_bias(const double* pb, int64_t channels, int64_t inner, int64_t begin, int64_t count,
                double* out) {
  int64_t channel = (begin / inner) % channels, within = begin % inner;
  for (int64_t i = 0; i < count; ++i) {
    out[i] = pb[channel];
    if (++within == inner) {
      within = 0;
      if (++channel == channels) channel = 0;
    }
  }
}

// Two branch-free passes over each chunk, which the compiler vectorises: u (the rare values
// outside 24 bits are wrapped in a scalar pass after), then v, the spike and the reset.
template <typename drive_t>
void step(double* pu, double* pv, const drive_t* pd, const double* pb, int64_t channels,
          int64_t inner, bool* ps, double* pc, int64_t n, double cu, double cv, double threshold,
          double reset_sub, bool subtract, double u_wrap, double state_limit,
          int64_t& wraps, int64_t& saturations) {
  static thread_local std::vector<double> bias(kChunk);  // not a fresh 128 KiB every step
  // A kept fraction of 1 keeps everything: 1.0 * x truncated is x, so no branch is needed.
  for (int64_t begin = 0; begin < n; begin += kChunk) {
    const int64_t end = std::min(n, begin + kChunk), count = end - begin;
    int64_t outside = 0;
    for (int64_t i = begin; i < end; ++i) {
      double x = std::trunc(pu[i] * cu);
      if (pd) x += static_cast<double>(pd[i]);
      outside += (x < -u_wrap + 1) | (x > u_wrap);
      pu[i] = x;
    }
    if (outside) {
      for (int64_t i = begin; i < end; ++i) {
        if (pu[i] < -u_wrap + 1 || pu[i] > u_wrap) pu[i] = wrap_current(pu[i], u_wrap);
      }
    }
    if (pb) chunk_bias(pb, channels, inner, begin, count, bias.data());
    const auto pass = pb ? (pc ? voltage_pass<true, true> : voltage_pass<true, false>)
                         : (pc ? voltage_pass<false, true> : voltage_pass<false, false>);
    saturations += pass(pv + begin, pu + begin, bias.data(), ps + begin, pc ? pc + begin : pc,
                        count, cv, threshold, reset_sub, subtract, state_limit);
    wraps += outside;
  }
}

// u, v: float64 state (N, ...), contiguous; drive: the same shape in any real or integer type,
// or empty (silent input); bias: (C,) per channel, each repeated `inner` times along the state,
// or empty; spikes: bool out; crossing: float64, v before the reset where spiking, or empty;
// current_kept, voltage_kept: the fractions of u and v kept per step. Returns (current wraps,
// voltage saturations).
std::vector<int64_t> update(at::Tensor u, at::Tensor v, const at::Tensor& drive,
                            const at::Tensor& bias, int64_t inner, at::Tensor spikes,
                            at::Tensor crossing, double current_kept, double voltage_kept,
                            double threshold, double reset_sub, bool subtract, double u_wrap,
                            double state_limit) {
  TORCH_CHECK(u.is_contiguous() && v.is_contiguous() && spikes.is_contiguous(), "contiguous");
  TORCH_CHECK(!drive.numel() || (drive.is_contiguous() && drive.numel() == u.numel()), "drive");
  int64_t wraps = 0, saturations = 0;
  const double* pb = bias.numel() ? bias.data_ptr<double>() : nullptr;
  double* pc = crossing.numel() ? crossing.data_ptr<double>() : nullptr;
  auto run = [&](auto* pd) {
    step(u.data_ptr<double>(), v.data_ptr<double>(), pd, pb, bias.numel(), inner,
         spikes.data_ptr<bool>(), pc, u.numel(), current_kept, voltage_kept, threshold,
         reset_sub, subtract, u_wrap, state_limit, wraps, saturations);
  };
  if (!drive.numel()) {
    run(static_cast<const double*>(nullptr));
  } else {
    AT_DISPATCH_ALL_TYPES(drive.scalar_type(), "population_update",
                          [&] { run(drive.data_ptr<scalar_t>()); });
  }
  return {wraps, saturations};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("update", &update, "one Lava step of a CUBA LIF population, in place");
}
