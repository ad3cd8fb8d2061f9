// Kernel benchmarks: GEMM (linear), 3x3 conv and attention at Stable Diffusion sizes, each with
// its GFLOP/s and the fraction of this machine's peak FMA throughput measured in the same run
// (`peak_frac`). Everything runs on all of the context's threads.
//
//   easel_bench --benchmark_filter='Peak|Linear|Conv|Attention'
#include <benchmark/benchmark.h>
#include <hwy/highway.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "backends/runtime.h"
#include "bench_common.h"
#include "core/half.h"
#include "ops/ops.h"

namespace easel {
namespace {

using namespace bench;

void BM_PeakFma(benchmark::State& state) {
  const int threads = state.range(0) == 0 ? runtime().context().threads() : static_cast<int>(state.range(0));
  double gflops = 0;
  for (auto _ : state) gflops = measure_peak(threads);
  state.counters["threads"] = threads;
  state.counters["GFLOP/s"] = gflops;
  if (state.range(0) == 0) state.counters["peak_frac"] = gflops / peak_gflops();
}
BENCHMARK(BM_PeakFma)->Arg(1)->Arg(0)->ArgName("threads(0=all)")->Iterations(1)->Unit(benchmark::kMillisecond);

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// A weight as a checkpoint holds it: f32 or f16, on read-only storage (the mapped file) unless
// `writable`, which makes the conv re-pack it every call.
Tensor make_weight(const Shape& shape, DType dtype, bool writable, uint32_t seed) {
  const auto values = random_values(shape.numel(), seed);
  const size_t bytes = dtype_bytes(dtype, shape.numel());
  auto owner = std::make_shared<std::vector<std::byte>>(bytes);
  if (dtype == DType::F32) {
    std::memcpy(owner->data(), values.data(), bytes);
  } else {
    auto* h = reinterpret_cast<uint16_t*>(owner->data());
    for (size_t i = 0; i < values.size(); ++i) h[i] = f32_to_f16(values[i]);
  }
  std::byte* data = owner->data();
  auto storage = std::make_shared<BorrowedStorage>(owner, data, bytes, Device{}, !writable);
  return Tensor::from_storage(storage, 0, shape, dtype);
}

// --- GEMM -----------------------------------------------------------------------------------------

// x [M, K] · w[N, K]ᵀ + bias: the projections of SD1.5's first UNet level (4096 tokens, 320
// channels: FF up and down, proj_in/out at 1024 tokens) and the text-conditioning K/V (77 tokens).
void BM_Linear(benchmark::State& state) {
  Context ctx = runtime().context();
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const DType wt = state.range(3) ? DType::F16 : DType::F32;
  const Tensor x = Tensor::from_vector(random_values(M * K, 1), {M, K});
  const Tensor w = make_weight({N, K}, wt, false, 2);
  const Tensor b = make_weight({N}, wt, false, 3);
  run_timed(state, 2.0 * M * N * K, [&] { benchmark::DoNotOptimize(ops::linear(ctx, x, w, b).raw()); });
  state.SetLabel(wt == DType::F16 ? "f16 weights" : "f32 weights");
}
BENCHMARK(BM_Linear)
    ->ArgNames({"M", "K", "N", "f16"})
    ->ArgsProduct({{4096}, {320}, {1280}, {0, 1}})
    ->ArgsProduct({{4096}, {1280}, {320}, {0, 1}})
    ->ArgsProduct({{1024}, {640}, {2560}, {0, 1}})
    ->ArgsProduct({{77}, {768}, {320}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// --- conv -----------------------------------------------------------------------------------------

// 3x3, stride 1, pad 1 at UNet levels (320@64x64, 640@32x32, 1280@16x16 and 8x8), the SD VAE's
// 128@256x256 and TAESD's 64@128x128. Weight modes: 0 f32 read-only (packed once, cached),
// 1 f32 writable (re-packed every call), 2 f16 read-only, 3 f16 writable (converted every call).
void BM_Conv3x3(benchmark::State& state) {
  Context ctx = runtime().context();
  const int64_t C = state.range(0), HW = state.range(1), mode = state.range(2);
  const DType wt = mode >= 2 ? DType::F16 : DType::F32;
  const bool writable = mode % 2 == 1;
  const Tensor x = Tensor::from_vector(random_values(C * HW * HW, 1), {1, C, HW, HW});
  const Tensor w = make_weight({C, C, 3, 3}, wt, writable, 2);
  const Tensor b = make_weight({C}, DType::F32, writable, 3);
  Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  run_timed(state, 2.0 * C * C * 9 * HW * HW, [&] { benchmark::DoNotOptimize(ops::conv2d(ctx, x, w, b, p).raw()); });
  state.SetLabel(std::string(wt == DType::F16 ? "f16 " : "f32 ") + (writable ? "repacked per call" : "cached"));
}
BENCHMARK(BM_Conv3x3)
    ->ArgNames({"C", "HW", "mode"})
    ->ArgsProduct({{320}, {64}, {0, 1, 2, 3}})
    ->ArgsProduct({{640}, {32}, {0, 1, 2, 3}})
    ->ArgsProduct({{1280}, {16, 8}, {0, 1, 2, 3}})
    ->ArgsProduct({{128}, {256}, {0, 3}})
    ->ArgsProduct({{64}, {128}, {0, 3}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// --- attention --------------------------------------------------------------------------------

// Self-attention at 4096 tokens (SD1.5's first level: 8 heads of 40; SD2's: 5 heads of 64) and
// cross-attention to 77 text tokens. q, k, v are [B, H, N, D] views of [B, N, H, D] buffers,
// as a model's projections produce them. Flops: 4·B·H·Nq·Nk·D (QKᵀ and PV).
void BM_Attention(benchmark::State& state) {
  Context ctx = runtime().context();
  const int64_t H = state.range(0), Nq = state.range(1), Nk = state.range(2), D = state.range(3);
  auto view = [&](int64_t n, uint32_t seed) {
    return Tensor::from_vector(random_values(n * H * D, seed), {1, n, H, D}).permute({0, 2, 1, 3});
  };
  const Tensor q = view(Nq, 1), k = view(Nk, 2), v = view(Nk, 3);
  run_timed(state, 4.0 * H * Nq * Nk * D, [&] { benchmark::DoNotOptimize(ops::attention(ctx, q, k, v).raw()); });
}
BENCHMARK(BM_Attention)
    ->ArgNames({"H", "Nq", "Nk", "D"})
    ->Args({8, 4096, 4096, 40})
    ->Args({5, 4096, 4096, 64})
    ->Args({8, 4096, 77, 40})
    ->Args({1, 4096, 4096, 512})  // the SD VAE mid-block attention at 512x512: one head of 512
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace easel
