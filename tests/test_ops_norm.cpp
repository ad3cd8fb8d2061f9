// Normalisation ops against double-precision reference loops. The kernels take statistics in
// double and round a handful of times in f32, so each output is within a few ulp of the exact
// value; the tolerances below say exactly how many.
#include <gtest/gtest.h>

#include <cmath>

#include "core/half.h"
#include "ops_test_util.h"

namespace easel {
namespace {

using testing::kLayouts;
using testing::Layout;
using testing::layout_name;
using testing::OpsTest;
using testing::random_tensor;
using testing::random_values;

constexpr double kUlp = 1.0 / (1 << 24);  // half the spacing of floats in [1, 2): one rounding

enum class ParamType { None, F32, F16, BF16 };
constexpr ParamType kParamTypes[] = {ParamType::None, ParamType::F32, ParamType::F16, ParamType::BF16};

const char* param_name(ParamType t) {
  switch (t) {
    case ParamType::None: return "none";
    case ParamType::F32: return "f32";
    case ParamType::F16: return "f16";
    case ParamType::BF16: return "bf16";
  }
  return "?";
}

// A norm weight or bias of n values in [lo, hi), stored as `type`, and the float values the op
// must see (the stored values widened exactly). Undefined (and empty values) for None.
struct Param {
  Tensor tensor;
  std::vector<double> values;
  double at(int64_t i, double fallback) const { return values.empty() ? fallback : values[i]; }
};

Param make_param(ParamType type, int64_t n, uint32_t seed, float lo, float hi) {
  if (type == ParamType::None) return {};
  const std::vector<float> v = random_values(n, seed, lo, hi);
  Param p;
  if (type == ParamType::F32) {
    p.tensor = Tensor::from_vector(v, {n});
    p.values.assign(v.begin(), v.end());
    return p;
  }
  std::vector<int16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t b = type == ParamType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
    bits[i] = static_cast<int16_t>(b);
    p.values.push_back(type == ParamType::F16 ? f16_to_f32(b) : bf16_to_f32(b));
  }
  p.tensor = Tensor::from_vector(bits, {n}).bitcast(type == ParamType::F16 ? DType::F16 : DType::BF16);
  return p;
}

// |got - ref| <= ulps roundings of |ref| plus `spread` roundings of `scale` (the magnitude of
// the intermediate the last roundings happened at, e.g. the normalised value before the bias).
void expect_near_ulps(float got, double ref, double scale, double ulps, const std::string& what) {
  const double tol = ulps * kUlp * (std::fabs(ref) + std::fabs(scale));
  ASSERT_LE(std::fabs(got - ref), tol) << what << ": got " << got << ", expected " << ref;
}

// --- group norm ------------------------------------------------------------------------------

std::vector<double> ref_group_norm(const std::vector<float>& x, const Shape& shape, int groups, const Param& w,
                                   const Param& b, double eps, std::vector<double>* normalized) {
  const int64_t N = shape[0], C = shape[1], S = shape.numel() / std::max<int64_t>(N * C, 1), Cg = C / groups;
  std::vector<double> y(x.size());
  normalized->assign(x.size(), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = (n * C + g * Cg) * S, count = Cg * S;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < count; ++i) mean += x[begin + i];
      mean /= count;
      for (int64_t i = 0; i < count; ++i) var += (x[begin + i] - mean) * (x[begin + i] - mean);
      var /= count;
      for (int64_t i = 0; i < count; ++i) {
        const int64_t c = g * Cg + i / S;
        const double nrm = (x[begin + i] - mean) / std::sqrt(var + eps) * w.at(c, 1.0);
        (*normalized)[begin + i] = nrm;
        y[begin + i] = nrm + b.at(c, 0.0);
      }
    }
  return y;
}

void check_group_norm(Context& ctx, const Tensor& x, int groups, ParamType wt, ParamType bt, uint32_t seed,
                      const std::string& what) {
  const int64_t C = x.size(1);
  const Param w = make_param(wt, C, seed + 1, 0.5f, 1.5f), b = make_param(bt, C, seed + 2, -1.0f, 1.0f);
  const Tensor y = ops::group_norm(ctx, x, groups, w.tensor, b.tensor, 1e-5f);
  ASSERT_EQ(y.shape(), x.shape());
  std::vector<double> normalized;
  const std::vector<double> ref = ref_group_norm(x.to_vector<float>(), x.shape(), groups, w, b, 1e-5, &normalized);
  const std::vector<float> got = y.to_vector<float>();
  const std::string label = what + " weight " + param_name(wt) + " bias " + param_name(bt);
  // Roundings: x - mean (two, the mean being a float pair), the scale, the final FMA.
  for (size_t i = 0; i < got.size(); ++i) expect_near_ulps(got[i], ref[i], normalized[i], 4, label);
}

TEST_F(OpsTest, GroupNormMatchesReference) {
  struct Case {
    Shape shape;
    int groups;
  };
  const Case cases[] = {
      {{2, 6, 5, 7}, 3}, {{1, 32, 9, 9}, 32}, {{1, 32, 9, 9}, 8}, {{3, 4}, 2},
      {{2, 8, 3, 4, 5}, 4}, {{1, 64, 33, 17}, 32}, {{2, 6, 1, 1}, 1},
      {{2, 64, 40, 40}, 32},  // large enough to be split over threads
  };
  uint32_t seed = 1;
  for (const Case& c : cases)
    for (Layout layout : kLayouts)
      for (ParamType wt : kParamTypes)
        for (ParamType bt : kParamTypes) {
          seed += 3;
          check_group_norm(ctx, random_tensor(c.shape, seed, layout), c.groups, wt, bt, seed,
                           c.shape.str() + " groups " + std::to_string(c.groups) + " " + layout_name(layout));
        }
}

// PyTorch-scale activations ride on large offsets (VAE decoders reach |mean| ~ 1e3); the two-pass
// double statistics keep the result exact to a few ulp where a one-pass f32 E[x^2] - E[x]^2 would
// lose most of its bits.
TEST_F(OpsTest, GroupNormIsExactOnLargeOffsets) {
  const std::vector<float> noise = random_values(2 * 8 * 6 * 6, 5, -1.0f, 1.0f);
  std::vector<float> v(noise.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = 1000.0f + noise[i];
  check_group_norm(ctx, Tensor::from_vector(v, {2, 8, 6, 6}), 4, ParamType::F32, ParamType::F32, 6, "offset 1000");

  // A constant group has zero variance: the output is exactly the bias.
  const Tensor x = ops::full(ctx, {1, 4, 3, 3}, 2.5f);
  const Tensor b = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {4});
  const std::vector<float> y = ops::group_norm(ctx, x, 2, Tensor(), b).to_vector<float>();
  for (int i = 0; i < 36; ++i) EXPECT_EQ(y[i], float(1 + i / 9));
}

// --- layer norm and RMS norm ---------------------------------------------------------------

const Shape kRowShapes[] = {{1, 1}, {5, 7}, {3, 4, 64}, {2, 333}, {9, 1024}, {300, 40}, {2000, 64}};

TEST_F(OpsTest, LayerNormMatchesReference) {
  uint32_t seed = 1000;
  for (const Shape& shape : kRowShapes)
    for (Layout layout : kLayouts)
      for (ParamType wt : kParamTypes)
        for (ParamType bt : kParamTypes) {
          const Tensor x = random_tensor(shape, ++seed, layout);
          const int64_t D = shape[shape.size() - 1];
          const Param w = make_param(wt, D, ++seed, 0.5f, 1.5f), b = make_param(bt, D, ++seed, -1.0f, 1.0f);
          const std::vector<float> got = ops::layer_norm(ctx, x, w.tensor, b.tensor, 1e-5f).to_vector<float>();
          const std::vector<float> xv = x.to_vector<float>();
          const std::string what = "layer_norm " + shape.str() + " " + layout_name(layout) + " weight " +
                                   param_name(wt) + " bias " + param_name(bt);
          for (size_t r = 0; r < xv.size() / D; ++r) {
            double mean = 0, var = 0;
            for (int64_t i = 0; i < D; ++i) mean += xv[r * D + i];
            mean /= D;
            for (int64_t i = 0; i < D; ++i) var += (xv[r * D + i] - mean) * (xv[r * D + i] - mean);
            const double rstd = 1.0 / std::sqrt(var / D + 1e-5);
            for (int64_t i = 0; i < D; ++i) {
              const double nrm = (xv[r * D + i] - mean) * rstd * w.at(i, 1.0);
              // Roundings: x - mean (two), rstd, the product, the final FMA.
              expect_near_ulps(got[r * D + i], nrm + b.at(i, 0.0), nrm, 5, what);
            }
          }
        }
}

TEST_F(OpsTest, RmsNormMatchesReference) {
  uint32_t seed = 2000;
  for (const Shape& shape : kRowShapes)
    for (Layout layout : kLayouts)
      for (ParamType wt : kParamTypes) {
        const Tensor x = random_tensor(shape, ++seed, layout);
        const int64_t D = shape[shape.size() - 1];
        const Param w = make_param(wt, D, ++seed, 0.5f, 1.5f);
        const std::vector<float> got = ops::rms_norm(ctx, x, w.tensor, 1e-6f).to_vector<float>();
        const std::vector<float> xv = x.to_vector<float>();
        for (size_t r = 0; r < xv.size() / D; ++r) {
          double ms = 0;
          for (int64_t i = 0; i < D; ++i) ms += double(xv[r * D + i]) * xv[r * D + i];
          const double scale = 1.0 / std::sqrt(ms / D + 1e-6);
          for (int64_t i = 0; i < D; ++i)
            // Roundings: the scale, x * scale, the weight product.
            expect_near_ulps(got[r * D + i], xv[r * D + i] * scale * w.at(i, 1.0), 0, 3,
                             "rms_norm " + shape.str() + " " + layout_name(layout) + " weight " + param_name(wt));
        }
      }
}

// --- softmax ---------------------------------------------------------------------------------

std::vector<double> ref_softmax_rows(const std::vector<float>& x, int64_t D) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / D; ++r) {
    double m = -INFINITY, sum = 0;
    for (int64_t i = 0; i < D; ++i) m = std::max<double>(m, x[r * D + i]);
    for (int64_t i = 0; i < D; ++i) sum += y[r * D + i] = std::exp(x[r * D + i] - m);
    for (int64_t i = 0; i < D; ++i) y[r * D + i] /= sum;
  }
  return y;
}

// Softmax over `dim` of x, by moving dim last in the reference.
std::vector<double> ref_softmax(const Tensor& x, int dim) {
  const int d = dim < 0 ? dim + x.dim() : dim;
  const Tensor moved = x.transpose(d, x.dim() - 1);
  const std::vector<double> r = ref_softmax_rows(moved.to_vector<float>(), moved.size(-1));
  // Back to x's C order: element i of x sits at moved index with dims d and last swapped.
  std::vector<double> out(r.size());
  const Shape& s = x.shape();
  Shape ms = moved.shape();
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t idx[kMaxDims], rem = i;
    for (int k = x.dim() - 1; k >= 0; --k) {
      idx[k] = rem % s[k];
      rem /= s[k];
    }
    std::swap(idx[d], idx[x.dim() - 1]);
    int64_t j = 0;
    for (int k = 0; k < x.dim(); ++k) j = j * ms[k] + idx[k];
    out[i] = r[j];
  }
  return out;
}

TEST_F(OpsTest, SoftmaxMatchesReference) {
  uint32_t seed = 3000;
  const Shape shapes[] = {{1, 1}, {4, 7}, {3, 5, 33}, {2, 3, 4, 1000}, {600, 9}, {3000, 37}};
  for (const Shape& shape : shapes)
    for (Layout layout : kLayouts)
      for (int dim = -1; dim < shape.size(); ++dim)
        for (float spread : {3.0f, 80.0f}) {
          const Tensor x = random_tensor(shape, ++seed, layout, -spread, spread);
          const Tensor y = ops::softmax(ctx, x, dim);
          ASSERT_EQ(y.shape(), shape);
          ASSERT_TRUE(y.is_contiguous());
          const std::vector<double> ref = ref_softmax(x, dim);
          const std::vector<float> got = y.to_vector<float>();
          const std::string what = "softmax " + shape.str() + " " + layout_name(layout) + " dim " +
                                   std::to_string(dim) + " spread " + std::to_string(spread);
          // Roundings: exp (1 ulp), its two-sum correction, 1/sum, the product; plus results
          // that f32 can only hold absolutely (below the normal range).
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_LE(std::fabs(got[i] - ref[i]), 4 * kUlp * ref[i] + 1e-44) << what << " at " << i;
        }
}

TEST_F(OpsTest, SoftmaxIsStableOnExtremeInputs) {
  // Huge logits do not overflow; -inf is weight 0; a row of one element is 1.
  const float inf = INFINITY;
  const Tensor x = Tensor::from_vector(std::vector<float>{1e4f, 1e4f - 1, -inf, 1e4f - 2, -inf, -inf, -inf, 5}, {2, 4});
  const std::vector<float> y = ops::softmax(ctx, x).to_vector<float>();
  const double e1 = std::exp(-1.0), e2 = std::exp(-2.0), s = 1 + e1 + e2;
  EXPECT_NEAR(y[0], 1 / s, 4 * kUlp);
  EXPECT_NEAR(y[1], e1 / s, 4 * kUlp);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_NEAR(y[3], e2 / s, 4 * kUlp);
  EXPECT_EQ(y[4], 0.0f);
  EXPECT_EQ(y[7], 1.0f);
  EXPECT_EQ(ops::softmax(ctx, random_tensor({5, 1}, 1)).to_vector<float>(), std::vector<float>(5, 1.0f));
  // A NaN poisons its own row only.
  const Tensor n = Tensor::from_vector(std::vector<float>{1, NAN, 2, 1, 2, 3}, {2, 3});
  const std::vector<float> yn = ops::softmax(ctx, n).to_vector<float>();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::isnan(yn[i]));
  for (int i = 3; i < 6; ++i) EXPECT_FALSE(std::isnan(yn[i]));
}

// --- shapes, errors ---------------------------------------------------------------------------

TEST_F(OpsTest, NormsOnEmptyTensors) {
  EXPECT_EQ(ops::group_norm(ctx, ops::zeros(ctx, {0, 4, 3, 3}), 2, {}, {}).shape(), Shape({0, 4, 3, 3}));
  EXPECT_EQ(ops::group_norm(ctx, ops::zeros(ctx, {2, 4, 0, 3}), 2, {}, {}).shape(), Shape({2, 4, 0, 3}));
  EXPECT_EQ(ops::layer_norm(ctx, ops::zeros(ctx, {0, 8}), {}, {}).shape(), Shape({0, 8}));
  EXPECT_EQ(ops::layer_norm(ctx, ops::zeros(ctx, {4, 0}), {}, {}).shape(), Shape({4, 0}));
  EXPECT_EQ(ops::rms_norm(ctx, ops::zeros(ctx, {0, 8}), {}).shape(), Shape({0, 8}));
  EXPECT_EQ(ops::softmax(ctx, ops::zeros(ctx, {3, 0})).shape(), Shape({3, 0}));
  EXPECT_EQ(ops::softmax(ctx, ops::zeros(ctx, {0, 3}), 0).shape(), Shape({0, 3}));
}

TEST_F(OpsTest, NormErrors) {
  const Tensor x = random_tensor({2, 6, 4, 4}, 1);
  const Tensor w6 = random_tensor({6}, 2);
  EXPECT_THROW(ops::group_norm(ctx, x, 4, w6, w6), Exception);  // 6 channels, 4 groups
  EXPECT_THROW(ops::group_norm(ctx, x, 0, w6, w6), Exception);
  EXPECT_THROW(ops::group_norm(ctx, x, 3, random_tensor({7}, 3), w6), Exception);
  EXPECT_THROW(ops::group_norm(ctx, x, 3, w6, random_tensor({2, 3}, 4)), Exception);
  EXPECT_THROW(ops::group_norm(ctx, random_tensor({6}, 5), 3, {}, {}), Exception);
  const Tensor w_int = Tensor::from_vector(std::vector<int32_t>(6, 1), {6});
  EXPECT_THROW(ops::group_norm(ctx, x, 3, w_int, {}), Exception);
  const Tensor x_f16 = Tensor::from_vector(std::vector<int16_t>(12, 0), {2, 6}).bitcast(DType::F16);
  EXPECT_THROW(ops::group_norm(ctx, x_f16, 3, {}, {}), Exception);
  try {
    ops::layer_norm(ctx, random_tensor({3, 5}, 6), random_tensor({4}, 7), {});
    FAIL() << "layer_norm with a mis-shaped weight did not throw";
  } catch (const Exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("layer_norm"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[3, 5]"), std::string::npos) << msg;
  }
  EXPECT_THROW(ops::rms_norm(ctx, random_tensor({3, 5}, 8), random_tensor({5, 1}, 9)), Exception);
  EXPECT_THROW(ops::rms_norm(ctx, Tensor(), {}), Exception);
  EXPECT_THROW(ops::softmax(ctx, random_tensor({3, 5}, 10), 2), Exception);
  EXPECT_THROW(ops::softmax(ctx, random_tensor({3, 5}, 11), -3), Exception);
}

}  // namespace
}  // namespace easel
