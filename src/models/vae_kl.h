// AutoencoderKL: the Stable Diffusion VAE (diffusers `AutoencoderKL`; `first_stage_model` of the
// original ldm single-file checkpoints). Laid out like diffusers' `Encoder` / `Decoder` /
// `UNetMidBlock2D` / `ResnetBlock2D`, block for block; our weight names and traced activation
// names are the diffusers module paths ("encoder.down_blocks.0.resnets.1.conv2.weight",
// trace "decoder.up_blocks.2").
//
//   image [N, 3, H, W] in [-1, 1]
//     -> encoder -> quant_conv -> moments [N, 2C, H/f, W/f]  (mean, logvar; f = 2^(levels-1) = 8)
//   latents [N, C, H/f, W/f]  (unscaled: the pipeline divides by scaling_factor before decode)
//     -> post_quant_conv -> decoder -> image [N, 3, H, W], not clamped
//
// The config comes from tensor names and shapes (levels, channels per level, resnets per level,
// latent channels, whether quant convs exist), except the GroupNorm group count, which no tensor
// shows: 32 in every released VAE (SD 1.x/2.x/XL, SD3, FLUX), an option for tests.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "models/weights.h"

namespace easel {

struct VaeKlConfig {
  std::vector<int> channels;   // block_out_channels per level, e.g. {128, 256, 512, 512}
  int layers_per_block = 2;    // resnets per encoder level; decoder levels have one more
  int latent_channels = 4;     // 4 (SD 1.x/2.x/XL), 16 (SD3, FLUX.1)
  int image_channels = 3;
  int norm_groups = 32;        // not in the tensors (see above)
  bool quant_conv = true;      // quant_conv / post_quant_conv present (SD3/FLUX VAEs have none)
  int levels() const { return static_cast<int>(channels.size()); }
  int downscale() const { return 1 << (levels() - 1); }  // 8 for every released VAE
};

struct VaeKlOptions {
  int norm_groups = 32;
};

namespace vae_kl {

struct Conv {  // nn.Conv2d with bias
  Tensor weight;  // [out, in, k, k]
  Tensor bias;    // [out]
};

struct Norm {  // nn.GroupNorm affine parameters
  Tensor weight, bias;  // [C]
};

struct Resnet {  // ResnetBlock2D without time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x))))))
  int in = 0, out = 0;
  Norm norm1, norm2;
  Conv conv1, conv2;
  std::optional<Conv> conv_shortcut;  // 1x1 when in != out
};

struct Attention {  // diffusers Attention, one head of all channels, residual connection
  int channels = 0;
  Norm group_norm;
  Tensor to_q, to_k, to_v, to_out;  // [C, C] (1x1 convs of the original naming, seen as [C, C])
  Tensor to_q_bias, to_k_bias, to_v_bias, to_out_bias;  // [C]
};

struct MidBlock {  // UNetMidBlock2D: resnet, attention, resnet
  Resnet resnets[2];
  Attention attention;
};

struct DownBlock {  // DownEncoderBlock2D
  std::vector<Resnet> resnets;
  std::optional<Conv> downsample;  // stride 2 after a (0, 1, 0, 1) pad; all but the last level
};

struct UpBlock {  // UpDecoderBlock2D
  std::vector<Resnet> resnets;
  std::optional<Conv> upsample;  // nearest x2, then 3x3 conv; all but the last level
};

struct Encoder {
  Conv conv_in;
  std::vector<DownBlock> down_blocks;
  MidBlock mid_block;
  Norm conv_norm_out;
  Conv conv_out;  // -> 2 * latent channels
};

struct Decoder {
  Conv conv_in;
  MidBlock mid_block;
  std::vector<UpBlock> up_blocks;  // deepest level first
  Norm conv_norm_out;
  Conv conv_out;
};

}  // namespace vae_kl

// Original (ldm) or older diffusers naming -> ours, for one tensor name. `up_levels` is the number
// of decoder levels (the original numbers decoder.up.N from the image side). Unknown names and
// names already ours come back unchanged.
std::string vae_kl_our_name(std::string_view name, int up_levels);

class VaeKl {
 public:
  // Loads from the tensors of a diffusers VAE file (vae/diffusion_pytorch_model.safetensors, no
  // prefix) or of a single-file checkpoint with its prefix removed (tensors_under(checkpoints,
  // "first_stage_model.")), in diffusers, older diffusers or original naming. Encoder and decoder
  // are each optional, but one must be there. Reports every missing / mis-shaped / unknown tensor.
  // The weights are placed on ctx's device.
  static Result<VaeKl> load(Context& ctx, const std::vector<SourceTensor>& tensors, const VaeKlOptions& options = {});

  const VaeKlConfig& config() const { return config_; }
  bool has_encoder() const { return encoder_.has_value(); }
  bool has_decoder() const { return decoder_.has_value(); }
  // The typed weights (views of the checkpoint's tensors), for inspection and tests.
  const std::optional<vae_kl::Encoder>& encoder() const { return encoder_; }
  const std::optional<vae_kl::Decoder>& decoder() const { return decoder_; }

  // image [N, 3, H, W] in [-1, 1], H and W multiples of downscale() -> moments [N, 2C, H/8, W/8]:
  // channels [0, C) the mean, [C, 2C) the log-variance (DiagonalGaussianDistribution.parameters).
  Tensor encode_moments(Context& ctx, const Tensor& image) const;
  // latents [N, C, h, w], unscaled -> image [N, 3, h*8, w*8], not clamped.
  Tensor decode(Context& ctx, const Tensor& latents) const;

  // Views of moments [N, 2C, h, w]: the mean (latent_dist.mode()) and the log-variance.
  static Tensor moments_mean(const Tensor& moments);
  static Tensor moments_logvar(const Tensor& moments);
  // latent_dist.sample(): mean + exp(0.5 * clamp(logvar, -30, 20)) * noise, noise [N, C, h, w].
  static Tensor sample(Context& ctx, const Tensor& moments, const Tensor& noise);

  // Multiply-adds of decode() for latents of h x w (convolutions, attention products), for
  // roofline figures.
  int64_t decode_macs(int64_t h, int64_t w) const;

 private:
  VaeKlConfig config_;
  std::optional<vae_kl::Encoder> encoder_;
  std::optional<vae_kl::Decoder> decoder_;
  vae_kl::Conv quant_conv_, post_quant_conv_;  // 1x1; undefined when the VAE has none

  // load() on `ctx`, or with ctx null a check of names and shapes only (recognition: the weights
  // stay the checkpoint's host views).
  static Result<VaeKl> load_weights(Context* ctx, const std::vector<SourceTensor>& tensors,
                                    const VaeKlOptions& options);
  friend std::optional<VaeKlConfig> vae_kl_recognize(const Checkpoint& ck, bool* encoder, bool* decoder);
};

// What a checkpoint holds, for the registry: nullopt when it is not (only) an AutoencoderKL
// (a whole SD checkpoint is not: its VAE is under "first_stage_model.").
std::optional<VaeKlConfig> vae_kl_recognize(const Checkpoint& ck, bool* encoder = nullptr, bool* decoder = nullptr);

}  // namespace easel
