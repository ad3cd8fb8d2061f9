// The latent side of AUTOMATIC1111's img2img / inpaint preparation
// (processing.py StableDiffusionProcessingImg2Img.init, after the VAE has
// encoded the init image): the latent upscale of resize mode 3 and the "latent
// noise" / "latent nothing" masked-content modes.
#pragma once

#include <cstdint>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"

namespace easel {

// torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear") with its
// defaults (align_corners False, no antialias), as A1111's resize mode 3
// ("latent upscale") calls it on the init latents. x: f32 [N, C, H, W] on the
// CPU.
Tensor resize_latents_bilinear(const Tensor &x, int64_t h, int64_t w);

// Masked content on the init latents [B, C, h, w], with nmask [1, C, h, w] (1 = repaint):
//   2 "latent noise":   init * mask + noise * nmask, the noise being create_random_tensors(shape, seeds):
//                       fresh per-image CPU generators seeded with `seeds` (A1111 takes the first
//                       batch's seeds, all_seeds[0:B]), first draw, no variation seed;
//   3 "latent nothing": init * mask.
// Other modes return init unchanged (0 "fill" and 1 "original" act on the pixels).
Tensor masked_content_latents(Context &ctx, const Tensor &init, const Tensor &nmask, int inpainting_fill,
                              const std::vector<int64_t> &seeds);

}  // namespace easel
