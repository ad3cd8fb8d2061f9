// Model wrappers: k-diffusion external.py (CompVisDenoiser, CompVisVDenoiser), A1111
// sd_samplers_timesteps.py (CompVisTimesteps[V]Denoiser) and sd_samplers_lcm.py (LCMCompVisDenoiser).
#include "sampling/denoiser.h"

#include <cmath>

#include "ops/ops.h"
#include "sampling/tensor_arith.h"

namespace easel::sampling {

Tensor CompVisDenoiser::denoise(Context& ctx, const Tensor& x, float sigma) const {
  const Tensor out = model_(ctx, ops::affine(ctx, x, sampling_.input_scale(sigma), 0.0f), schedule_.sigma_to_t(sigma));
  return sampling_.denoised(ctx, x, out, sigma);
}

Tensor CompVisDenoiser::eps(Context& ctx, const Tensor& x_t, float t) const {
  Tensor out = model_(ctx, x_t, t);
  if (sampling_.prediction == Prediction::Eps) return out;
  EASEL_CHECK(sampling_.prediction == Prediction::V, "a flow-matching model has no DDPM timesteps");
  // predict_eps_from_z_and_v with ldm's float32 sqrt buffers, indexed by t.to(int)
  const int ti = static_cast<int>(t);
  const double a = schedule_.alphas_cumprod64().at(ti);
  return axpby(ctx, static_cast<float>(std::sqrt(a)), out, static_cast<float>(std::sqrt(1.0 - a)), x_t);
}

Tensor LcmDenoiser::denoise(Context& ctx, const Tensor& x, float sigma) const {
  const float c_in = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  const float t = lcm_.sigma_to_t(sigma);
  const Tensor e = model_(ctx, ops::affine(ctx, x, c_in, 0.0f), t);
  const Tensor output = axpby(ctx, 1.0f, x, -sigma, e);
  const float sigma_data = 0.5f, st = t * 10.0f;
  const float c_skip = sigma_data * sigma_data / (st * st + sigma_data * sigma_data);
  const float c_out = st / std::sqrt(st * st + sigma_data * sigma_data);
  return axpby(ctx, c_out, output, c_skip, x);
}

Tensor LcmDenoiser::eps(Context& ctx, const Tensor& x_t, float t) const { return model_(ctx, x_t, t); }

}  // namespace easel::sampling
