// Inpainting's latent blend, as A1111's CFGDenoiser applies it (sd_samplers_cfg_denoiser.py,
// apply_blend): outside the mask the latent is pulled back to the init image's latent at every
// model call, so only the masked area changes.
//   k-diffusion samplers and LCM: after denoising, denoised * nmask + init_latent * mask
//   timestep samplers (DDIM, PLMS, UniPC; mask_before_denoising): the model input x_t is blended
// where nmask is 1 in the area to repaint and mask = 1 - nmask.
#pragma once

#include "sampling/denoiser.h"

namespace easel::sampling {

struct LatentBlend {
  Tensor nmask;        // [1 or B, C, h, w]: 1 = repaint (broadcast over the batch)
  Tensor init_latent;  // [B, C, h, w]
};

// a * nmask + b * (1 - nmask), the blend written as A1111 writes it.
Tensor blend_latents(Context& ctx, const Tensor& a, const Tensor& b, const Tensor& nmask);

class MaskedDenoiser : public Denoiser, public TimestepModel {
 public:
  MaskedDenoiser(const Denoiser& inner, LatentBlend blend) : inner_(inner), blend_(std::move(blend)) {}

  Tensor denoise(Context& ctx, const Tensor& x, float sigma) const override;
  const NoiseSchedule& noise_schedule() const override { return inner_.noise_schedule(); }
  ModelSampling model_sampling() const override { return inner_.model_sampling(); }
  const TimestepModel* timesteps() const override { return inner_.timesteps() ? this : nullptr; }
  Tensor eps(Context& ctx, const Tensor& x_t, float t) const override;
  const DiscreteSchedule& training_schedule() const override { return inner_.timesteps()->training_schedule(); }

 private:
  const Denoiser& inner_;
  LatentBlend blend_;
};

}  // namespace easel::sampling
