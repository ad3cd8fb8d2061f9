// The Stable Diffusion UNet (SD 1.x, SD 2.x; built so SDXL fits): diffusers'
// UNet2DConditionModel, block for block, with diffusers' module names as our weight names and
// trace names ("down_blocks.1", "mid_block", "up_blocks.0.attentions.1", ...).
//
//   conv_in -> down_blocks[l]: (ResnetBlock2D [-> Transformer2D]) x layers_per_block [-> Downsample]
//           -> mid_block: ResnetBlock2D -> Transformer2D -> ResnetBlock2D
//           -> up_blocks[b]: (cat skip -> ResnetBlock2D [-> Transformer2D]) x (layers_per_block + 1)
//                            [-> Upsample]
//           -> GroupNorm -> SiLU -> conv_out
//
// Everything the shapes tell (channels, levels, layers per block, which levels attend, transformer
// depth, context width, linear or 1x1-conv projections) is read from the weights. The head count
// is not visible in any shape: UnetOptions gives it (SD 1.x: 8 heads everywhere; SD 2.x and SDXL:
// 64 channels per head).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "models/weights.h"

namespace easel {

struct UnetOptions {
  // Exactly one of the two is set.
  int num_heads = 0;  // the same head count at every level (SD 1.x: 8)
  int head_dim = 0;   // the same channels per head at every level (SD 2.x, SDXL: 64)
  int norm_groups = 32;

  static UnetOptions sd1() { return {8, 0, 32}; }
  static UnetOptions sd2() { return {0, 64, 32}; }
};

struct UnetConfig {  // derived from the weights
  int in_channels = 4, out_channels = 4;  // in 9: the inpainting UNet
  std::vector<int> block_channels;        // per level, e.g. 320, 640, 1280, 1280
  int layers_per_block = 2;
  std::vector<int> down_depth;  // transformer blocks per attention of each level (0 = no attention)
  std::vector<int> up_depth;    // the same per up block (up block b is level levels-1-b)
  int mid_depth = 1;
  int context_dim = 768;           // width of encoder_hidden_states
  bool linear_projection = false;  // proj_in/proj_out: Linear (SD 2.x, SDXL) or 1x1 Conv2d (SD 1.x)
  int time_embed_dim = 1280;
  int adm_in_channels = 0;  // SDXL: width of the added-conditioning vector (label_emb); 0 = none
  int levels() const { return int(block_channels.size()); }
};

namespace unet {

struct Conv {  // nn.Conv2d 3x3 (padding 1) or 1x1
  Tensor weight;  // [out, in, k, k]
  Tensor bias;    // [out]
  int stride = 1;
};
struct Linear {   // nn.Linear; a 1x1 conv projection is loaded as its [out, in] view
  Tensor weight;  // [out, in]
  Tensor bias;    // [out] or undefined
};
struct Norm {  // GroupNorm / LayerNorm affine parameters
  Tensor weight, bias;  // [C]
};

struct ResnetBlock {  // ResnetBlock2D
  int in_channels = 0, out_channels = 0;
  Norm norm1;                   // GroupNorm(32, in), eps 1e-5
  Conv conv1;                   // in -> out
  Linear time_emb_proj;         // [out, time_embed_dim]
  Norm norm2;                   // GroupNorm(32, out)
  Conv conv2;                   // out -> out
  std::optional<Conv> shortcut; // 1x1 conv_shortcut when in != out
};

struct Attention {  // diffusers Attention: to_q/to_k/to_v without bias, to_out.0 with bias
  Linear to_q, to_k, to_v, to_out;
  int heads = 1;
};

struct TransformerBlock {  // BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward
  Norm norm1, norm2, norm3;  // LayerNorm, eps 1e-5
  Attention attn1, attn2;
  Linear ff_proj;  // GEGLU proj: [2 * 4C, C] (first half value, second half gate)
  Linear ff_out;   // [C, 4C]
};

struct Transformer2D {  // Transformer2DModel (ldm SpatialTransformer)
  int channels = 0;
  Norm norm;  // GroupNorm(32, C), eps 1e-6
  Linear proj_in, proj_out;  // [C, C]
  std::vector<TransformerBlock> blocks;
};

struct DownBlock {  // DownBlock2D / CrossAttnDownBlock2D
  std::vector<ResnetBlock> resnets;
  std::vector<Transformer2D> attentions;  // empty or one per resnet
  std::optional<Conv> downsampler;        // 3x3 stride 2, all levels but the last
};

struct MidBlock {  // UNetMidBlock2DCrossAttn
  ResnetBlock resnet0;
  Transformer2D attention;
  ResnetBlock resnet1;
};

struct UpBlock {  // UpBlock2D / CrossAttnUpBlock2D
  std::vector<ResnetBlock> resnets;
  std::vector<Transformer2D> attentions;
  std::optional<Conv> upsampler;  // nearest x2 then 3x3, all up blocks but the last
};

struct Loader;  // unet.cpp

// A checkpoint's UNet tensors (prefix already removed) renamed to ours: the original single-file
// naming (input_blocks / middle_block / output_blocks, ldm and sgm) goes through the name table,
// diffusers naming is ours already. Fails on a name neither naming knows.
Result<WeightMap> map_names(const std::vector<SourceTensor>& tensors);
// The config the (our-named) weights describe; fails with a message when they are not a UNet.
Result<UnetConfig> detect_config(const WeightMap& weights);

}  // namespace unet

class Unet {
 public:
  // `tensors`: the UNet's tensors in original naming (from a single-file checkpoint, the caller
  // strips "model.diffusion_model." with tensors_under) or diffusers naming (unet/ folder). The
  // weights are placed on ctx's device.
  static Result<Unet> load(Context& ctx, const std::vector<SourceTensor>& tensors, const UnetOptions& options);

  const UnetConfig& config() const { return config_; }
  const UnetOptions& options() const { return options_; }

  // x [N, in_channels, h, w] f32 (h, w: any size >= 1; sizes not multiples of 2^(levels-1) take the
  // odd-size path diffusers takes with upsample_size), timesteps [N] f32 (or [1], broadcast),
  // context [N, T, context_dim] f32 -> the model output [N, out_channels, h, w] (epsilon or v,
  // as the checkpoint was trained). Throws easel::Exception on mis-shaped inputs.
  Tensor forward(Context& ctx, const Tensor& x, const Tensor& timesteps, const Tensor& context) const;
  // The sinusoidal embedding of diffusers' Timesteps(flip_sin_to_cos=True, freq_shift=0): [N, C0].
  Tensor timestep_embedding(Context& ctx, const Tensor& timesteps) const;
  // Every weight (our naming) and its shape for a config: the loader's own list.
  static std::vector<std::pair<std::string, Shape>> weight_shapes(const UnetConfig& config,
                                                                  const UnetOptions& options);
  // Multiply-adds of one forward() (convolutions, linears, attention), for roofline figures.
  int64_t macs(int64_t batch, int64_t h, int64_t w, int64_t context_tokens) const;

 private:
  friend struct unet::Loader;
  void build(unet::Loader& loader);

  UnetConfig config_;
  UnetOptions options_;
  unet::Conv conv_in_;
  unet::Linear time_linear_1_, time_linear_2_;
  std::vector<unet::DownBlock> down_;
  unet::MidBlock mid_;
  std::vector<unet::UpBlock> up_;
  unet::Norm conv_norm_out_;
  unet::Conv conv_out_;
};

}  // namespace easel
