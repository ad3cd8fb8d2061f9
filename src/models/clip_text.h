// CLIP text encoder: transformers' CLIPTextModel(WithProjection) and open_clip's text tower, the
// text encoders of Stable Diffusion 1.x (openai CLIP ViT-L/14), 2.x (OpenCLIP ViT-H/14) and SDXL
// (both, ViT-L and OpenCLIP ViT-bigG/14).
//
//   ids [B, T] -> token + position embedding -> N x (x + attn(ln1(x)), causal; x + mlp(ln2(x)))
//              -> final_layer_norm -> hidden [B, T, W]; pooled = hidden at the EOS token [B, W];
//              projected = text_projection(pooled) [B, P]
//
// Our naming is transformers' (`text_model.encoder.layers.N.self_attn.q_proj.weight`, ...,
// `text_projection.weight`). Accepted on load, after the caller removed the component prefix
// (`cond_stage_model.transformer.`, `cond_stage_model.model.`, `conditioner.embedders.N.model.`,
// a diffusers `text_encoder/` folder):
//   transformers  with `text_model.` (SD1 single files, diffusers) or without it (old SD1 files)
//   open_clip     `token_embedding.weight`, `positional_embedding`, `transformer.resblocks.N.attn.
//                 in_proj_weight` (split into q/k/v as views), `ln_final`, `text_projection` [W, P]
//                 (used transposed) — SD2 `cond_stage_model.model.`, SDXL `conditioner.embedders.1.model.`
// Ignored by name: `position_ids` buffers and `logit_scale`, which real checkpoints carry beside the
// text weights. Anything else unexpected is an error.
//
// Traced activations (ctx.trace, transformers module names): `text_model.embeddings`,
// `text_model.encoder.layers.N`, `text_model.final_layer_norm` (the final norm of the LAST layer's
// output, when computed).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "models/weights.h"

namespace easel {

enum class ClipActivation { QuickGelu, Gelu };  // x·sigmoid(1.702x) (openai CLIP) | erf GELU (OpenCLIP)
enum class ClipNaming { Transformers, OpenClip };  // how the loaded checkpoint named its tensors

struct ClipTextConfig {
  int64_t vocab_size = 0;         // token_embedding [V, W]
  int64_t width = 0;              // W
  int64_t positions = 0;          // position_embedding [P, W] (77)
  int layers = 0;                 // encoder layers present in the checkpoint
  int heads = 0;                  // not visible in shapes: width / 64 unless overridden
  int64_t intermediate_size = 0;  // mlp.fc1 [I, W]
  int64_t projection_dim = 0;     // text_projection [P, W]; 0 when the checkpoint has none
  ClipActivation activation = ClipActivation::QuickGelu;
  float layer_norm_eps = 1e-5f;
  ClipNaming naming = ClipNaming::Transformers;
};

// What the shapes cannot tell; defaults fit every CLIP text model SD uses.
struct ClipTextOptions {
  std::optional<int> heads;  // default width / 64 (ViT-L 12, ViT-H 16, bigG 20)
  // Default: open_clip naming -> Gelu; transformers naming -> QuickGelu for width <= 768 (openai
  // CLIP ViT-L/B), Gelu above (OpenCLIP ViT-H / bigG converted to transformers naming).
  std::optional<ClipActivation> activation;
};

struct ClipEncodeOptions {
  // "CLIP skip" as A1111 counts it: the hidden state after the first layers - (clip_skip - 1)
  // layers; 1 = last layer, 2 = penultimate (SD 2.x's ldm embedder always uses 2 on a 24-layer
  // single file; a diffusers SD2 text_encoder already has the last layer removed: use 1).
  int clip_skip = 1;
  // Apply final_layer_norm to that hidden state (SD 1.x / 2.x). SDXL's UNet takes the raw
  // penultimate state of both encoders: false.
  bool final_layer_norm = true;
  // Also compute pooled (and projected, when the model has text_projection): always from the
  // final norm of the LAST layer, whatever clip_skip is (SDXL's pooled text embedding).
  bool pooled = false;
};

struct ClipTextOutput {
  Tensor hidden;     // f32 [B, T, W]
  Tensor pooled;     // f32 [B, W]: final-normed last layer at the EOS token (the highest id, first one)
  Tensor projected;  // f32 [B, projection_dim]; undefined without text_projection
};

namespace clip {

struct Linear {
  Tensor weight;  // [out, in]
  Tensor bias;    // [out]
};
struct Norm {
  Tensor weight, bias;  // [W]
};
struct Layer {
  Norm layer_norm1, layer_norm2;
  Linear q_proj, k_proj, v_proj, out_proj;  // [W, W]
  Linear qkv;                               // [3W, W] view when q/k/v lie back to back (open_clip in_proj)
  Linear fc1;                               // [I, W]
  Linear fc2;                               // [W, I]
};

}  // namespace clip

class ClipTextModel {
 public:
  // From tensors already stripped of their component prefix (tensors_under(checkpoints, prefix)),
  // the weights placed on ctx's device.
  static Result<ClipTextModel> load(Context& ctx, const std::vector<SourceTensor>& tensors,
                                    const ClipTextOptions& options = {});
  // From whole files holding only the text encoder (a diffusers text_encoder folder).
  static Result<ClipTextModel> load(Context& ctx, const std::vector<const Checkpoint*>& checkpoints,
                                    const ClipTextOptions& options = {});

  const ClipTextConfig& config() const { return config_; }

  // ids [B, T] i32/i64 (T <= positions) -> final_layer_norm(hidden state after the first
  // layers - (clip_skip - 1) layers), f32 [B, T, W].
  Tensor encode(Context& ctx, const Tensor& ids, int clip_skip = 1) const;
  ClipTextOutput forward(Context& ctx, const Tensor& ids, const ClipEncodeOptions& options) const;

 private:
  ClipTextConfig config_;
  Tensor token_embedding_;     // [V, W]
  Tensor position_embedding_;  // [P, W]
  std::vector<clip::Layer> layers_;
  clip::Norm final_layer_norm_;
  Tensor text_projection_;  // [projection_dim, W], possibly a transposed view (open_clip)
};

// For the registry: the config when `ck` holds exactly one CLIP text encoder (a diffusers
// text_encoder file), nullopt otherwise.
std::optional<ClipTextConfig> clip_text_recognize(const Checkpoint& ck);
// "openai-clip-vit-l", "openclip-vit-h", "openclip-vit-bigg" or "clip-text" (other sizes), by width.
std::string clip_text_variant(const ClipTextConfig& c);

}  // namespace easel
