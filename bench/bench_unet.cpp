// One call of the real SD 1.5 UNet (channels 320/640/1280/1280, 2 layers per block, context 768,
// 8 heads, ~860M parameters) on 64x64 latents (a 512x512 image), batch 1 and batch 2 (classifier-
// free guidance), with random f16 weights made here (no file). GFLOP/s counts 2 x the multiply-adds
// of convolutions, linears and attention (Unet::macs); peak_frac compares with the measured peak.
#include <benchmark/benchmark.h>

#include <random>

#include "bench_common.h"
#include "core/half.h"
#include "models/unet.h"
#include "ops/ops.h"

namespace easel {
namespace {

using namespace bench;

UnetConfig sd15_config() {
  UnetConfig c;
  c.in_channels = c.out_channels = 4;
  c.block_channels = {320, 640, 1280, 1280};
  c.layers_per_block = 2;
  c.down_depth = {1, 1, 1, 0};
  c.up_depth = {0, 1, 1, 1};
  c.mid_depth = 1;
  c.context_dim = 768;
  c.linear_projection = false;
  c.time_embed_dim = 1280;
  return c;
}

// Random f16 weights of the right scale (1/sqrt(fan_in); norms around 1), built once.
const Unet& sd15() {
  static const Unet unet = [] {
    std::mt19937 rng(1234);
    std::vector<SourceTensor> tensors;
    for (const auto& [name, shape] : Unet::weight_shapes(sd15_config(), UnetOptions::sd1())) {
      const int64_t n = shape.numel(), fan_in = shape.size() > 1 ? n / shape[0] : 1;
      const bool norm = name.find("norm") != std::string::npos && shape.size() == 1;
      const float scale = shape.size() == 1 ? 0.05f : 1.0f / std::sqrt(float(fan_in));
      std::uniform_real_distribution<float> u(-1.7320508f, 1.7320508f);  // unit variance
      std::vector<int16_t> v(size_t(n), 0);
      for (auto& x : v) x = int16_t(f32_to_f16((norm && name.ends_with("weight") ? 1.0f : 0.0f) + scale * u(rng)));
      tensors.push_back({name, Tensor::from_vector(v, shape).bitcast(DType::F16), name});
    }
    Context ctx = runtime().context();
    return Unet::load(ctx, tensors, UnetOptions::sd1()).value();
  }();
  return unet;
}

void BM_UnetSd15_64x64(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const Unet& unet = sd15();
  Context ctx = runtime().context();
  Tensor x = ops::full(ctx, {batch, 4, 64, 64}, 0.5f);
  Tensor t = ops::full(ctx, {batch}, 500.0f);
  Tensor context = ops::full(ctx, {batch, 77, 768}, 0.1f);
  run_timed(state, 2.0 * double(unet.macs(batch, 64, 64, 77)),
            [&] { benchmark::DoNotOptimize(unet.forward(ctx, x, t, context).raw()); });
  state.counters["TMAC"] = double(unet.macs(batch, 64, 64, 77)) * 1e-12;
}
BENCHMARK(BM_UnetSd15_64x64)->Arg(1)->Arg(2)->Unit(benchmark::kSecond)->UseManualTime()->Iterations(2);

}  // namespace
}  // namespace easel
