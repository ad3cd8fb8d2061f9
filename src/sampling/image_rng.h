// The noise of one batch, drawn as A1111 / SD.Next draw it with "CPU" as the random source
// (modules/rng.py ImageRNG), so the same seed gives the same image as there:
//
//  * every image i has its own torch CPU generator seeded with seeds[i]; the initial latent noise
//    of image i is that generator's first randn of the latent shape [C, h, w];
//  * variation seeds: the subseed's noise (a fresh generator) is mixed in by A1111's slerp, with
//    `subseed_strength` as the amount;
//  * "seed resize from": the noise is drawn at the older size and pasted centred into noise of
//    the new size (which still advances the image's generator);
//  * eta noise seed delta (ENSD): after the initial noise the generators restart at seed + delta;
//  * later draws (ancestral and SDE samplers, next()) continue each image's generator.
#pragma once

#include <cstdint>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "sampling/samplers.h"
#include "sampling/torch_rng.h"

namespace easel::sampling {

struct SeedParams {
  std::vector<int64_t> seeds;     // one per image of the batch
  std::vector<int64_t> subseeds;  // may be shorter (A1111 uses 0 for the missing ones)
  double subseed_strength = 0;
  int seed_resize_from_w = 0, seed_resize_from_h = 0;  // image pixels; 0 = off
  int64_t eta_noise_seed_delta = 0;
};

class ImageRng : public NoiseSource {
 public:
  // `latent_scale` is the autoencoder's factor (8), for seed resize.
  explicit ImageRng(SeedParams params, int latent_scale = 8);

  // shape = [N, C, h, w] with N = the number of seeds: the first call gives the initial noise,
  // later calls the next draws.
  Tensor next(Context& ctx, const Shape& shape) override;

 private:
  Tensor first(Context& ctx);

  Shape shape_;  // [C, h, w]
  SeedParams params_;
  int latent_scale_;
  std::vector<TorchGenerator> generators_;
  bool is_first_ = true;
};

// A1111's slerp(val, low, high) on [C, H, W] noise, including its quirks: the norms run over dim 1
// (H) and the nearly-parallel fallback is low * val + high * (1 - val).
std::vector<float> a1111_slerp(float val, const std::vector<float>& low, const std::vector<float>& high, int64_t c,
                               int64_t h, int64_t w);

}  // namespace easel::sampling
