// Shared by the benchmarks: one runtime for the process, the machine's peak FMA throughput measured
// in the same run, and a timer that reports GFLOP/s and the fraction of that peak (`peak_frac`).
#pragma once

#include <benchmark/benchmark.h>
#include <hwy/highway.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "backends/runtime.h"

namespace easel::bench {

namespace hn = hwy::HWY_NAMESPACE;

inline Runtime& runtime() {
  static std::unique_ptr<Runtime> rt = Runtime::create().value();
  return *rt;
}

// --- peak -----------------------------------------------------------------------------------------

// 12 independent FMA chains: enough to cover the FMA latency on both pipes of current x86 cores
// (4 cycles x 2 pipes = 8 in flight). Distinct starting values keep the compiler from merging them.
HWY_NOINLINE inline float fma_loop(int64_t iterations, float seed) {
  const hn::ScalableTag<float> d;
  const auto m = hn::Set(d, 0.999999f), a = hn::Set(d, 1e-7f);
  auto v0 = hn::Set(d, seed), v1 = hn::Set(d, seed + 1), v2 = hn::Set(d, seed + 2), v3 = hn::Set(d, seed + 3);
  auto v4 = hn::Set(d, seed + 4), v5 = hn::Set(d, seed + 5), v6 = hn::Set(d, seed + 6), v7 = hn::Set(d, seed + 7);
  auto v8 = hn::Set(d, seed + 8), v9 = hn::Set(d, seed + 9), v10 = hn::Set(d, seed + 10), v11 = hn::Set(d, seed + 11);
  for (int64_t i = 0; i < iterations; ++i) {
    v0 = hn::MulAdd(v0, m, a), v1 = hn::MulAdd(v1, m, a), v2 = hn::MulAdd(v2, m, a), v3 = hn::MulAdd(v3, m, a);
    v4 = hn::MulAdd(v4, m, a), v5 = hn::MulAdd(v5, m, a), v6 = hn::MulAdd(v6, m, a), v7 = hn::MulAdd(v7, m, a);
    v8 = hn::MulAdd(v8, m, a), v9 = hn::MulAdd(v9, m, a), v10 = hn::MulAdd(v10, m, a), v11 = hn::MulAdd(v11, m, a);
  }
  const auto s = hn::Add(hn::Add(hn::Add(v0, v1), hn::Add(v2, v3)), hn::Add(hn::Add(v4, v5), hn::Add(v6, v7)));
  return hn::GetLane(hn::Add(s, hn::Add(hn::Add(v8, v9), hn::Add(v10, v11))));
}

inline double flops_per_iteration() { return 12.0 * 2.0 * static_cast<double>(hn::Lanes(hn::ScalableTag<float>())); }

// GFLOP/s of the FMA loop on `threads` threads at once (best of five 0.2 s runs, so that a
// moment of noise from other processes does not set the bar low).
inline double measure_peak(int threads) {
  const int64_t iterations = 20'000'000;  // ~0.1 s a thread
  double best = 0;
  for (int trial = 0; trial < 5; ++trial) {
    std::vector<std::thread> pool;
    std::vector<float> sink(threads);
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { sink[t] = fma_loop(iterations, float(t)); });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(sink.data());
    best = std::max(best, threads * iterations * flops_per_iteration() / s * 1e-9);
  }
  return best;
}

// The all-threads peak every other benchmark is compared with, measured once.
inline double peak_gflops() {
  static const double peak = measure_peak(runtime().context().threads());
  return peak;
}

// --- helpers --------------------------------------------------------------------------------------

// Times the loop with a wall clock (the work is on other threads too) and reports GFLOP/s and
// the fraction of peak.
template <class F>
inline void run_timed(benchmark::State& state, double flops, F&& body) {
  body();  // warm-up: primitive creation, weight packing, allocator caches
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    seconds += s;
  }
  const double gflops = flops * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.counters["GFLOP/s"] = gflops;
  state.counters["peak_frac"] = gflops / peak_gflops();
  state.counters["threads"] = runtime().context().threads();
}

}  // namespace easel::bench
