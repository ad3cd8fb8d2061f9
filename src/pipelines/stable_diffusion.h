// Stable Diffusion 1.x / 2.x as a family of the generation driver (generation_driver.h), so a
// request gives the image A1111 gives for the same checkpoint, prompt, seed and sampler:
//
//   conditioner: A1111 conditioning (75-token chunks, emphasis) over CLIP         pipelines/prompt_conditioning
//   network: the UNet, eps or v, on the checkpoint's DDPM schedule               models/unet, sampling/denoiser
//   latent format: 4 channels, scale 0.18215; VAE: AutoencoderKL (KL-f8)         models/vae_kl
//   inpainting models: 5 more input channels (mask, masked-image latents)
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
#include "pipelines/diffusion_family.h"
#include "pipelines/generation_driver.h"
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

class StableDiffusion final : public DiffusionFamily {
 public:
  // The checkpoint's text encoder, UNet and VAE, their weights placed on ctx's device (zero copy on
  // the CPU: views of the mapped file).
  static Result<StableDiffusion> load(Context& ctx, const std::filesystem::path& model,
                                      const SdLoadOptions& options = {});

  const SdCheckpointInfo& info() const { return checkpoint_.info(); }
  Prediction prediction() const { return prediction_; }
  const std::string& model_name() const { return identity_.model_name; }
  const std::string& model_hash() const { return identity_.model_hash; }

  // The generation driver on this model (generation_driver.h).
  Result<GenerationResult> generate(Context& ctx, const GenerationParams& p, const GenerationInputs& inputs = {},
                                    const GenerationCallbacks& callbacks = {}) const {
    return easel::generate(ctx, *this, p, inputs, callbacks);
  }

  // --- the family's parts (diffusion_family.h) ---
  const ModelIdentity& identity() const override { return identity_; }
  const LatentFormat& latent_format() const override { return latent_format_; }
  // SD 2.x always uses the penultimate CLIP layer (A1111 ignores its CLIP-skip setting there).
  Result<Conditioning> condition(Context& ctx, const std::string& prompt, int batch,
                                 const GenerationParams& p) const override;
  Tensor predict(Context& ctx, const Tensor& x_in, const Tensor& t, const Conditioning& c) const override;
  // k-diffusion's CompVis(V)Denoiser on the checkpoint's schedule.
  std::unique_ptr<sampling::Denoiser> denoiser(sampling::ModelFn model) const override;
  bool can_encode() const override { return vae_.has_encoder(); }
  // The VAE's posterior mean (A1111 samples it with torch's global generator, not reproducible
  // from the seed; diffusers' "argmax" mode takes the mean too), x 0.18215.
  Tensor encode(Context& ctx, const Tensor& pixels) const override;
  Tensor decode(Context& ctx, const Tensor& latents) const override;
  // The 5 extra input channels of a 9-channel inpainting UNet, [1, 5, h, w].
  Tensor inpainting_conditioning(Context& ctx, const Tensor& source, const Image* mask, int64_t h,
                                 int64_t w) const override;

 private:

  SdCheckpoint checkpoint_;
  ClipTokenizer tokenizer_;
  ClipTextModel text_encoder_;
  Unet unet_;
  VaeKl vae_;
  sampling::DiscreteSchedule schedule_;
  Prediction prediction_ = Prediction::Eps;
  LatentFormat latent_format_;
  ModelIdentity identity_;
};

}  // namespace easel
