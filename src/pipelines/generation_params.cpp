#include "pipelines/generation_params.h"

#include "sampling/samplers.h"

namespace easel {

Status validate(const GenerationParams& p, const GenerationLimits& limits) {
  for (const auto& [name, v] : {std::pair{"width", p.width}, std::pair{"height", p.height}}) {
    if (v < 8 || v > limits.max_side)
      return Error(cat(name, ": ", v, " is outside 8..", limits.max_side, " pixels"));
    if (v % 8) return Error(cat(name, ": ", v, " is not a multiple of 8 (the autoencoder's scale)"));
  }
  if (int64_t(p.width) * p.height > limits.max_pixels)
    return Error(cat("size: ", p.width, "x", p.height, " is more than ", limits.max_pixels, " pixels"));
  if (p.steps < 1 || p.steps > limits.max_steps) return Error(cat("steps: ", p.steps, " is outside 1..", limits.max_steps));
  if (p.batch_size < 1 || p.batch_size > limits.max_batch_size)
    return Error(cat("batch_size: ", p.batch_size, " is outside 1..", limits.max_batch_size));
  if (p.n_iter < 1 || p.n_iter > limits.max_n_iter) return Error(cat("n_iter: ", p.n_iter, " is outside 1..", limits.max_n_iter));
  if (!(p.cfg_scale >= 0 && p.cfg_scale <= 100)) return Error(cat("cfg_scale: ", p.cfg_scale, " is outside 0..100"));
  if (!(p.guidance_rescale >= 0 && p.guidance_rescale <= 1))
    return Error(cat("guidance_rescale: ", p.guidance_rescale, " is outside 0..1"));
  if (!(p.subseed_strength >= 0 && p.subseed_strength <= 1))
    return Error(cat("subseed_strength: ", p.subseed_strength, " is outside 0..1"));
  if (p.seed < -1 || p.seed > 0xFFFFFFFFLL) return Error(cat("seed: ", p.seed, " is outside -1..4294967295"));
  if (p.subseed < -1 || p.subseed > 0xFFFFFFFFLL) return Error(cat("subseed: ", p.subseed, " is outside -1..4294967295"));
  if (p.clip_skip < 1 || p.clip_skip > 12) return Error(cat("clip_skip: ", p.clip_skip, " is outside 1..12"));
  if (!(p.denoising_strength >= 0 && p.denoising_strength <= 1))
    return Error(cat("denoising_strength: ", p.denoising_strength, " is outside 0..1"));
  if (p.resize_mode < 0 || p.resize_mode > 3) return Error(cat("resize_mode: ", p.resize_mode, " is not 0, 1, 2 or 3"));
  if (p.inpainting_fill < 0 || p.inpainting_fill > 3)
    return Error(cat("inpainting_fill: ", p.inpainting_fill, " is not 0, 1, 2 or 3"));
  if (p.mask_blur < 0 || p.mask_blur > 256) return Error(cat("mask_blur: ", p.mask_blur, " is outside 0..256"));
  if (p.inpaint_full_res_padding < 0 || p.inpaint_full_res_padding > 4096)
    return Error(cat("inpaint_full_res_padding: ", p.inpaint_full_res_padding, " is outside 0..4096 pixels"));
  if (p.inpainting_mask_invert != 0 && p.inpainting_mask_invert != 1)
    return Error(cat("inpainting_mask_invert: ", p.inpainting_mask_invert, " is not 0 or 1"));
  // Names are checked here, not when sampling starts: a job must not be queued only to fail later.
  if (auto s = sampling::parse_sampler_and_schedule(p.sampler_name); !s.ok()) return Error(cat("sampler_name: ", s.error().message()));
  if (auto s = sampling::parse_sampler_and_schedule("Euler", p.scheduler); !s.ok())
    return Error(cat("scheduler: ", s.error().message()));
  return {};
}

Status validate(const GenerationInputs& inputs) {
  if (inputs.mask && !inputs.init_image) return Error("mask: inpainting needs an init image too");
  return {};
}

}  // namespace easel
