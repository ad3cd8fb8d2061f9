#include "sampling/masked_denoiser.h"

#include "ops/ops.h"

namespace easel::sampling {

Tensor blend_latents(Context& ctx, const Tensor& a, const Tensor& b, const Tensor& nmask) {
  const Tensor mask = ops::affine(ctx, nmask, -1.0f, 1.0f);
  return ops::add(ctx, ops::mul(ctx, a, nmask), ops::mul(ctx, b, mask));
}

Tensor MaskedDenoiser::denoise(Context& ctx, const Tensor& x, float sigma) const {
  return blend_latents(ctx, inner_.denoise(ctx, x, sigma), blend_.init_latent, blend_.nmask);
}

Tensor MaskedDenoiser::eps(Context& ctx, const Tensor& x_t, float t) const {
  return inner_.timesteps()->eps(ctx, blend_latents(ctx, x_t, blend_.init_latent, blend_.nmask), t);
}

}  // namespace easel::sampling
