// linear, matmul, conv2d and attention against plain reference loops that accumulate in double.
//
// Tolerances scale with each output's own magnitude: an f32 sum of products is compared within
// kTol of sum |terms| (the scale its rounding error grows with), so a wrong index or a dropped
// term fails while a different summation order passes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_impl.h"
#include "backends/runtime.h"
#include "core/half.h"
#include "ops/ops.h"

namespace easel {
namespace {

constexpr double kTol = 1e-5;

class LinalgTest : public ::testing::Test {
 protected:
  std::unique_ptr<Runtime> runtime = Runtime::create().value();
  Context ctx = runtime->context();
};

std::vector<float> random_values(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

enum class Layout { Contiguous, Permuted, Strided };
constexpr Layout kLayouts[] = {Layout::Contiguous, Layout::Permuted, Layout::Strided};
const char* name(Layout l) {
  return l == Layout::Contiguous ? "contiguous" : l == Layout::Permuted ? "permuted" : "strided";
}

// A view of `values` (C order for `shape`) laid out as asked: contiguous, stored with reversed
// dimensions and permuted back, or every other element of a wider last dimension.
Tensor make_view(const std::vector<float>& values, const Shape& shape, Layout layout) {
  const int nd = shape.size();
  if (layout == Layout::Contiguous) return Tensor::from_vector(values, shape);
  if (layout == Layout::Permuted) {
    Shape stored;
    std::vector<int> back;
    for (int i = nd - 1; i >= 0; --i) stored.push_back(shape[i]), back.push_back(i);
    std::vector<float> data(values.size());
    Tensor t = Tensor::from_vector(data, stored).permute(std::span<const int>(back));
    // Fill through the view: element i in C order of `shape` lands at its permuted place.
    float* base = static_cast<float*>(t.raw());
    std::vector<int64_t> idx(nd, 0);
    for (size_t i = 0; i < values.size(); ++i) {
      int64_t off = 0;
      for (int d = 0; d < nd; ++d) off += idx[d] * t.stride(d);
      base[off] = values[i];
      for (int d = nd - 1; d >= 0; --d) {
        if (++idx[d] < shape[d]) break;
        idx[d] = 0;
      }
    }
    return t;
  }
  Shape stored = shape;
  stored[nd - 1] = 2 * shape[nd - 1] + 1;
  std::vector<float> data(stored.numel(), std::nanf(""));  // gaps are NaN: reading one poisons the result
  const int64_t inner = shape[nd - 1];
  for (size_t i = 0; i < values.size(); ++i)
    data[(i / inner) * stored[nd - 1] + 1 + 2 * (i % inner)] = values[i];
  return Tensor::from_vector(data, stored).slice(nd - 1, 1, 1 + 2 * inner, 2);
}

// Values rounded to what a weight of `dtype` can hold, and the tensor that holds them.
struct Weight {
  std::vector<float> values;
  Tensor tensor;
};

Weight make_weight(std::vector<float> values, const Shape& shape, DType dtype, bool read_only = false) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::F16) bits[i] = f32_to_f16(values[i]), values[i] = f16_to_f32(bits[i]);
    if (dtype == DType::BF16) bits[i] = f32_to_bf16(values[i]), values[i] = bf16_to_f32(bits[i]);
  }
  const void* src = dtype == DType::F32 ? static_cast<const void*>(values.data()) : bits.data();
  const size_t bytes = dtype_bytes(dtype, shape.numel());
  auto owner = std::make_shared<std::vector<std::byte>>(std::max<size_t>(bytes, 1));
  std::memcpy(owner->data(), src, bytes);
  std::byte* data = owner->data();
  auto storage = std::make_shared<BorrowedStorage>(owner, data, bytes, Device{}, read_only);
  return {std::move(values), Tensor::from_storage(storage, 0, shape, dtype)};
}

// Compares got with ref within kTol * scale (scale = sum of |terms| of each output).
void expect_close(const Tensor& got, const std::vector<double>& ref, const std::vector<double>& scale,
                  double tol = kTol) {
  ASSERT_EQ(got.dtype(), DType::F32);
  ASSERT_EQ(static_cast<size_t>(got.numel()), ref.size());
  const auto g = got.to_vector<float>();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(double(g[i]) - ref[i]);
    if (!(err <= tol * scale[i] + 1e-30)) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  if (bad) {
    ADD_FAILURE() << bad << " of " << ref.size() << " outputs off; first at " << first << ": got " << g[first]
                  << ", want " << ref[first] << " (scale " << scale[first] << ")";
  }
}

// ------------------------------------------------------------------------------------------------
// linear

struct LinearCase {
  Shape x;  // [..., K]
  int64_t N;
};

void linear_reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>* b,
                      int64_t M, int64_t K, int64_t N, std::vector<double>& ref, std::vector<double>& scale) {
  ref.assign(M * N, 0.0);
  scale.assign(M * N, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = b ? (*b)[n] : 0.0, a = b ? std::fabs((*b)[n]) : 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double t = double(x[m * K + k]) * w[n * K + k];
        s += t;
        a += std::fabs(t);
      }
      ref[m * N + n] = s;
      scale[m * N + n] = a;
    }
}

TEST_F(LinalgTest, LinearMatchesReference) {
  const LinearCase cases[] = {{{1, 1}, 1},      {{3, 5}, 7},          {{2, 37, 96}, 33},
                              {{77, 768}, 320}, {{130, 67}, 129},     {{4, 300}, 1000},
                              {{2, 3, 5, 17}, 8}, {{1, 4099}, 3},   {{2, 129}, 65},
                              {{6, 40}, 11}};
  uint32_t seed = 1;
  for (const auto& c : cases) {
    const int64_t K = c.x[c.x.size() - 1], M = c.x.numel() / K, N = c.N;
    for (DType wt : {DType::F32, DType::F16, DType::BF16})
      for (Layout layout : kLayouts)
        for (bool with_bias : {false, true}) {
          SCOPED_TRACE(cat("x ", c.x.str(), " N ", N, " w ", dtype_name(wt), " ", name(layout), " bias ", with_bias));
          const auto xv = random_values(c.x.numel(), seed++);
          const Tensor x = make_view(xv, c.x, layout);
          const Weight w = make_weight(random_values(N * K, seed++), {N, K}, wt);
          const Weight b = make_weight(random_values(N, seed++), {N}, wt == DType::BF16 ? DType::F32 : wt);
          const Tensor y = ops::linear(ctx, x, w.tensor, with_bias ? b.tensor : Tensor());
          Shape want = c.x;
          want[want.size() - 1] = N;
          EXPECT_EQ(y.shape(), want);
          std::vector<double> ref, scale;
          linear_reference(xv, w.values, with_bias ? &b.values : nullptr, M, K, N, ref, scale);
          expect_close(y, ref, scale);
        }
  }
}

TEST_F(LinalgTest, LinearHalfWeightsSpanSeveralPanels) {
  // 4096 inputs: f32 panels of 4 MiB hold 256 rows, so 600 rows take three panels (the last
  // short). 40 rows of x: enough for the panel path rather than the direct few-rows kernel.
  const int64_t M = 40, K = 4096, N = 600;
  const auto xv = random_values(M * K, 7);
  const Weight w = make_weight(random_values(N * K, 8), {N, K}, DType::F16, /*read_only=*/true);
  const Weight b = make_weight(random_values(N, 9), {N}, DType::F16);
  const auto before = std::vector<std::byte>(static_cast<const std::byte*>(w.tensor.raw()),
                                             static_cast<const std::byte*>(w.tensor.raw()) + w.tensor.nbytes());
  const Tensor y = ops::linear(ctx, Tensor::from_vector(xv, {M, K}), w.tensor, b.tensor);
  std::vector<double> ref, scale;
  linear_reference(xv, w.values, &b.values, M, K, N, ref, scale);
  expect_close(y, ref, scale);
  EXPECT_EQ(0, std::memcmp(before.data(), w.tensor.raw(), before.size())) << "linear wrote into its weight";
}

TEST_F(LinalgTest, LinearWithoutInputsGivesBias) {
  const Tensor x = Tensor::from_vector(std::vector<float>{}, {3, 0});
  const Tensor w = Tensor::from_vector(std::vector<float>{}, {2, 0});
  const Tensor b = Tensor::from_vector(std::vector<float>{1.5f, -2.0f}, {2});
  const Tensor y = ops::linear(ctx, x, w, b);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{1.5f, -2.0f, 1.5f, -2.0f, 1.5f, -2.0f}));
}

TEST_F(LinalgTest, LinearRejectsBadArguments) {
  const Tensor x = Tensor::from_vector(random_values(12, 1), {3, 4});
  const Tensor w = Tensor::from_vector(random_values(10, 2), {2, 5});
  EXPECT_THROW(ops::linear(ctx, x, w), Exception);  // 4 features vs 5
  try {
    ops::linear(ctx, x, w);
  } catch (const Exception& e) {
    EXPECT_NE(std::string(e.what()).find("linear: x f32[3, 4] has 4 features but weight f32[2, 5]"), std::string::npos)
        << e.what();
  }
  const Tensor w3 = Tensor::from_vector(random_values(8, 3), {2, 4, 1}).squeeze(2).unsqueeze(0);
  EXPECT_THROW(ops::linear(ctx, x, w3), Exception);  // 3-d weight
  const Tensor wi = Tensor::from_vector(std::vector<int32_t>(8, 1), {2, 4});
  EXPECT_THROW(ops::linear(ctx, x, wi), Exception);  // integer weight
  const Tensor w2 = Tensor::from_vector(random_values(8, 4), {2, 4});
  EXPECT_THROW(ops::linear(ctx, x, w2, Tensor::from_vector(random_values(3, 5), {3})), Exception);  // bias size
  EXPECT_THROW(ops::linear(ctx, Tensor(), w2), Exception);
}

// ------------------------------------------------------------------------------------------------
// matmul

// C-order values of a [..., M, K] x [..., K, N] product with numpy batch broadcasting.
void matmul_reference(const std::vector<float>& a, const Shape& as, const std::vector<float>& b, const Shape& bs,
                      float alpha, const Shape& out_shape, std::vector<double>& ref, std::vector<double>& scale) {
  const int nd = out_shape.size();
  const int64_t M = out_shape[nd - 2], N = out_shape[nd - 1], K = as[as.size() - 1];
  const int64_t P = out_shape.numel() / (M * N);
  ref.assign(out_shape.numel(), 0.0);
  scale.assign(out_shape.numel(), 0.0);
  auto offset = [&](const Shape& s, int64_t p) {  // batch index p of out -> element offset in s
    int64_t off = 0, stride = s[s.size() - 1] * s[s.size() - 2];
    for (int d = nd - 3, ds = s.size() - 3; d >= 0; --d, --ds) {
      const int64_t i = p % out_shape[d];
      p /= out_shape[d];
      if (ds >= 0) {
        if (s[ds] != 1) off += i * stride;
        stride *= s[ds];
      }
    }
    return off;
  };
  for (int64_t p = 0; p < P; ++p) {
    const float* ap = a.data() + offset(as, p);
    const float* bp = b.data() + offset(bs, p);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0, t = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double v = double(ap[m * K + k]) * bp[k * N + n];
          s += v;
          t += std::fabs(v);
        }
        ref[(p * M + m) * N + n] = alpha * s;
        scale[(p * M + m) * N + n] = std::fabs(alpha) * t;
      }
  }
}

TEST_F(LinalgTest, MatmulMatchesReferenceWithBroadcasting) {
  struct Case {
    Shape a, b, out;
  };
  const Case cases[] = {
      {{5, 7}, {7, 3}, {5, 3}},
      {{3, 33, 17}, {3, 17, 65}, {3, 33, 65}},
      {{2, 1, 9, 16}, {4, 16, 5}, {2, 4, 9, 5}},     // broadcast both ways
      {{9, 16}, {2, 16, 5}, {2, 9, 5}},              // 2-d a against a batch
      {{2, 3, 40, 24}, {24, 31}, {2, 3, 40, 31}},    // one weight for every batch: a single GEMM
      {{1, 1, 6, 8}, {1, 1, 8, 4}, {1, 1, 6, 4}},
      {{2, 2, 1, 300}, {2, 2, 300, 1}, {2, 2, 1, 1}},
  };
  uint32_t seed = 100;
  for (const auto& c : cases)
    for (Layout la : kLayouts)
      for (Layout lb : kLayouts) {
        SCOPED_TRACE(cat(c.a.str(), " x ", c.b.str(), " ", name(la), " / ", name(lb)));
        const auto av = random_values(c.a.numel(), seed++), bv = random_values(c.b.numel(), seed++);
        const float alpha = seed % 2 ? 1.0f : 0.37f;
        const Tensor y = ops::matmul(ctx, make_view(av, c.a, la), make_view(bv, c.b, lb), alpha);
        EXPECT_EQ(y.shape(), c.out);
        std::vector<double> ref, scale;
        matmul_reference(av, c.a, bv, c.b, alpha, c.out, ref, scale);
        expect_close(y, ref, scale);
      }
}

TEST_F(LinalgTest, MatmulOfAttentionStyleViews) {
  // q·kᵀ and p·v on [B, H, N, D] views of [B, N, H, D] buffers, as models produce them.
  const int64_t B = 2, N = 37, Hh = 3, D = 24;
  const auto qv = random_values(B * N * Hh * D, 11), kv = random_values(B * N * Hh * D, 12);
  const Tensor q = Tensor::from_vector(qv, {B, N, Hh, D}).permute({0, 2, 1, 3});
  const Tensor kt = Tensor::from_vector(kv, {B, N, Hh, D}).permute({0, 2, 3, 1});
  const Tensor s = ops::matmul(ctx, q, kt, 0.25f);
  ASSERT_EQ(s.shape(), Shape({B, Hh, N, N}));
  const auto qc = q.to_vector<float>(), kc = kt.to_vector<float>();
  std::vector<double> ref, scale;
  matmul_reference(qc, q.shape(), kc, kt.shape(), 0.25f, s.shape(), ref, scale);
  expect_close(s, ref, scale);
}

TEST_F(LinalgTest, MatmulRejectsBadArguments) {
  const Tensor a = Tensor::from_vector(random_values(12, 1), {3, 4});
  EXPECT_THROW(ops::matmul(ctx, a, Tensor::from_vector(random_values(10, 2), {5, 2})), Exception);
  EXPECT_THROW(ops::matmul(ctx, Tensor::from_vector(random_values(24, 3), {2, 3, 4}),
                           Tensor::from_vector(random_values(24, 4), {3, 4, 2})),
               Exception);  // batch 2 vs 3
  EXPECT_THROW(ops::matmul(ctx, Tensor::from_vector(random_values(4, 5), {4}), a), Exception);  // 1-d
}

// ------------------------------------------------------------------------------------------------
// conv2d

struct ConvCase {
  int64_t N, C, H, W, O, kh, kw;
  Conv2dParams p;
};

void conv_reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>* b,
                    const ConvCase& c, int64_t Ho, int64_t Wo, std::vector<double>& ref, std::vector<double>& scale) {
  const int64_t g = c.p.groups, Cg = c.C / g, Og = c.O / g;
  ref.assign(c.N * c.O * Ho * Wo, 0.0);
  scale.assign(ref.size(), 0.0);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t oy = 0; oy < Ho; ++oy)
        for (int64_t ox = 0; ox < Wo; ++ox) {
          double s = b ? (*b)[o] : 0.0, a = b ? std::fabs((*b)[o]) : 0.0;
          const int64_t grp = o / Og;
          for (int64_t ci = 0; ci < Cg; ++ci)
            for (int64_t ky = 0; ky < c.kh; ++ky)
              for (int64_t kx = 0; kx < c.kw; ++kx) {
                const int64_t iy = oy * c.p.stride_h - c.p.pad_h + ky * c.p.dilation_h;
                const int64_t ix = ox * c.p.stride_w - c.p.pad_w + kx * c.p.dilation_w;
                if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                const int64_t cin = grp * Cg + ci;
                const double t = double(x[((n * c.C + cin) * c.H + iy) * c.W + ix]) *
                                 w[((o * Cg + ci) * c.kh + ky) * c.kw + kx];
                s += t;
                a += std::fabs(t);
              }
          const size_t i = ((n * c.O + o) * Ho + oy) * Wo + ox;
          ref[i] = s;
          scale[i] = a;
        }
}

void run_conv_case(Context& ctx, const ConvCase& c, DType wt, Layout layout, bool with_bias, bool read_only,
                   uint32_t seed) {
  SCOPED_TRACE(cat("conv N", c.N, " C", c.C, " ", c.H, "x", c.W, " O", c.O, " k", c.kh, "x", c.kw, " s", c.p.stride_h,
                   " p", c.p.pad_h, " d", c.p.dilation_h, " g", c.p.groups, " w ", dtype_name(wt), " ", name(layout),
                   " bias ", with_bias, " ro ", read_only));
  const auto xv = random_values(c.N * c.C * c.H * c.W, seed);
  const Weight w = make_weight(random_values(c.O * (c.C / c.p.groups) * c.kh * c.kw, seed + 1),
                               {c.O, c.C / c.p.groups, c.kh, c.kw}, wt, read_only);
  const Weight b = make_weight(random_values(c.O, seed + 2), {c.O}, wt);
  const Tensor x = make_view(xv, {c.N, c.C, c.H, c.W}, layout);
  const Tensor y = ops::conv2d(ctx, x, w.tensor, with_bias ? b.tensor : Tensor(), c.p);
  const int64_t Ho = (c.H + 2 * c.p.pad_h - c.p.dilation_h * (c.kh - 1) - 1) / c.p.stride_h + 1;
  const int64_t Wo = (c.W + 2 * c.p.pad_w - c.p.dilation_w * (c.kw - 1) - 1) / c.p.stride_w + 1;
  ASSERT_EQ(y.shape(), Shape({c.N, c.O, Ho, Wo}));
  std::vector<double> ref, scale;
  conv_reference(xv, w.values, with_bias ? &b.values : nullptr, c, Ho, Wo, ref, scale);
  expect_close(y, ref, scale);
}

Conv2dParams params(int stride, int pad, int dilation = 1, int groups = 1) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

Conv2dParams rect_params() {
  Conv2dParams rect = params(1, 0);
  rect.stride_w = 2, rect.pad_h = 1, rect.dilation_w = 3;
  return rect;
}

// Few output pixels: the backend runs these on the plain NCHW layout.
TEST_F(LinalgTest, Conv2dMatchesReference) {
  const Conv2dParams rect = rect_params();
  const ConvCase cases[] = {
      {1, 3, 17, 13, 8, 3, 3, params(1, 1)},        // RGB input, odd sizes
      {2, 16, 12, 12, 24, 3, 3, params(2, 1)},      // stride 2 (downsample)
      {1, 32, 9, 11, 16, 1, 1, params(1, 0)},       // 1x1
      {1, 12, 10, 10, 8, 3, 3, params(1, 2, 2)},    // dilation
      {2, 8, 9, 9, 12, 3, 3, params(1, 1, 1, 4)},   // groups
      {1, 16, 8, 8, 16, 3, 3, params(1, 1, 1, 16)}, // depthwise
      {1, 5, 9, 14, 7, 2, 4, rect},                 // rectangular kernel, per-axis params
      {1, 64, 20, 20, 40, 3, 3, params(1, 1)},      // several channel blocks
      {1, 4, 3, 3, 5, 5, 5, params(1, 2)},          // kernel larger than the input
  };
  uint32_t seed = 1000;
  for (const auto& c : cases)
    for (DType wt : {DType::F32, DType::F16, DType::BF16})
      for (Layout layout : kLayouts) {
        seed += 3;
        run_conv_case(ctx, c, wt, layout, (seed / 3) % 2 == 0, false, seed);
      }
}

// Hundreds of output pixels or more: the channel-blocked layout, with channel counts that do
// not fill its blocks of 8.
TEST_F(LinalgTest, Conv2dBlockedLayoutMatchesReference) {
  const ConvCase cases[] = {
      {1, 3, 33, 31, 8, 3, 3, params(1, 1)},         // RGB input
      {2, 16, 40, 40, 24, 3, 3, params(2, 1)},       // stride 2
      {1, 32, 19, 21, 16, 1, 1, params(1, 0)},       // 1x1
      {1, 12, 24, 24, 8, 3, 3, params(1, 2, 2)},     // dilation
      {2, 8, 17, 17, 12, 3, 3, params(1, 1, 1, 4)},  // groups
      {1, 16, 20, 20, 16, 3, 3, params(1, 1, 1, 16)},// depthwise
      {1, 5, 25, 30, 7, 2, 4, rect_params()},        // odd channels, rectangular, per-axis params
  };
  uint32_t seed = 8000;
  for (const auto& c : cases)
    for (DType wt : {DType::F32, DType::F16, DType::BF16})
      for (Layout layout : kLayouts) {
        seed += 3;
        run_conv_case(ctx, c, wt, layout, (seed / 3) % 2 == 1, false, seed);
      }
}

// Large convolutions run in bands of output rows, each with its own share of the padding; cut the
// blocked cases into bands of one row and of a few rows (a remainder band included).
TEST_F(LinalgTest, Conv2dInBandsOfRowsMatchesReference) {
  int64_t& band_bytes = static_cast<CpuBackend&>(ctx.backend()).impl().conv_band_bytes;
  const int64_t saved = band_bytes;
  const ConvCase cases[] = {
      {1, 3, 33, 31, 8, 3, 3, params(1, 1)},         // 3x3, pad 1
      {2, 16, 40, 40, 24, 3, 3, params(2, 1)},       // stride 2, batch 2
      {1, 12, 24, 24, 8, 3, 3, params(1, 2, 2)},     // dilation: a halo of 2 rows each side
      {2, 8, 17, 17, 12, 3, 3, params(1, 1, 1, 4)},  // groups
      {1, 5, 25, 30, 7, 2, 4, rect_params()},        // rectangular kernel, per-axis params
      {1, 4, 35, 35, 5, 5, 5, params(2, 2)},         // 5x5, stride 2: bands start between rows
  };
  uint32_t seed = 9000;
  for (const int64_t bytes : {int64_t(1), int64_t(2000)})
    for (const auto& c : cases)
      for (DType wt : {DType::F32, DType::F16}) {
        seed += 3;
        band_bytes = bytes;
        run_conv_case(ctx, c, wt, seed % 2 ? Layout::Contiguous : Layout::Strided, seed % 2 == 0, seed % 4 == 1, seed);
      }
  band_bytes = saved;
}

TEST_F(LinalgTest, Conv2dCachesReadOnlyWeightsCorrectly) {
  auto& cache = static_cast<CpuBackend&>(ctx.backend()).impl().conv_weights;
  // 16x16 output: blocked layout, packed weight cached. 8x8: plain layout, where only a
  // converted f16 weight is cached (an f32 one is used in place).
  const ConvCase blocked{1, 24, 16, 16, 32, 3, 3, params(1, 1)};
  const ConvCase plain{1, 24, 8, 8, 32, 3, 3, params(1, 1)};
  for (const bool is_blocked : {true, false})
    for (DType wt : {DType::F32, DType::F16}) {
      const ConvCase& c = is_blocked ? blocked : plain;
      SCOPED_TRACE(cat(is_blocked ? "blocked " : "plain ", dtype_name(wt)));
      cache.clear();
      // Each round makes a new read-only weight (likely at the address of the last one, now
      // freed) and runs it twice: a stale entry would give the previous round's answer.
      for (uint32_t round = 0; round < 3; ++round) {
        const auto xv = random_values(c.N * c.C * c.H * c.W, 40 + round);
        const Weight w = make_weight(random_values(c.O * c.C * 9, 50 + round), {c.O, c.C, 3, 3}, wt, true);
        const Tensor x = Tensor::from_vector(xv, {c.N, c.C, c.H, c.W});
        std::vector<double> ref, scale;
        conv_reference(xv, w.values, nullptr, c, c.H, c.W, ref, scale);
        expect_close(ops::conv2d(ctx, x, w.tensor, {}, c.p), ref, scale);
        expect_close(ops::conv2d(ctx, x, w.tensor, {}, c.p), ref, scale);
        const bool cached = is_blocked || wt == DType::F16;
        EXPECT_EQ(cache.bytes() > 0, cached) << cache.bytes() << " bytes cached";
      }
    }
  cache.clear();
}

TEST_F(LinalgTest, Conv2dRejectsBadArguments) {
  const Tensor x = Tensor::from_vector(random_values(2 * 4 * 5 * 5, 1), {2, 4, 5, 5});
  const Tensor w = Tensor::from_vector(random_values(6 * 4 * 9, 2), {6, 4, 3, 3});
  EXPECT_NO_THROW(ops::conv2d(ctx, x, w));
  EXPECT_THROW(ops::conv2d(ctx, x, Tensor::from_vector(random_values(6 * 3 * 9, 2), {6, 3, 3, 3})), Exception);
  EXPECT_THROW(ops::conv2d(ctx, x, w, {}, params(1, 0, 1, 3)), Exception);  // groups do not divide
  EXPECT_THROW(ops::conv2d(ctx, x, w, {}, params(0, 0)), Exception);        // stride 0
  EXPECT_THROW(ops::conv2d(ctx, x, Tensor::from_vector(random_values(6 * 4 * 49, 2), {6, 4, 7, 7})),
               Exception);  // kernel larger than the padded input
  EXPECT_THROW(ops::conv2d(ctx, x.select(0, 0), w), Exception);                                   // 3-d input
  EXPECT_THROW(ops::conv2d(ctx, x, w, Tensor::from_vector(random_values(5, 3), {5})), Exception);  // bias size
}

// ------------------------------------------------------------------------------------------------
// attention

struct AttnCase {
  int64_t B, H, Nq, Nk, D, Dv;
};

// Softmax(q kᵀ scale + mask) v per row in double; rows that see no key give zeros. Scale of each
// output: sum_j p_j |v_j| times (1 + the largest |score|), since a score's rounding error moves
// its weight by that much relative.
void attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, float scale,
                         bool causal, std::vector<double>& ref, std::vector<double>& mag) {
  const int64_t B = q.size(0), H = q.size(1), Nq = q.size(2), D = q.size(3), Nk = k.size(2), Dv = v.size(3);
  const auto qv = q.to_vector<float>(), kv = k.to_vector<float>(), vv = v.to_vector<float>();
  std::vector<float> mv;
  if (mask.defined()) mv = mask.expand({B, H, Nq, Nk}).to_vector<float>();
  ref.assign(B * H * Nq * Dv, 0.0);
  mag.assign(ref.size(), 0.0);
  std::vector<double> s(Nk);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Nq; ++i) {
        const int64_t bh = b * H + h;
        double mx = -INFINITY, smax = 0;
        for (int64_t j = 0; j < Nk; ++j) {
          double dot = 0, dabs = 0;
          for (int64_t d = 0; d < D; ++d) {
            dot += double(qv[(bh * Nq + i) * D + d]) * kv[(bh * Nk + j) * D + d];
            dabs += std::fabs(double(qv[(bh * Nq + i) * D + d]) * kv[(bh * Nk + j) * D + d]);
          }
          const double m = mv.empty() ? 0.0 : mv[(bh * Nq + i) * Nk + j];
          s[j] = dot * scale + m;
          if (causal && j > i + (Nk - Nq)) s[j] = -INFINITY;
          mx = std::max(mx, s[j]);
          if (s[j] != -INFINITY) smax = std::max(smax, dabs * scale + std::fabs(m));  // hidden keys weigh 0
        }
        if (mx == -INFINITY) continue;  // no visible key: zeros
        double l = 0;
        for (int64_t j = 0; j < Nk; ++j) l += std::exp(s[j] - mx);
        for (int64_t j = 0; j < Nk; ++j) {
          const double p = std::exp(s[j] - mx) / l;
          for (int64_t c = 0; c < Dv; ++c) {
            const double t = p * vv[(bh * Nk + j) * Dv + c];
            ref[(bh * Nq + i) * Dv + c] += t;
            mag[(bh * Nq + i) * Dv + c] += std::fabs(t) * (1 + smax);
          }
        }
      }
}

// [B, H, N, D] values as a view of how models hold them: [B, N, H, D] permuted, or as asked.
Tensor attn_input(const Shape& bhnd, uint32_t seed, Layout layout) {
  const auto values = random_values(bhnd.numel(), seed);
  if (layout != Layout::Permuted) return make_view(values, bhnd, layout);
  const Shape stored{bhnd[0], bhnd[2], bhnd[1], bhnd[3]};
  std::vector<float> data(values.size());
  for (int64_t b = 0; b < bhnd[0]; ++b)
    for (int64_t h = 0; h < bhnd[1]; ++h)
      for (int64_t n = 0; n < bhnd[2]; ++n)
        for (int64_t d = 0; d < bhnd[3]; ++d)
          data[((b * bhnd[2] + n) * bhnd[1] + h) * bhnd[3] + d] =
              values[((b * bhnd[1] + h) * bhnd[2] + n) * bhnd[3] + d];
  return Tensor::from_vector(data, stored).permute({0, 2, 1, 3});
}

void run_attention_case(Context& ctx, const AttnCase& c, Layout layout, const Tensor& mask, bool causal, float scale,
                        uint32_t seed) {
  SCOPED_TRACE(cat("attention B", c.B, " H", c.H, " Nq", c.Nq, " Nk", c.Nk, " D", c.D, " Dv", c.Dv, " ", name(layout),
                   " mask ", mask.describe(), " causal ", causal, " scale ", scale));
  const Tensor q = attn_input({c.B, c.H, c.Nq, c.D}, seed, layout);
  const Tensor k = attn_input({c.B, c.H, c.Nk, c.D}, seed + 1, layout);
  const Tensor v = attn_input({c.B, c.H, c.Nk, c.Dv}, seed + 2, layout);
  AttentionParams p;
  p.scale = scale;
  p.causal = causal;
  const Tensor y = ops::attention(ctx, q, k, v, mask, p);
  ASSERT_EQ(y.shape(), Shape({c.B, c.H, c.Nq, c.Dv}));
  std::vector<double> ref, mag;
  attention_reference(q, k, v, mask, scale == 0 ? 1.0f / std::sqrt(float(c.D)) : scale, causal, ref, mag);
  expect_close(y, ref, mag);
}

TEST_F(LinalgTest, AttentionMatchesReference) {
  const AttnCase cases[] = {
      {1, 1, 1, 1, 8, 8},       {2, 3, 37, 53, 40, 40},  {1, 2, 300, 300, 64, 64},
      {1, 1, 5, 700, 16, 24},   {2, 2, 129, 65, 72, 40}, {1, 1, 70, 3, 5, 3},
  };
  uint32_t seed = 2000;
  for (const auto& c : cases)
    for (Layout layout : kLayouts) run_attention_case(ctx, c, layout, {}, false, 0.0f, seed += 3);
}

TEST_F(LinalgTest, AttentionWithMasks) {
  const AttnCase c{2, 3, 45, 77, 32, 24};
  uint32_t seed = 3000;
  // A full additive mask, a key-padding mask with -inf (broadcast over heads and queries), and a
  // per-query bias broadcast over keys.
  const Tensor full = Tensor::from_vector(random_values(c.Nq * c.Nk, 1, -2.0f, 2.0f), {c.Nq, c.Nk});
  std::vector<float> pad(c.B * c.Nk, 0.0f);
  for (int64_t j = 60; j < c.Nk; ++j) pad[j] = -INFINITY;          // batch 0 sees 60 keys
  for (int64_t j = 0; j < c.Nk; j += 2) pad[c.Nk + j] = -INFINITY;  // batch 1 every other key
  const Tensor padding = Tensor::from_vector(pad, {c.B, 1, 1, c.Nk});
  const Tensor per_query = Tensor::from_vector(random_values(c.H * c.Nq, 2), {c.H, c.Nq, 1});
  for (const Tensor& mask : {full, padding, per_query})
    for (Layout layout : kLayouts) run_attention_case(ctx, c, layout, mask, false, 0.0f, seed += 3);
}

TEST_F(LinalgTest, AttentionCausal) {
  // Square, a query block at the end of a longer key sequence (KV cache), long sequences spanning
  // many tiles, and more queries than keys (the first rows see nothing and give zeros).
  const AttnCase cases[] = {{1, 2, 150, 150, 40, 40}, {2, 1, 7, 300, 64, 32}, {1, 1, 520, 520, 16, 16},
                            {1, 1, 40, 30, 8, 8}};
  uint32_t seed = 4000;
  for (const auto& c : cases)
    for (Layout layout : kLayouts) run_attention_case(ctx, c, layout, {}, true, 0.0f, seed += 3);
  const Tensor mask = Tensor::from_vector(random_values(150 * 150, 5), {150, 150});
  run_attention_case(ctx, cases[0], Layout::Permuted, mask, true, 0.3f, seed);
}

TEST_F(LinalgTest, AttentionLongSequence) {
  // SD1.5's first level: 4096 tokens, head size 40 (fewer heads to keep the reference quick).
  run_attention_case(ctx, {1, 1, 4096, 4096, 40, 40}, Layout::Permuted, {}, false, 0.0f, 6000);
}

TEST_F(LinalgTest, AttentionWideHead) {
  // The SD VAE mid block: one head of all 512 channels (4096 positions at 512x512; fewer here to
  // keep the reference quick), over several key tiles with a ragged last one; and a head of 520,
  // not a whole number of vectors.
  run_attention_case(ctx, {2, 1, 300, 300, 512, 512}, Layout::Permuted, {}, false, 0.0f, 6100);
  run_attention_case(ctx, {1, 1, 61, 150, 520, 520}, Layout::Contiguous, {}, false, 0.0f, 6200);
}

TEST_F(LinalgTest, AttentionRejectsBadArguments) {
  const Tensor q = Tensor::from_vector(random_values(2 * 3 * 4 * 8, 1), {2, 3, 4, 8});
  const Tensor k = Tensor::from_vector(random_values(2 * 3 * 5 * 8, 2), {2, 3, 5, 8});
  const Tensor v = Tensor::from_vector(random_values(2 * 3 * 5 * 6, 3), {2, 3, 5, 6});
  EXPECT_NO_THROW(ops::attention(ctx, q, k, v));
  EXPECT_THROW(ops::attention(ctx, q, k.narrow(3, 0, 7), v), Exception);  // head size
  EXPECT_THROW(ops::attention(ctx, q, k, v.narrow(2, 0, 4)), Exception);  // keys vs values
  EXPECT_THROW(ops::attention(ctx, q, k.narrow(0, 0, 1), v.narrow(0, 0, 1)), Exception);  // batch
  EXPECT_THROW(ops::attention(ctx, q, k, v, Tensor::from_vector(random_values(4 * 4, 4), {4, 4})), Exception);
  EXPECT_THROW(ops::attention(ctx, q.select(0, 0), k, v), Exception);  // 3-d
}

// ------------------------------------------------------------------------------------------------

TEST(LinalgThreads, OneThreadGivesTheSameAnswers) {
  RuntimeOptions options;
  options.threads = 1;
  auto runtime = Runtime::create(options).value();
  Context ctx = runtime->context();
  run_conv_case(ctx, {2, 16, 20, 20, 24, 3, 3, params(1, 1)}, DType::F16, Layout::Permuted, true, false, 9000);
  run_attention_case(ctx, {1, 2, 100, 140, 40, 40}, Layout::Permuted, {}, true, 0.0f, 9100);
  const int64_t M = 50, K = 96, N = 70;
  const auto xv = random_values(M * K, 9200);
  const Weight w = make_weight(random_values(N * K, 9201), {N, K}, DType::BF16);
  std::vector<double> ref, scale;
  linear_reference(xv, w.values, nullptr, M, K, N, ref, scale);
  expect_close(ops::linear(ctx, Tensor::from_vector(xv, {M, K}), w.tensor), ref, scale);
}

}  // namespace
}  // namespace easel
