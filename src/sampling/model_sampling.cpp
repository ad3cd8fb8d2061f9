#include "sampling/model_sampling.h"

#include <cmath>

#include "ops/ops.h"
#include "sampling/tensor_arith.h"

namespace easel::sampling {

float ModelSampling::input_scale(float sigma) const {
  if (prediction == Prediction::Flow) return 1.0f;
  return 1.0f / std::sqrt(sigma * sigma + 1.0f);
}

Tensor ModelSampling::denoised(Context& ctx, const Tensor& x, const Tensor& out, float sigma) const {
  switch (prediction) {
    case Prediction::Eps:
    case Prediction::Flow:  // x - out * sigma for both: eps' c_out is -sigma, flow's (CONST) too
      return axpby(ctx, 1.0f, x, -sigma, out);
    case Prediction::V: {
      const float s2 = sigma * sigma + 1.0f;
      const float c_skip = 1.0f / s2, c_out = -sigma / std::sqrt(s2);
      return axpby(ctx, c_out, out, c_skip, x);
    }
  }
  throw Exception("unknown prediction type");
}

Tensor ModelSampling::noise_scaling(Context& ctx, float sigma, const Tensor& noise, const Tensor& latent) const {
  if (!latent.defined()) return ops::affine(ctx, noise, sigma, 0.0f);
  EASEL_CHECK(latent.shape() == noise.shape(), "img2img: init latent ", latent.describe(), " and noise ",
              noise.describe(), " differ in shape");
  if (prediction == Prediction::Flow) return axpby(ctx, sigma, noise, 1.0f - sigma, latent);
  return xpay(ctx, latent, sigma, noise);
}

}  // namespace easel::sampling
