// What a model family gives the generation driver (generation_driver.h), so that A1111's loop
// (seeds, batches, plan, sampling, interrupt and skip, inpainting blends, decode, infotext) is
// written once and SD 1.x / 2.x, SDXL and SD 3.x are each only their own parts. The split follows
// ComfyUI's: a conditioner (text encoders -> conditioning), the network with its model sampling
// (comfy/model_sampling.py: the prediction type and how noise enters the latent, here
// sampling::ModelSampling inside the family's Denoiser), a latent format (comfy/latent_formats.py)
// and the VAE.
#pragma once

#include <memory>
#include <string>

#include "core/context.h"
#include "core/error.h"
#include "core/tensor.h"
#include "io/image.h"
#include "pipelines/generation_params.h"
#include "sampling/denoiser.h"

namespace easel {

// One prompt's conditioning for a batch, as the family's network takes it.
struct Conditioning {
  Tensor context;  // [B, tokens, width]: the states cross-attention attends to (SD: CLIP's hidden states)
  Tensor pooled;   // [B, width]: pooled text embedding (SDXL, SD 3.x); undefined where the network takes none
  Tensor added;    // [B, n]: conditioning added beside the text (SDXL's size and crop time ids); undefined if none
};

// The latent space the sampler works in, against the VAE's (comfy/latent_formats.py): the
// diffusion model sees (vae_latent - shift) * scale.
struct LatentFormat {
  int channels = 4;
  int downscale = 8;           // image pixels per latent pixel, each side
  float scale_factor = 1.0f;   // SD 1.x / 2.x: 0.18215; SDXL: 0.13025; SD 3.x: 1.5305
  float shift_factor = 0.0f;   // SD 3.x: 0.0609

  Tensor to_model(Context& ctx, const Tensor& vae_latents) const;  // process_in
  Tensor to_vae(Context& ctx, const Tensor& latents) const;        // process_out
};

// What the infotext and the API say about the model.
struct ModelIdentity {
  std::string model_name, model_hash;  // file stem, A1111 short hash (empty when not computed)
  std::string vae_name, vae_hash;      // empty when the checkpoint's own VAE is used
  bool inpainting = false;             // an inpainting model (A1111's "Conditional mask weight")
};

class DiffusionFamily {
 public:
  virtual ~DiffusionFamily() = default;

  virtual const ModelIdentity& identity() const = 0;
  virtual const LatentFormat& latent_format() const = 0;

  // --- conditioner ---------------------------------------------------------------------------
  // One prompt (A1111 syntax) for a batch of `batch` images; the request gives the rest the
  // family reads (clip skip; SDXL: the size for its time ids).
  virtual Result<Conditioning> condition(Context& ctx, const std::string& prompt, int batch,
                                         const GenerationParams& p) const = 0;

  // --- the network and its model sampling ----------------------------------------------------
  // The network's raw output for the model input x_in ([B, C, h, w], with the channels of
  // inpainting_conditioning() already concatenated) at timesteps t ([B]).
  virtual Tensor predict(Context& ctx, const Tensor& x_in, const Tensor& t, const Conditioning& c) const = 0;
  // The denoiser the samplers walk over `model` (the guided network in the model's own units):
  // noise schedule, prediction type, and for DDPM-trained models the timestep samplers' view.
  virtual std::unique_ptr<sampling::Denoiser> denoiser(sampling::ModelFn model) const = 0;

  // --- VAE -----------------------------------------------------------------------------------
  virtual bool can_encode() const = 0;
  // Pixels in [-1, 1], [B, 3, H, W] -> the model's latents (latent format applied).
  virtual Tensor encode(Context& ctx, const Tensor& pixels) const = 0;
  // The model's latents -> pixels in [-1, 1].
  virtual Tensor decode(Context& ctx, const Tensor& latents) const = 0;

  // --- inpainting models -----------------------------------------------------------------------
  // The channels an inpainting model takes beside the latent ([1, c, h, w]), from the init image
  // in [-1, 1] and its mask (both absent for txt2img, the mask for plain img2img); undefined for
  // other models.
  virtual Tensor inpainting_conditioning(Context& ctx, const Tensor& source, const Image* mask, int64_t h,
                                         int64_t w) const {
    (void)ctx, (void)source, (void)mask, (void)h, (void)w;
    return {};
  }
};

}  // namespace easel
