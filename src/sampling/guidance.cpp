#include "sampling/guidance.h"

#include <cmath>
#include <vector>

#include "ops/ops.h"

namespace easel::sampling {

Tensor cfg(Context& ctx, const Tensor& uncond, const Tensor& cond, float scale) {
  return ops::add(ctx, uncond, ops::affine(ctx, ops::sub(ctx, cond, uncond), scale, 0.0f));
}

namespace {
// torch.std(dim=all but 0), unbiased, per batch item. Latents are small: computed on the host.
std::vector<double> batch_std(const Tensor& t) {
  const auto v = t.to_vector<float>();
  const int64_t b = t.size(0), n = t.numel() / b;
  std::vector<double> out;
  for (int64_t i = 0; i < b; ++i) {
    double mean = 0, ss = 0;
    for (int64_t j = 0; j < n; ++j) mean += v[i * n + j];
    mean /= n;
    for (int64_t j = 0; j < n; ++j) ss += (v[i * n + j] - mean) * (v[i * n + j] - mean);
    out.push_back(std::sqrt(ss / static_cast<double>(n - 1)));
  }
  return out;
}
}  // namespace

Tensor rescale_cfg(Context& ctx, const Tensor& guided, const Tensor& cond, float phi) {
  if (phi == 0.0f) return guided;
  EASEL_CHECK(guided.shape() == cond.shape() && guided.dim() >= 2 && guided.numel() / guided.size(0) >= 2,
              "rescale_cfg: guided ", guided.describe(), " and cond ", cond.describe(),
              " must have the same batched shape");
  const auto std_cond = batch_std(cond), std_guided = batch_std(guided);
  // per item: guided * (phi * std_cond / std_guided + 1 - phi)
  std::vector<float> factor;
  for (size_t i = 0; i < std_cond.size(); ++i)
    factor.push_back(static_cast<float>(phi * (std_cond[i] / std_guided[i]) + (1.0 - phi)));
  Shape fshape = guided.shape();
  for (int d = 1; d < fshape.size(); ++d) fshape[d] = 1;
  return ops::mul(ctx, guided, Tensor::from_vector(factor, fshape));
}

}  // namespace easel::sampling
