#include "pipelines/diffusion_family.h"

#include "ops/ops.h"

namespace easel {

Tensor LatentFormat::to_model(Context& ctx, const Tensor& vae_latents) const {
  return ops::affine(ctx, vae_latents, scale_factor, -shift_factor * scale_factor);
}

Tensor LatentFormat::to_vae(Context& ctx, const Tensor& latents) const {
  // 1 / scale in double, then rounded: the factor A1111's 1 / 0.18215 gives in float32.
  return ops::affine(ctx, latents, float(1.0 / double(scale_factor)), shift_factor);
}

}  // namespace easel
