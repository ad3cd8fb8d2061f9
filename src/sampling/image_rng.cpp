#include "sampling/image_rng.h"

#include <algorithm>
#include <cmath>

namespace easel::sampling {
namespace {

std::vector<float> randn(TorchGenerator& g, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  g.randn(std::span<float>(v));
  return v;
}

uint64_t torch_seed(int64_t seed) { return static_cast<uint64_t>(seed); }  // negative wraps as torch does

}  // namespace

std::vector<float> a1111_slerp(float val, const std::vector<float>& low, const std::vector<float>& high, int64_t c,
                               int64_t h, int64_t w) {
  // low_norm = low / norm(low, dim=1); dot = (low_norm * high_norm).sum(1)  -> [C, W]
  std::vector<float> dot(size_t(c * w)), low_len(size_t(c * w)), high_len(size_t(c * w));
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t x = 0; x < w; ++x) {
      float sl = 0, sh = 0;
      for (int64_t y = 0; y < h; ++y) {
        const size_t i = size_t((ci * h + y) * w + x);
        sl += low[i] * low[i];
        sh += high[i] * high[i];
      }
      low_len[size_t(ci * w + x)] = std::sqrt(sl);
      high_len[size_t(ci * w + x)] = std::sqrt(sh);
    }
  double mean = 0;
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t x = 0; x < w; ++x) {
      float d = 0;
      for (int64_t y = 0; y < h; ++y) {
        const size_t i = size_t((ci * h + y) * w + x);
        d += (low[i] / low_len[size_t(ci * w + x)]) * (high[i] / high_len[size_t(ci * w + x)]);
      }
      dot[size_t(ci * w + x)] = d;
      mean += d;
    }
  mean /= double(c * w);
  std::vector<float> out(low.size());
  if (mean > 0.9995) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = low[i] * val + high[i] * (1 - val);
    return out;
  }
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t x = 0; x < w; ++x) {
      const float omega = std::acos(dot[size_t(ci * w + x)]);
      const float so = std::sin(omega);
      const float a = std::sin((1.0f - val) * omega) / so, b = std::sin(val * omega) / so;
      for (int64_t y = 0; y < h; ++y) {
        const size_t i = size_t((ci * h + y) * w + x);
        out[i] = a * low[i] + b * high[i];
      }
    }
  return out;
}

ImageRng::ImageRng(SeedParams params, int latent_scale) : params_(std::move(params)), latent_scale_(latent_scale) {
  for (int64_t seed : params_.seeds) generators_.emplace_back(torch_seed(seed));
}

Tensor ImageRng::first(Context& ctx) {
  const int64_t c = shape_[0], h = shape_[1], w = shape_[2];
  const bool resized = params_.seed_resize_from_h > 0 && params_.seed_resize_from_w > 0;
  const int64_t nh = resized ? params_.seed_resize_from_h / latent_scale_ : h;
  const int64_t nw = resized ? params_.seed_resize_from_w / latent_scale_ : w;
  const int64_t n = static_cast<int64_t>(params_.seeds.size());
  Tensor out = ctx.empty(Shape{n, c, h, w});
  float* dst = out.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t seed = params_.seeds[size_t(i)];
    std::vector<float> subnoise;
    if (params_.subseed_strength != 0) {
      const int64_t subseed = size_t(i) < params_.subseeds.size() ? params_.subseeds[size_t(i)] : 0;
      TorchGenerator g(torch_seed(subseed));  // randn(subseed, shape): torch.manual_seed, then randn
      subnoise = randn(g, c * nh * nw);
    }
    std::vector<float> noise;
    if (resized) {
      TorchGenerator g(torch_seed(seed));
      noise = randn(g, c * nh * nw);
    } else {
      noise = randn(generators_[size_t(i)], c * h * w);
    }
    if (!subnoise.empty()) noise = a1111_slerp(float(params_.subseed_strength), noise, subnoise, c, nh, nw);
    if (resized) {
      std::vector<float> x = randn(generators_[size_t(i)], c * h * w);
      // Python's // floors; C++'s / truncates.
      const int64_t dx = (w - nw) >= 0 ? (w - nw) / 2 : -((nw - w + 1) / 2);
      const int64_t dy = (h - nh) >= 0 ? (h - nh) / 2 : -((nh - h + 1) / 2);
      const int64_t cw = dx >= 0 ? nw : nw + 2 * dx, ch = dy >= 0 ? nh : nh + 2 * dy;
      const int64_t tx = std::max<int64_t>(dx, 0), ty = std::max<int64_t>(dy, 0);
      const int64_t sx = std::max<int64_t>(-dx, 0), sy = std::max<int64_t>(-dy, 0);
      for (int64_t ci = 0; ci < c; ++ci)
        for (int64_t y = 0; y < ch; ++y)
          for (int64_t xx = 0; xx < cw; ++xx)
            x[size_t((ci * h + ty + y) * w + tx + xx)] = noise[size_t((ci * nh + sy + y) * nw + sx + xx)];
      noise = std::move(x);
    }
    std::copy(noise.begin(), noise.end(), dst + i * c * h * w);
  }
  if (params_.eta_noise_seed_delta != 0)
    for (size_t i = 0; i < generators_.size(); ++i)
      generators_[i].manual_seed(torch_seed(params_.seeds[i] + params_.eta_noise_seed_delta));
  return out;
}

Tensor ImageRng::next(Context& ctx, const Shape& shape) {
  EASEL_CHECK(shape.size() == 4 && shape[0] == int64_t(generators_.size()), "noise: shape ", shape.str(),
              " needs a batch of ", generators_.size(), " (one seed per image)");
  const Shape image_shape{shape[1], shape[2], shape[3]};
  EASEL_CHECK(is_first_ || image_shape == shape_, "noise: shape ", shape.str(), " after draws of ", shape_.str());
  shape_ = image_shape;
  if (is_first_) {
    is_first_ = false;
    return first(ctx);
  }
  const int64_t per_image = shape_.numel();
  Tensor out = ctx.empty(Shape{int64_t(generators_.size()), shape_[0], shape_[1], shape_[2]});
  float* dst = out.data<float>();
  for (size_t i = 0; i < generators_.size(); ++i)
    generators_[i].randn(std::span<float>(dst + int64_t(i) * per_image, size_t(per_image)));
  return out;
}

}  // namespace easel::sampling
