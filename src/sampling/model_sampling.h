// How a network's input and output relate to the latent at noise level sigma, and how noise enters
// a clean latent: ComfyUI's comfy/model_sampling.py (EPS, V_PREDICTION, CONST), on k-diffusion's
// x = x0 + sigma * noise for eps / v and rectified flow's x = sigma * noise + (1 - sigma) * x0.
// The noise levels themselves (which sigmas, sigma <-> t, a flow model's shift) are the
// NoiseSchedule's (schedules.h); this is the arithmetic around one model call.
#pragma once

#include "core/context.h"
#include "core/tensor.h"
#include "models/prediction.h"

namespace easel::sampling {

struct ModelSampling {
  Prediction prediction = Prediction::Eps;

  // calculate_input: the network sees x * input_scale(sigma) (eps / v: 1 / sqrt(sigma^2 + 1),
  // the DDPM-space latent; flow: x itself).
  float input_scale(float sigma) const;
  // calculate_denoised: the x0 estimate from the sampler's x and the network's output at sigma
  // (sigma_data 1 for eps / v).
  Tensor denoised(Context& ctx, const Tensor& x, const Tensor& out, float sigma) const;
  // noise_scaling: the x a sampler starts from at sigma, from standard normal noise and a clean
  // latent (img2img's init), or from the noise alone when `latent` is undefined (txt2img, where
  // sigma is the table's first: A1111 starts from noise * sigma_max, not ComfyUI's
  // noise * sqrt(1 + sigma^2)). The k-diffusion samplers end at sigma 0, where ComfyUI's
  // inverse_noise_scaling is the identity for all three: there is none here.
  Tensor noise_scaling(Context& ctx, float sigma, const Tensor& noise, const Tensor& latent = {}) const;
};

}  // namespace easel::sampling
