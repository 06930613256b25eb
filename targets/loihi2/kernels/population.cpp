// One Lava step of a CUBA LIF population in one pass: the reference simulator's `_update`
// (targets/loihi2/simulator.py), element by element in the same float64 arithmetic on the same
// int32 states, so the integers it holds come out bit for bit the same. One thread: the synaptic
// products beside it (numpy's BLAS) have the cores, and two thread pools on them slow both
// down. Loihi's constants (the decay unity, the 24-bit limits) come from
// targets/loihi2/formats.py as arguments.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int64_t kChunk = 16384;  // elements whose u stays in cache between the two passes

}  // namespace

// u over one chunk: decay, drive, and Lava's int32 sum wrapped once into 24 bits. Returns how
// many values the wrap changed. Every step is an integer conversion or compare, so the loop
// vectorises; x is an integer below 2^53, so converting it to int64 is exact.
template <typename drive_t>
int64_t current_pass(int32_t* __restrict pu, const drive_t* __restrict pd, int64_t count,
                     double cu, int32_t u_wrap) {
  int64_t wrapped = 0;
  for (int64_t i = 0; i < count; ++i) {
    double x = std::trunc(static_cast<double>(pu[i]) * cu);
    if (pd) x += static_cast<double>(pd[i]);
    const int64_t exact = static_cast<int64_t>(x);
    // Lava's int32 sum: conversion to a signed type is modular (C++20).
    int32_t w = static_cast<int32_t>(static_cast<uint32_t>(exact));
    w = w > u_wrap ? w - 2 * u_wrap : w;
    w = w <= -u_wrap ? w + 2 * u_wrap : w;
    wrapped += w != exact;
    pu[i] = w;
  }
  return wrapped;
}

// v, the spike and the reset over one chunk. The choices that would branch inside the loop (a
// bias, recording v where spiking) are template arguments and the pointers __restrict, so that
// the loop vectorises; `bias` holds the chunk's bias element by element. Adds the spikes to
// `fired` and returns how many values were clipped.
template <bool kBias, bool kCrossing>
int64_t voltage_pass(int32_t* __restrict pv, const int32_t* __restrict pu,
                     const double* __restrict bias, float* __restrict ps,
                     int32_t* __restrict pc, int64_t count, double cv, double threshold,
                     double reset_sub, bool subtract, double state_limit, int64_t& fired) {
  int64_t clipped = 0, spikes = 0;
  for (int64_t i = 0; i < count; ++i) {
    double y = std::trunc(static_cast<double>(pv[i]) * cv);
    y += static_cast<double>(pu[i]);
    if constexpr (kBias) y += bias[i];
    clipped += (y < -state_limit) | (y > state_limit);
    y = std::min(std::max(y, -state_limit), state_limit);
    const bool s = y > threshold;
    spikes += s;
    ps[i] = s ? 1.0f : 0.0f;
    if constexpr (kCrossing) pc[i] = s ? static_cast<int32_t>(y) : pc[i];
    pv[i] = static_cast<int32_t>(s ? (subtract ? y - reset_sub : 0.0) : y);
  }
  fired += spikes;
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

// Two branch-free passes over each chunk, which the compiler vectorises: u, then v, the spike
// and the reset.
template <typename drive_t>
void step(int32_t* pu, int32_t* pv, const drive_t* pd, const double* pb, int64_t channels,
          int64_t inner, float* ps, int32_t* pc, int64_t n, double cu, double cv,
          double threshold, double reset_sub, bool subtract, int32_t u_wrap, double state_limit,
          int64_t& wraps, int64_t& saturations, int64_t& fired) {
  static thread_local std::vector<double> bias(kChunk);  // not a fresh 128 KiB every step
  const auto pass = pb ? (pc ? voltage_pass<true, true> : voltage_pass<true, false>)
                       : (pc ? voltage_pass<false, true> : voltage_pass<false, false>);
  // A kept fraction of 1 keeps everything: 1.0 * x truncated is x, so no branch is needed.
  for (int64_t begin = 0; begin < n; begin += kChunk) {
    const int64_t count = std::min(n, begin + kChunk) - begin;
    wraps += current_pass(pu + begin, pd ? pd + begin : pd, count, cu, u_wrap);
    if (pb) chunk_bias(pb, channels, inner, begin, count, bias.data());
    saturations += pass(pv + begin, pu + begin, bias.data(), ps + begin, pc ? pc + begin : pc,
                        count, cv, threshold, reset_sub, subtract, state_limit, fired);
  }
}

// u, v: int32 state (N, ...), contiguous; drive: the same shape in any real or integer type,
// or empty (silent input); bias: float64 (C,) per channel, each repeated `inner` times along
// the state, or empty; spikes: float32 out, 0 or 1; crossing: int32, v before the reset where
// spiking, or empty; current_kept, voltage_kept: the fractions of u and v kept per step.
// Returns (current wraps, voltage saturations, spikes).
std::vector<int64_t> update(at::Tensor u, at::Tensor v, const at::Tensor& drive,
                            const at::Tensor& bias, int64_t inner, at::Tensor spikes,
                            at::Tensor crossing, double current_kept, double voltage_kept,
                            double threshold, double reset_sub, bool subtract, int64_t u_wrap,
                            double state_limit) {
  TORCH_CHECK(u.is_contiguous() && v.is_contiguous() && spikes.is_contiguous(), "contiguous");
  TORCH_CHECK(!drive.numel() || (drive.is_contiguous() && drive.numel() == u.numel()), "drive");
  int64_t wraps = 0, saturations = 0, fired = 0;
  const double* pb = bias.numel() ? bias.data_ptr<double>() : nullptr;
  int32_t* pc = crossing.numel() ? crossing.data_ptr<int32_t>() : nullptr;
  auto run = [&](auto* pd) {
    step(u.data_ptr<int32_t>(), v.data_ptr<int32_t>(), pd, pb, bias.numel(), inner,
         spikes.data_ptr<float>(), pc, u.numel(), current_kept, voltage_kept, threshold,
         reset_sub, subtract, static_cast<int32_t>(u_wrap), state_limit, wraps, saturations,
         fired);
  };
  if (!drive.numel()) {
    run(static_cast<const double*>(nullptr));
  } else {
    AT_DISPATCH_ALL_TYPES(drive.scalar_type(), "population_update",
                          [&] { run(drive.data_ptr<scalar_t>()); });
  }
  return {wraps, saturations, fired};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("update", &update, "one Lava step of a CUBA LIF population, in place");
}
