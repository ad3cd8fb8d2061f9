// Classifier-free guidance on model outputs (eps or v), for the ModelFn a pipeline hands to a
// Denoiser. A1111 combines the denoised estimates instead; the wrappers are affine in the model
// output, so the result is the same.
#pragma once

#include "core/context.h"
#include "core/tensor.h"

namespace easel::sampling {

// uncond + scale * (cond - uncond)
Tensor cfg(Context& ctx, const Tensor& uncond, const Tensor& cond, float scale);

// diffusers rescale_noise_cfg (arXiv 2305.08891, section 3.4): per batch item, rescale `guided`
// to the standard deviation (unbiased, over all non-batch dims) of `cond`, then mix:
// phi * guided * std(cond) / std(guided) + (1 - phi) * guided. phi = 0 returns `guided`.
Tensor rescale_cfg(Context& ctx, const Tensor& guided, const Tensor& cond, float phi);

}  // namespace easel::sampling
