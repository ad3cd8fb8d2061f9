// TAEF2 decode of a 512x512 image (latents 32 x 64 x 64) with the real weights from the golden set.
// Reports GFLOP/s of the convolutions (2 x multiply-adds); compare with the measured peak printed by
// the kernel benchmarks of the same run.
#include <benchmark/benchmark.h>

#include "backends/runtime.h"
#include "models/registry.h"
#include "models/taesd.h"
#include "ops/ops.h"

namespace easel {
namespace {

void BM_Taef2Decode512(benchmark::State& state) {
  const char* env = std::getenv("EASEL_TEST_DATA");
  const std::string dir = std::string(env && *env ? env : "tests/data") + "/taef2_real";
  auto checkpoints = open_checkpoints(dir);
  if (!checkpoints) {
    state.SkipWithError(("run from the source root: " + checkpoints.error().message()).c_str());
    return;
  }
  std::vector<const Checkpoint*> parts;
  for (const auto& ck : *checkpoints)
    if (recognize(ck)) parts.push_back(&ck);
  auto taesd = Taesd::load(parts);
  if (!taesd) {
    state.SkipWithError(taesd.error().message().c_str());
    return;
  }
  auto rt = Runtime::create().value();
  Context& ctx = rt->context();
  Tensor latents = ops::full(ctx, {1, taesd->config().latent_channels, 64, 64}, 0.5f);
  for (auto _ : state) benchmark::DoNotOptimize(taesd->decode(ctx, latents).raw());
  const double flops = 2.0 * double(taesd->decode_macs(64, 64));
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP"] = flops * 1e-9;
}
BENCHMARK(BM_Taef2Decode512)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

}  // namespace
}  // namespace easel
