// TAEF2 decode of a 512x512 image (latents 32 x 64 x 64) with the real weights of the golden set
// (run from the source root, or set EASEL_TEST_DATA). GFLOP/s counts the convolutions
// (2 x multiply-adds); peak_frac compares with the peak FMA throughput measured in this run.
#include <benchmark/benchmark.h>

#include "bench_common.h"
#include "models/registry.h"
#include "models/taesd.h"
#include "ops/ops.h"

namespace easel {
namespace {

using namespace bench;

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
  Context ctx = runtime().context();
  auto taesd = Taesd::load(ctx, parts);
  if (!taesd) {
    state.SkipWithError(taesd.error().message().c_str());
    return;
  }
  Tensor latents = ops::full(ctx, {1, taesd->config().latent_channels, 64, 64}, 0.5f);
  run_timed(state, 2.0 * double(taesd->decode_macs(64, 64)), [&] { benchmark::DoNotOptimize(taesd->decode(ctx, latents).raw()); });
}
BENCHMARK(BM_Taef2Decode512)->Unit(benchmark::kMillisecond)->UseManualTime()->MinTime(2.0);

}  // namespace
}  // namespace easel
