// Normalisation kernels of the CPU backend: group norm, layer norm, RMS norm and softmax.
//
// Statistics are accumulated in double with a two-pass scheme (mean, then the sum of squared
// deviations), so they are exact to within double rounding whatever the magnitude of the mean;
// the elementwise pass is f32 SIMD. Results therefore sit within a few float ulp of the exact
// value, which is as close as any fp32 PyTorch result can be to ours.
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/strided.h"
#include "backends/cpu/vec_math.h"
#include "core/half.h"

namespace easel {
namespace cpu {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
using DD = hn::ScalableTag<double>;
using VD = hn::Vec<DD>;
using DFH = hn::Rebind<float, DD>;  // as many floats as a double vector has lanes
constexpr DF kDF;
constexpr DD kDD;
constexpr DFH kDFH;

// --- statistics ------------------------------------------------------------------------------

// Sum of x[0, n) in double.
double sum_f64(const float* x, int64_t n) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(kDD));
  VD acc0 = hn::Zero(kDD), acc1 = hn::Zero(kDD);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    acc0 = hn::Add(acc0, hn::PromoteTo(kDD, hn::LoadU(kDFH, x + i)));
    acc1 = hn::Add(acc1, hn::PromoteTo(kDD, hn::LoadU(kDFH, x + i + N)));
  }
  double s = hn::GetLane(hn::SumOfLanes(kDD, hn::Add(acc0, acc1)));
  for (; i < n; ++i) s += x[i];
  return s;
}

// Sum of (x - center)^2 over x[0, n) in double.
double sum_sq_dev_f64(const float* x, int64_t n, double center) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(kDD));
  const VD c = hn::Set(kDD, center);
  VD acc0 = hn::Zero(kDD), acc1 = hn::Zero(kDD);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const VD d0 = hn::Sub(hn::PromoteTo(kDD, hn::LoadU(kDFH, x + i)), c);
    const VD d1 = hn::Sub(hn::PromoteTo(kDD, hn::LoadU(kDFH, x + i + N)), c);
    acc0 = hn::MulAdd(d0, d0, acc0);
    acc1 = hn::MulAdd(d1, d1, acc1);
  }
  double s = hn::GetLane(hn::SumOfLanes(kDD, hn::Add(acc0, acc1)));
  for (; i < n; ++i) {
    const double d = x[i] - center;
    s += d * d;
  }
  return s;
}

float row_max(const float* x, int64_t n) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(kDF));
  VF acc = hn::Set(kDF, -INFINITY);
  int64_t i = 0;
  for (; i + N <= n; i += N) acc = hn::Max(acc, hn::LoadU(kDF, x + i));
  float m = hn::GetLane(hn::MaxOfLanes(kDF, acc));
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// e^(a + b) with the rounding error of a + b folded back in (Knuth's two-sum): x - max loses up
// to half an ulp of |x - max|, which e^ would turn into a relative error |x - max| times larger.
VF exp_of_sum(VF a, VF b) {
  const VF s = hn::Add(a, b);
  const VF bb = hn::Sub(s, a);
  VF err = hn::Add(hn::Sub(a, hn::Sub(s, bb)), hn::Sub(b, bb));
  err = hn::IfThenElseZero(hn::IsFinite(err), err);  // infinities leave no finite error term
  const VF e = vec::exp_f32(s);
  return hn::MulAdd(e, err, e);
}

struct Moments {
  double mean = 0;
  double m2 = 0;  // sum of squared deviations from the mean
};

Moments moments(const float* x, int64_t n) {
  if (n == 0) return {};
  const double mean = sum_f64(x, n) / static_cast<double>(n);
  return {mean, sum_sq_dev_f64(x, n, mean)};
}

// --- elementwise passes ----------------------------------------------------------------------

// Applies f to n contiguous floats (whole vectors; the tail through a padded buffer). f gets the
// element index of the vector's first lane so it can load per-element parameters.
template <class F>
void map_rows(const float* x, float* y, int64_t n, const F& f) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(kDF));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f(hn::LoadU(kDF, x + i), i), kDF, y + i);
  if (i < n) {
    alignas(64) float buf[hn::MaxLanes(kDF)] = {};
    std::copy(x + i, x + n, buf);
    hn::Store(f(hn::Load(kDF, buf), i), kDF, buf);
    std::copy(buf, buf + (n - i), y + i);
  }
}

// The mean in double, as two floats whose sum is the mean to 48 bits: x - hi - lo subtracts it
// without rounding the mean itself to float.
struct SplitMean {
  VF hi, lo;
  explicit SplitMean(double mean) {
    const float h = static_cast<float>(mean);
    hi = hn::Set(kDF, h);
    lo = hn::Set(kDF, static_cast<float>(mean - h));
  }
  VF center(VF x) const { return hn::Sub(hn::Sub(x, hi), lo); }
};

// An optional norm weight or bias as floats; empty when undefined. Padded with a vector of zeros
// so that a kernel may load a whole vector at any element index.
std::vector<float> load_param(const Tensor& p) {
  if (!p.defined()) return {};
  const int64_t n = p.numel(), stride = p.dim() ? p.stride(-1) : 1;
  std::vector<float> out(static_cast<size_t>(n) + hn::MaxLanes(kDF), 0.0f);
  const auto* bits = static_cast<const uint16_t*>(p.raw());
  for (int64_t i = 0; i < n; ++i) {
    switch (p.dtype()) {
      case DType::F32: out[i] = static_cast<const float*>(p.raw())[i * stride]; break;
      case DType::F16: out[i] = f16_to_f32(bits[i * stride]); break;
      case DType::BF16: out[i] = bf16_to_f32(bits[i * stride]); break;
      default: throw Exception(cat("norm parameter must be f32, f16 or bf16, got ", p.describe()));
    }
  }
  return out;
}

// Row kernels need each row (last dimension) to be unit-stride; other layouts are copied first.
Tensor with_unit_rows(CpuBackend& backend, Context& ctx, const Tensor& x) {
  if (x.dim() == 0 || x.size(-1) <= 1 || x.stride(-1) == 1) return x;
  Tensor c = ctx.empty(x.shape(), x.dtype());
  backend.copy(ctx, x, c);
  return c;
}

// Calls fn(x_row, out_row) for every row of the last dimension, in parallel. out is contiguous;
// x's rows are unit-stride and its leading dimensions may have any strides.
template <class Fn>
void for_each_row(Context& ctx, const Tensor& x, Tensor& out, const Fn& fn) {
  const int64_t D = x.dim() ? x.size(-1) : 1;
  if (out.numel() == 0) return;
  Shape lead = x.shape(), x_strides = x.strides(), out_strides = out.strides();
  if (x.dim()) {
    lead.erase(lead.size() - 1);
    x_strides.erase(x_strides.size() - 1);
    out_strides.erase(out_strides.size() - 1);
  }
  const StridedLoop<2> rows(lead, {&out_strides, &x_strides});
  const float* xp = static_cast<const float*>(x.raw());
  float* yp = static_cast<float*>(out.raw());
  const int64_t grain = std::max<int64_t>(1, kStreamGrain / std::max<int64_t>(D, 1) / 4);
  rows.parallel_runs(ctx, grain, [&](const std::array<int64_t, 2>& off, int64_t len) {
    for (int64_t r = 0; r < len; ++r)
      fn(xp + off[1] + r * rows.inner_stride(1), yp + off[0] + r * rows.inner_stride(0), D);
  });
}

}  // namespace
}  // namespace cpu

// x [N, C, *] is viewed as N*C planes of S = prod(*) elements. Moments are taken per plane (in
// parallel, cache-friendly), merged per group exactly (Chan et al.'s pairwise update, all planes
// having the same count), and each plane is then normalised with its channel's scale and shift.
void CpuBackend::group_norm(Context& ctx, const Tensor& x_in, const Tensor& weight, const Tensor& bias, int groups,
                            float eps, Tensor& out) {
  using namespace cpu;
  if (out.numel() == 0) return;
  Tensor x = x_in;
  if (!x.is_contiguous()) {
    x = ctx.empty(x_in.shape(), x_in.dtype());
    copy(ctx, x_in, x);
  }
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C), Cg = C / groups;
  const float* xp = static_cast<const float*>(x.raw());
  float* yp = static_cast<float*>(out.raw());
  const std::vector<float> w = load_param(weight), b = load_param(bias);

  std::vector<Moments> plane(static_cast<size_t>(N * C));
  const int64_t plane_grain = std::max<int64_t>(1, kStreamGrain / std::max<int64_t>(S, 1));
  ctx.pool().parallel_for(N * C, plane_grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) plane[p] = moments(xp + p * S, S);
  });

  // Per group: mean and 1/sqrt(var + eps), merged from its Cg planes of S elements each.
  std::vector<double> mean(static_cast<size_t>(N * groups)), rstd(mean.size());
  for (int64_t g = 0; g < N * groups; ++g) {
    const Moments* m = &plane[g * Cg];
    double mu = 0;
    for (int64_t c = 0; c < Cg; ++c) mu += m[c].mean;
    mu /= static_cast<double>(Cg);
    double m2 = 0;
    for (int64_t c = 0; c < Cg; ++c) m2 += m[c].m2 + static_cast<double>(S) * (m[c].mean - mu) * (m[c].mean - mu);
    mean[g] = mu;
    rstd[g] = 1.0 / std::sqrt(m2 / static_cast<double>(Cg * S) + eps);
  }

  ctx.pool().parallel_for(N * C, plane_grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t c = p % C, g = p / C * groups + c / Cg;
      const double scale = rstd[g] * (w.empty() ? 1.0 : w[c]);
      const SplitMean center(mean[g]);
      const VF vs = hn::Set(kDF, static_cast<float>(scale));
      const VF vb = hn::Set(kDF, b.empty() ? 0.0f : b[c]);
      map_rows(xp + p * S, yp + p * S, S, [&](VF v, int64_t) { return hn::MulAdd(center.center(v), vs, vb); });
    }
  });
}

void CpuBackend::layer_norm(Context& ctx, const Tensor& x_in, const Tensor& weight, const Tensor& bias, float eps,
                            Tensor& out) {
  using namespace cpu;
  const Tensor x = with_unit_rows(*this, ctx, x_in);
  const std::vector<float> w = load_param(weight), b = load_param(bias);
  for_each_row(ctx, x, out, [&](const float* xr, float* yr, int64_t D) {
    const Moments m = moments(xr, D);
    const SplitMean center(m.mean);
    const VF rstd = hn::Set(kDF, static_cast<float>(1.0 / std::sqrt(m.m2 / static_cast<double>(D) + eps)));
    const VF one = hn::Set(kDF, 1.0f);
    map_rows(xr, yr, D, [&](VF v, int64_t i) {
      const VF vw = w.empty() ? one : hn::LoadU(kDF, w.data() + i);
      const VF n = hn::Mul(center.center(v), rstd);
      return b.empty() ? hn::Mul(n, vw) : hn::MulAdd(n, vw, hn::LoadU(kDF, b.data() + i));
    });
  });
}

void CpuBackend::rms_norm(Context& ctx, const Tensor& x_in, const Tensor& weight, float eps, Tensor& out) {
  using namespace cpu;
  const Tensor x = with_unit_rows(*this, ctx, x_in);
  const std::vector<float> w = load_param(weight);
  for_each_row(ctx, x, out, [&](const float* xr, float* yr, int64_t D) {
    const double ms = D ? sum_sq_dev_f64(xr, D, 0.0) / static_cast<double>(D) : 0.0;
    const VF r = hn::Set(kDF, static_cast<float>(1.0 / std::sqrt(ms + eps)));
    map_rows(xr, yr, D, [&](VF v, int64_t i) {
      const VF n = hn::Mul(v, r);
      return w.empty() ? n : hn::Mul(n, hn::LoadU(kDF, w.data() + i));
    });
  });
}

void CpuBackend::softmax(Context& ctx, const Tensor& x_in, Tensor& out) {
  using namespace cpu;
  const Tensor x = with_unit_rows(*this, ctx, x_in);
  for_each_row(ctx, x, out, [&](const float* xr, float* yr, int64_t D) {
    const VF neg_max = hn::Set(kDF, -row_max(xr, D));
    // A NaN anywhere makes the sum, hence the whole row, NaN (as in torch).
    map_rows(xr, yr, D, [&](VF v, int64_t) { return exp_of_sum(v, neg_max); });
    const VF inv = hn::Set(kDF, static_cast<float>(1.0 / sum_f64(yr, D)));
    map_rows(yr, yr, D, [&](VF v, int64_t) { return hn::Mul(v, inv); });
  });
}

}  // namespace easel
