// TAESD: the tiny autoencoders of madebyollin/taesd (taesd, taesdxl, taesd3, taef1, taef2).
// Same layer list as the reference `Encoder` / `Decoder` nn.Sequential, index for index, so a
// traced activation "decoder.7" is the output of the reference's decoder[7].
//
//   latent channels   variant              used with
//   4                 taesd / taesdxl      SD 1.x, SD 2.x / SDXL
//   16                taesd3 / taef1       SD 3.x / FLUX.1
//   32 + midblock GN  taef2                FLUX.2
//
// Images are [N, 3, H, W] in [0, 1]; latents [N, C, H/8, W/8] in the scaled space the diffusion
// model uses (no extra scale factor).
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/weights.h"

namespace easel {

struct TaesdConfig {
  int latent_channels = 4;
  bool midblock_gn = false;  // taef2: Block adds a pooled GroupNorm branch in the deepest stage
  std::string variant;       // "taesd/taesdxl", "taesd3/taef1", "taef2"
};

namespace taesd {

struct Conv {  // nn.Conv2d(n_in, n_out, k, padding=k/2, stride, bias)
  int n_in, n_out, kernel = 3, stride = 1;
  bool has_bias = true;
  Tensor weight;  // [n_out, n_in, k, k]
  Tensor bias;    // [n_out]
};

struct MidblockPool {  // conv1x1(n, 4n) -> GroupNorm(4, 4n) -> ReLU -> conv1x1(4n, n)
  Conv expand, project;
  Tensor norm_weight, norm_bias;  // [4n]
};

struct Block {  // relu(conv(x) + skip(x)), conv = conv3x3 -> relu -> conv3x3 -> relu -> conv3x3
  int n_in, n_out;
  Conv conv[3];
  std::optional<Conv> skip;  // 1x1 when n_in != n_out
  std::optional<MidblockPool> pool;
};

struct Relu {};
struct Upsample {};  // nearest, x2
struct Clamp {};     // tanh(x / 3) * 3

using Layer = std::variant<Conv, Block, Relu, Upsample, Clamp>;

}  // namespace taesd

class Taesd {
 public:
  // Loads the encoder and/or decoder from the given checkpoints (one file with both, two files,
  // or one part only), in taesd or diffusers (AutoencoderTiny) naming; weights on ctx's device.
  static Result<Taesd> load(Context& ctx, const std::vector<const Checkpoint*>& checkpoints);

  const TaesdConfig& config() const { return config_; }
  bool has_encoder() const { return !encoder_.empty(); }
  bool has_decoder() const { return !decoder_.empty(); }

  // image [N, 3, H, W] in [0, 1], H and W multiples of 8 -> latents [N, C, H/8, W/8]
  Tensor encode(Context& ctx, const Tensor& image) const;
  // latents [N, C, h, w] -> image [N, 3, 8h, 8w], not clamped
  Tensor decode(Context& ctx, const Tensor& latents) const;
  // Multiply-adds of the convolutions in decode() for latents of h x w, for roofline figures.
  int64_t decode_macs(int64_t h, int64_t w) const;

 private:
  TaesdConfig config_;
  std::vector<taesd::Layer> encoder_, decoder_;
};

// What a checkpoint holds, for the registry: nullopt when it is not a TAESD part.
struct TaesdParts {
  bool encoder = false, decoder = false;
  TaesdConfig config;
};
std::optional<TaesdParts> taesd_recognize(const Checkpoint& ck);

}  // namespace easel
