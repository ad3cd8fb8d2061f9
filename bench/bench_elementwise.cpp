// Throughput of the memory-bound CPU kernels (norms, activations, binary ops, layout copies).
// Each reports GB/s (the "GB=x/s" counter): the bytes an ideal kernel must move (inputs read
// once, output written once) over the wall time. BM_Memcpy (one thread) gives the machine's copy
// bandwidth to compare against. Inputs of a few MB stay in L3 between iterations.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "backends/runtime.h"
#include "ops/ops.h"

namespace easel {
namespace {

struct Bench {
  std::unique_ptr<Runtime> runtime = Runtime::create().value();
  Context ctx = runtime->context();

  Tensor random(const Shape& shape) {
    std::vector<float> v(static_cast<size_t>(shape.numel()));
    uint32_t s = 12345;
    for (float& x : v) {
      s = s * 1664525u + 1013904223u;
      x = static_cast<float>(s >> 8) / float(1 << 24) * 4.0f - 2.0f;
    }
    return Tensor::from_vector(v, shape);
  }
};

void report_bytes(benchmark::State& state, double bytes) {
  state.counters["GB"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

constexpr int64_t k4M = int64_t(1) << 22;

void BM_Memcpy(benchmark::State& state) {
  std::vector<float> a(k4M, 1.0f), b(k4M);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), a.size() * sizeof(float));
    benchmark::DoNotOptimize(b.data());
  }
  report_bytes(state, 2.0 * k4M * sizeof(float));
}

void BM_GroupNorm(benchmark::State& state) {
  Bench b;
  const Tensor x = b.random({1, 320, 64, 64});
  const Tensor w = b.random({320}), bias = b.random({320});
  for (auto _ : state) benchmark::DoNotOptimize(ops::group_norm(b.ctx, x, 32, w, bias).raw());
  report_bytes(state, 2.0 * x.nbytes());
}

void BM_LayerNorm(benchmark::State& state) {
  Bench b;
  const Tensor x = b.random({4096, 1024});
  const Tensor w = b.random({1024}), bias = b.random({1024});
  for (auto _ : state) benchmark::DoNotOptimize(ops::layer_norm(b.ctx, x, w, bias).raw());
  report_bytes(state, 2.0 * x.nbytes());
}

void BM_Softmax(benchmark::State& state) {
  Bench b;
  const Tensor x = b.random({4096, 1024});
  for (auto _ : state) benchmark::DoNotOptimize(ops::softmax(b.ctx, x).raw());
  report_bytes(state, 2.0 * x.nbytes());
}

void BM_Silu(benchmark::State& state) {
  Bench b;
  const Tensor x = b.random({k4M});
  for (auto _ : state) benchmark::DoNotOptimize(ops::silu(b.ctx, x).raw());
  report_bytes(state, 2.0 * x.nbytes());
}

void BM_GeluErf(benchmark::State& state) {
  Bench b;
  const Tensor x = b.random({k4M});
  for (auto _ : state) benchmark::DoNotOptimize(ops::gelu(b.ctx, x).raw());
  report_bytes(state, 2.0 * x.nbytes());
}

void BM_Add(benchmark::State& state) {
  Bench b;
  const Tensor x = b.random({k4M}), y = b.random({k4M});
  for (auto _ : state) benchmark::DoNotOptimize(ops::add(b.ctx, x, y).raw());
  report_bytes(state, 3.0 * x.nbytes());
}

// A conv bias [1, C, 1, 1] over NCHW: the broadcast operand is a scalar per H*W run.
void BM_AddChannelBias(benchmark::State& state) {
  Bench b;
  const Tensor x = b.random({1, 320, 64, 64}), bias = b.random({1, 320, 1, 1});
  for (auto _ : state) benchmark::DoNotOptimize(ops::add(b.ctx, x, bias).raw());
  report_bytes(state, 2.0 * x.nbytes());
}

// NCHW -> NHWC as before attention: [1, 320, 4096] viewed as [1, 4096, 320], made contiguous.
void BM_CopyPermuted(benchmark::State& state) {
  Bench b;
  const Tensor x = b.random({1, 320, 4096}).permute({0, 2, 1});
  for (auto _ : state) benchmark::DoNotOptimize(ops::contiguous(b.ctx, x).raw());
  report_bytes(state, 2.0 * x.nbytes());
}

void BM_CastF16(benchmark::State& state) {
  Bench b;
  const Tensor x = b.random({k4M});
  for (auto _ : state) benchmark::DoNotOptimize(ops::cast(b.ctx, x, DType::F16).raw());
  report_bytes(state, 1.5 * x.nbytes());
}

BENCHMARK(BM_Memcpy)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GroupNorm)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LayerNorm)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Softmax)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Silu)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GeluErf)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Add)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AddChannelBias)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CopyPermuted)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CastF16)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace easel
