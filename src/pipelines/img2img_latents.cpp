#include "pipelines/img2img_latents.h"

#include <algorithm>
#include <cmath>

#include "ops/ops.h"
#include "sampling/image_rng.h"
#include "sampling/masked_denoiser.h"

namespace easel {
namespace {

// PyTorch's compute_source_index_and_lambda (UpSample.h) for one output index,
// align_corners False: the source position scale * (i + 0.5) - 0.5 clamped at
// 0, in float as PyTorch computes it.
struct Tap {
  int64_t i0, i1;
  float l0, l1;
};

std::vector<Tap> taps(int64_t in, int64_t out) {
  std::vector<Tap> t(static_cast<size_t>(out));
  const float scale = float(in) / float(out);
  for (int64_t o = 0; o < out; ++o) {
    if (in == out) {
      t[size_t(o)] = {o, o, 1.0f, 0.0f};
      continue;
    }
    const float real = std::max(scale * (float(o) + 0.5f) - 0.5f, 0.0f);
    const int64_t i0 = std::min(int64_t(std::floor(real)), in - 1);
    const float l1 = std::min(std::max(real - float(i0), 0.0f), 1.0f);
    t[size_t(o)] = {i0, i0 + (i0 < in - 1 ? 1 : 0), 1.0f - l1, l1};
  }
  return t;
}

}  // namespace

Tensor resize_latents_bilinear(const Tensor &x, int64_t h, int64_t w) {
  EASEL_CHECK(x.dim() == 4 && h > 0 && w > 0, "resize_latents_bilinear: needs NCHW and a positive size, got ",
              x.describe());
  const int64_t planes = x.size(0) * x.size(1), ih = x.size(2), iw = x.size(3);
  const std::vector<float> in = x.to_vector<float>();
  const std::vector<Tap> ty = taps(ih, h), tx = taps(iw, w);
  std::vector<float> out(size_t(planes * h * w));
  for (int64_t p = 0; p < planes; ++p) {
    const float *src = &in[size_t(p * ih * iw)];
    for (int64_t y = 0; y < h; ++y) {
      const Tap &a = ty[size_t(y)];
      for (int64_t xo = 0; xo < w; ++xo) {
        const Tap &b = tx[size_t(xo)];
        // Height outer, width inner, as PyTorch's separable interpolation sums
        // them.
        const float top = src[a.i0 * iw + b.i0] * b.l0 + src[a.i0 * iw + b.i1] * b.l1;
        const float bottom = src[a.i1 * iw + b.i0] * b.l0 + src[a.i1 * iw + b.i1] * b.l1;
        out[size_t((p * h + y) * w + xo)] = top * a.l0 + bottom * a.l1;
      }
    }
  }
  return Tensor::from_vector(out, {x.size(0), x.size(1), h, w});
}

Tensor masked_content_latents(Context &ctx, const Tensor &init, const Tensor &nmask, int inpainting_fill,
                              const std::vector<int64_t> &seeds) {
  if (inpainting_fill == 3) return sampling::blend_latents(ctx, ops::zeros(ctx, init.shape()), init, nmask);
  if (inpainting_fill != 2) return init;
  sampling::SeedParams fresh;  // create_random_tensors(shape, seeds): no subseeds, no seed resize
  fresh.seeds = seeds;
  sampling::ImageRng rng(fresh);
  const Tensor noise = rng.next(ctx, init.shape());
  return sampling::blend_latents(ctx, noise, init, nmask);
}

}  // namespace easel
