// Stable Diffusion 1.x / 2.x generation as AUTOMATIC1111 runs it on the CPU, so a request gives the
// image A1111 gives for the same checkpoint, prompt, seed and sampler (modules/processing.py):
//
//   prompt, negative -> A1111 conditioning (75-token chunks, emphasis)           pipelines/prompt_conditioning
//   seeds -> per-image torch CPU generators -> initial noise                       sampling/image_rng
//   sampler + schedule -> sigmas; CFG denoiser over the UNet                       sampling/, models/unet
//   latents / 0.18215 -> VAE decode -> clamp((x + 1) / 2) -> x 255, truncated -> PNG with infotext
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "io/image.h"
#include "models/clip_text.h"
#include "models/sd_checkpoint.h"
#include "models/unet.h"
#include "models/vae_kl.h"
#include "pipelines/generation_params.h"
#include "sampling/samplers.h"
#include "sampling/schedules.h"
#include "text/clip_tokenizer.h"

namespace easel {

struct SdLoadOptions {
  std::optional<std::filesystem::path> vae;       // a separate VAE file replacing the checkpoint's
  std::optional<Prediction> prediction; // overrides what the checkpoint is recognised as
  bool compute_model_hash = true;                 // A1111's "Model hash" (reads the whole file once)
  // Head counts are not visible in tensor shapes; real checkpoints use the defaults (CLIP: width / 64;
  // UNet: 8 heads for SD 1.x, 64 channels per head for SD 2.x). Tiny test models set them.
  std::optional<int> text_encoder_heads;
  std::optional<UnetOptions> unet;
  std::optional<int> vae_norm_groups;  // 32 in every released VAE
};

struct GeneratedImage {
  Image image;  // RGB, with the A1111 "parameters" text chunk
  int64_t seed = 0, subseed = 0;
  std::string infotext;
};

struct GenerationTimings {
  double conditioning_s = 0;  // text encoder
  double sampling_s = 0;      // all sampler steps of all batches
  int steps = 0;              // sampler steps run
  double decode_s = 0;        // VAE decode of all images
  double seconds_per_step() const { return steps ? sampling_s / steps : 0; }
};

struct GenerationResult {
  std::vector<GeneratedImage> images;
  GenerationTimings timings;
  // Why a requested option was not applied (A1111's model_hijack.comments), e.g. "only masked" with a
  // blank mask falling back to plain img2img.
  std::vector<std::string> comments;
};

class StableDiffusion {
 public:
  // The checkpoint's text encoder, UNet and VAE, their weights placed on ctx's device (zero copy on
  // the CPU: views of the mapped file).
  static Result<StableDiffusion> load(Context& ctx, const std::filesystem::path& model,
                                      const SdLoadOptions& options = {});

  const SdCheckpointInfo& info() const { return checkpoint_.info(); }
  Prediction prediction() const { return prediction_; }
  const std::string& model_name() const { return model_name_; }
  const std::string& model_hash() const { return model_hash_; }

  // txt2img, img2img (p.init_image) and inpaint (p.mask), every image of batch_size x n_iter.
  // `on_image` sees each finished image (the server streams them); `on_step` each sampler step of
  // each batch, with its x0 estimate (live previews); ctx reports progress and is polled for
  // cancellation between steps.
  Result<GenerationResult> generate(Context& ctx, const GenerationParams& p,
                                    const std::function<void(const GeneratedImage&)>& on_image = {},
                                    const sampling::StepCallback& on_step = {}) const;

 private:
  Result<Tensor> conditioning(Context& ctx, const std::string& prompt, int batch, int clip_skip) const;
  // The VAE's latents of pixels in [-1, 1] (posterior mean x scaling factor).
  Tensor encode_latents(Context& ctx, const Tensor& pixels) const;
  // The 5 extra input channels of a 9-channel inpainting UNet, [1, 5, h, w], from the init image in
  // [-1, 1] and its mask (both absent for txt2img; the mask absent for plain img2img).
  Tensor inpainting_conditioning(Context& ctx, const Tensor& source, const Image* mask, int64_t h, int64_t w) const;

  SdCheckpoint checkpoint_;
  ClipTokenizer tokenizer_;
  ClipTextModel text_encoder_;
  Unet unet_;
  VaeKl vae_;
  sampling::DiscreteSchedule schedule_;
  Prediction prediction_ = Prediction::Eps;
  std::string model_name_, model_hash_, vae_name_, vae_hash_;
};

}  // namespace easel
