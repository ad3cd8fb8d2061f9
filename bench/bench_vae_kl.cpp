// SD VAE (AutoencoderKL) decode of a 512x512 image (latents 4 x 64 x 64) with the real SD 1.x/2.x/XL
// config: block_out_channels 128, 256, 512, 512, layers_per_block 2, 32 groups, one-head
// attention over 4096 positions in the mid block. Random f16 weights made here (no file needed).
// GFLOP/s counts 2 x the multiply-adds of the convolutions, projections and attention products
// (~1.24 TMAC); peak_frac compares with the peak FMA throughput measured in this run. Heavy: one
// iteration is tens of seconds on a small machine.
//
//   easel_bench --benchmark_filter=VaeKl
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>

#include "bench_common.h"
#include "core/half.h"
#include "models/vae_kl.h"
#include "ops/ops.h"

namespace easel {
namespace {

using namespace bench;

// The tensors of a real-sized SD VAE decoder, in diffusers naming, with random f16 values
// (uniform, ~1/sqrt(fan-in) scale, so activations stay finite through the blocks), on read-only
// storage as a mapped checkpoint is (the conv caches its packed weights for those).
std::vector<SourceTensor> sd_vae_decoder_tensors() {
  const std::vector<int> ch = {128, 256, 512, 512};
  const int L = 4, layers = 2, latent = 4;
  std::vector<SourceTensor> out;
  std::mt19937 rng(42);
  auto add = [&](const std::string& name, const Shape& shape, float scale) {
    std::uniform_real_distribution<float> u(-scale, scale);
    auto owner = std::make_shared<std::vector<uint16_t>>(static_cast<size_t>(shape.numel()));
    for (auto& x : *owner) x = f32_to_f16(u(rng));
    auto* data = reinterpret_cast<std::byte*>(owner->data());
    auto storage = std::make_shared<BorrowedStorage>(owner, data, owner->size() * 2, Device{}, /*read_only=*/true);
    out.push_back({name, Tensor::from_storage(storage, 0, shape, DType::F16), "random: " + name});
  };
  auto conv = [&](const std::string& p, int in, int o, int k) {
    add(p + ".weight", {o, in, k, k}, 1.0f / std::sqrt(float(in * k * k)));
    add(p + ".bias", {o}, 0.01f);
  };
  auto linear = [&](const std::string& p, int in, int o) {
    add(p + ".weight", {o, in}, 1.0f / std::sqrt(float(in)));
    add(p + ".bias", {o}, 0.01f);
  };
  auto norm = [&](const std::string& p, int c) {
    add(p + ".weight", {c}, 1.0f);
    add(p + ".bias", {c}, 0.1f);
  };
  auto resnet = [&](const std::string& p, int in, int o) {
    norm(p + ".norm1", in);
    conv(p + ".conv1", in, o, 3);
    norm(p + ".norm2", o);
    conv(p + ".conv2", o, o, 3);
    if (in != o) conv(p + ".conv_shortcut", in, o, 1);
  };
  int c = ch[L - 1];
  conv("post_quant_conv", latent, latent, 1);
  conv("decoder.conv_in", latent, c, 3);
  resnet("decoder.mid_block.resnets.0", c, c);
  norm("decoder.mid_block.attentions.0.group_norm", c);
  for (const char* p : {"to_q", "to_k", "to_v", "to_out.0"}) linear(std::string("decoder.mid_block.attentions.0.") + p, c, c);
  resnet("decoder.mid_block.resnets.1", c, c);
  for (int i = 0; i < L; ++i) {
    const std::string p = "decoder.up_blocks." + std::to_string(i);
    const int o = ch[L - 1 - i];
    for (int j = 0; j < layers + 1; ++j, c = o) resnet(p + ".resnets." + std::to_string(j), c, o);
    if (i + 1 < L) conv(p + ".upsamplers.0.conv", c, c, 3);
  }
  norm("decoder.conv_norm_out", c);
  conv("decoder.conv_out", c, 3, 3);
  return out;
}

void BM_VaeKlDecode512(benchmark::State& state) {
  Context ctx = runtime().context();
  auto vae = VaeKl::load(ctx, sd_vae_decoder_tensors());
  if (!vae) {
    state.SkipWithError(vae.error().message().c_str());
    return;
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> z(4 * 64 * 64);
  for (auto& x : z) x = normal(rng);
  const Tensor latents = Tensor::from_vector(z, {1, 4, 64, 64});
  state.counters["TMAC"] = double(vae->decode_macs(64, 64)) * 1e-12;
  run_timed(state, 2.0 * double(vae->decode_macs(64, 64)),
            [&] { benchmark::DoNotOptimize(vae->decode(ctx, latents).raw()); });
  // High-water mark of the activations held at once (the allocator's; attention and GEMM
  // scratch come on top).
  state.counters["act_peak_MB"] = double(ctx.allocator().stats().peak_in_use) * 1e-6;
}
BENCHMARK(BM_VaeKlDecode512)->Unit(benchmark::kSecond)->UseManualTime()->Iterations(1);

}  // namespace
}  // namespace easel
