// Elementwise ops against double-precision reference loops: accuracy of the transcendental
// kernels over the float range, independence from memory layout, every kind of broadcast,
// in-place aliasing, empty tensors and argument errors.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <functional>

#include "ops_test_util.h"

namespace easel {
namespace {

using testing::broadcast_index;
using testing::expect_same;
using testing::kLayouts;
using testing::Layout;
using testing::layout_name;
using testing::OpsTest;
using testing::random_tensor;

constexpr double kFltMin = 1.1754943508222875e-38;     // smallest normal float
constexpr double kDenormMin = 1.4012984643248171e-45;  // float subnormal spacing

struct UnaryCase {
  const char* name;
  std::function<Tensor(Context&, const Tensor&)> op;
  double (*ref)(double);
  // Worst error over normal results, in ulp. Measured over a sweep 60x denser than the test's
  // (every 5th float bit pattern up to |x| = 120), rounded up a little.
  double max_ulp;
};

double ref_gelu(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double ref_gelu_tanh(double x) {
  // 0.5 x (1 + tanh u) == x / (1 + e^-2u): the same function, without cancellation in double.
  const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
  return x / (1.0 + std::exp(-2.0 * u));
}

const std::vector<UnaryCase>& transcendental_cases() {
  static const std::vector<UnaryCase> cases = {
      {"exp", ops::exp, [](double x) { return std::exp(x); }, 1.1},
      {"tanh", ops::tanh, [](double x) { return std::tanh(x); }, 1.5},
      {"sigmoid", ops::sigmoid, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, 2.5},
      {"silu", ops::silu, [](double x) { return x / (1.0 + std::exp(-x)); }, 3.5},
      {"gelu", [](Context& c, const Tensor& x) { return ops::gelu(c, x); }, ref_gelu, 7.0},
      {"gelu_tanh", [](Context& c, const Tensor& x) { return ops::gelu(c, x, true); }, ref_gelu_tanh, 4.0},
  };
  return cases;
}

// Every `step`-th float bit pattern from 0 up to 120, with both signs.
std::vector<float> float_sweep(uint32_t step) {
  std::vector<float> v;
  for (uint64_t bits = 0; bits <= 0x42f00000u; bits += step) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(bits));
    v.push_back(f);
    v.push_back(-f);
  }
  return v;
}

TEST_F(OpsTest, TranscendentalsAreAccurateOverTheFloatRange) {
  const std::vector<float> xs = float_sweep(331);
  const Tensor x = Tensor::from_vector(xs, {static_cast<int64_t>(xs.size())});
  for (const UnaryCase& c : transcendental_cases()) {
    const std::vector<float> y = c.op(ctx, x).to_vector<float>();
    double worst_ulp = 0, worst_subnormal = 0;
    float worst_x = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double ref = c.ref(xs[i]);
      if (std::fabs(ref) < kFltMin) {
        // Subnormal results: f32 has only absolute resolution there.
        worst_subnormal = std::max(worst_subnormal, std::fabs(y[i] - ref) / kDenormMin);
        continue;
      }
      const double e = testing::ulp_error(y[i], ref);
      if (!(e <= worst_ulp)) {
        worst_ulp = e;
        worst_x = xs[i];
      }
    }
    EXPECT_LE(worst_ulp, c.max_ulp) << c.name << " at x = " << worst_x;
    EXPECT_LE(worst_subnormal, 3.0) << c.name << ": subnormal results off by that many subnormal steps";
  }
}

TEST_F(OpsTest, TranscendentalsHandleInfinitiesAndNaN) {
  const float inf = INFINITY, nan = NAN;
  const Tensor x = Tensor::from_vector(std::vector<float>{inf, -inf, nan, 1e30f, -1e30f, 0.0f}, {6});
  const auto y = [&](const Tensor& t) { return t.to_vector<float>(); };
  const auto e = y(ops::exp(ctx, x));
  EXPECT_EQ(e[0], inf);
  EXPECT_EQ(e[1], 0.0f);
  EXPECT_TRUE(std::isnan(e[2]));
  EXPECT_EQ(e[3], inf);
  EXPECT_EQ(e[4], 0.0f);
  EXPECT_EQ(e[5], 1.0f);
  const auto t = y(ops::tanh(ctx, x));
  EXPECT_EQ(t[0], 1.0f);
  EXPECT_EQ(t[1], -1.0f);
  EXPECT_TRUE(std::isnan(t[2]));
  EXPECT_EQ(t[3], 1.0f);
  EXPECT_EQ(t[4], -1.0f);
  const auto s = y(ops::sigmoid(ctx, x));
  EXPECT_EQ(s[0], 1.0f);
  EXPECT_EQ(s[1], 0.0f);
  EXPECT_TRUE(std::isnan(s[2]));
  EXPECT_EQ(s[5], 0.5f);
  for (const UnaryCase& c : transcendental_cases()) {
    if (std::string(c.name) == "exp" || std::string(c.name) == "tanh" || std::string(c.name) == "sigmoid") continue;
    const auto v = y(c.op(ctx, x));
    EXPECT_EQ(v[0], inf) << c.name;
    EXPECT_TRUE(std::isnan(v[2])) << c.name;
    EXPECT_EQ(v[3], 1e30f) << c.name;
    EXPECT_EQ(v[4], 0.0f) << c.name;
    EXPECT_EQ(v[5], 0.0f) << c.name;
  }
  // Relu, clamp and maximum keep NaN, as in torch.
  EXPECT_TRUE(std::isnan(y(ops::relu(ctx, x))[2]));
  EXPECT_TRUE(std::isnan(y(ops::clamp(ctx, x, -1, 1))[2]));
  EXPECT_TRUE(std::isnan(y(ops::maximum(ctx, x, ops::zeros(ctx, {6})))[2]));
  EXPECT_TRUE(std::isnan(y(ops::minimum(ctx, ops::zeros(ctx, {6}), x))[2]));
}

// Simple ops have exact references (one IEEE rounding at most).
struct ExactCase {
  const char* name;
  std::function<Tensor(Context&, const Tensor&)> op;
  std::function<float(float)> ref;
};

const std::vector<ExactCase>& exact_cases() {
  static const std::vector<ExactCase> cases = {
      {"relu", ops::relu, [](float x) { return x > 0 ? x : 0.0f; }},
      {"sqrt", ops::sqrt, [](float x) { return std::sqrt(x); }},
      {"affine", [](Context& c, const Tensor& x) { return ops::affine(c, x, 0.7f, -0.3f); },
       [](float x) { return std::fma(x, 0.7f, -0.3f); }},
      {"clamp", [](Context& c, const Tensor& x) { return ops::clamp(c, x, -0.5f, 1.25f); },
       [](float x) { return std::min(std::max(x, -0.5f), 1.25f); }},
  };
  return cases;
}

const Shape kUnaryShapes[] = {{}, {1}, {7}, {3, 5, 17}, {2, 3, 4, 33}, {33, 700}, {3, 70001}};

// Every layout gives bit-identical results (one kernel path per vector), within the accuracy
// bound of the reference.
TEST_F(OpsTest, UnaryOpsAgreeAcrossLayouts) {
  uint32_t seed = 1;
  for (const Shape& shape : kUnaryShapes) {
    for (Layout layout : kLayouts) {
      const Tensor x = random_tensor(shape, ++seed, layout, -6.0f, 6.0f);
      const Tensor xc = Tensor::from_vector(x.to_vector<float>(), shape);
      const std::vector<float> xv = xc.to_vector<float>();
      const std::string where = shape.str() + " " + layout_name(layout);
      for (const UnaryCase& c : transcendental_cases()) {
        const Tensor y = c.op(ctx, x);
        ASSERT_EQ(y.shape(), shape);
        expect_same(y, c.op(ctx, xc), std::string(c.name) + " " + where);
        const std::vector<float> yv = y.to_vector<float>();
        for (size_t i = 0; i < yv.size(); ++i)
          ASSERT_LE(testing::ulp_error(yv[i], c.ref(xv[i])), c.max_ulp) << c.name << " " << where << " x=" << xv[i];
      }
      for (const ExactCase& c : exact_cases()) {
        const std::vector<float> yv = c.op(ctx, x).to_vector<float>();
        for (size_t i = 0; i < yv.size(); ++i) {
          const float want = c.ref(xv[i]);
          if (std::isnan(want)) {
            ASSERT_TRUE(std::isnan(yv[i])) << c.name << " " << where;
          } else {
            ASSERT_EQ(yv[i], want) << c.name << " " << where << " x=" << xv[i];
          }
        }
      }
    }
  }
}

TEST_F(OpsTest, InPlaceUnaryOps) {
  // Contiguous: the tensor itself is updated.
  Tensor x = random_tensor({5, 37}, 7);
  const std::vector<float> before = x.to_vector<float>();
  ops::silu_(ctx, x);
  expect_same(x, ops::silu(ctx, Tensor::from_vector(before, {5, 37})), "silu_");
  Tensor r = random_tensor({300}, 8);
  const void* storage = r.raw();
  ops::relu_(ctx, r);
  EXPECT_EQ(r.raw(), storage);
  for (float v : r.to_vector<float>()) EXPECT_GE(v, 0.0f);

  // A strided view: only its elements change.
  Tensor base = random_tensor({6, 10}, 9);
  const std::vector<float> orig = base.to_vector<float>();
  Tensor view = base.slice(1, 1, 10, 3);  // columns 1, 4, 7
  ops::relu_(ctx, view);
  const std::vector<float> after = base.to_vector<float>();
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 10; ++j) {
      const float o = orig[i * 10 + j];
      EXPECT_EQ(after[i * 10 + j], j % 3 == 1 ? std::max(o, 0.0f) : o) << i << "," << j;
    }

  // The backend contract: out may alias x.
  Tensor y = random_tensor({1000}, 10);
  const Tensor expected = ops::gelu(ctx, y);
  ctx.backend().unary(ctx, UnaryOp::GeluErf, y, 0, 0, y);
  expect_same(y, expected, "unary in place");
}

struct BinaryCase {
  const char* name;
  std::function<Tensor(Context&, const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
};

const std::vector<BinaryCase>& binary_cases() {
  static const std::vector<BinaryCase> cases = {
      {"add", ops::add, [](double a, double b) { return a + b; }},
      {"sub", ops::sub, [](double a, double b) { return a - b; }},
      {"mul", ops::mul, [](double a, double b) { return a * b; }},
      {"div", ops::div, [](double a, double b) { return a / b; }},
      {"maximum", ops::maximum, [](double a, double b) { return std::max(a, b); }},
      {"minimum", ops::minimum, [](double a, double b) { return std::min(a, b); }},
  };
  return cases;
}

Shape broadcast(const Shape& a, const Shape& b) {
  const int nd = std::max(a.size(), b.size());
  Shape s;
  for (int i = 0; i < nd; ++i) {
    const int ia = i - (nd - a.size()), ib = i - (nd - b.size());
    const int64_t sa = ia >= 0 ? a[ia] : 1, sb = ib >= 0 ? b[ib] : 1;
    s.push_back(sa == 1 ? sb : sa);
  }
  return s;
}

// Every broadcast pattern, in every layout of both operands. f32 +-*/ of floats computed in
// double and rounded once is the correctly rounded f32 result, so the comparison is exact.
TEST_F(OpsTest, BinaryOpsBroadcastInEveryLayout) {
  const std::pair<Shape, Shape> patterns[] = {
      {{2, 3, 4, 5}, {2, 3, 4, 5}},  // same shape
      {{2, 7, 5, 3}, {1, 7, 1, 1}},  // per-channel bias on NCHW
      {{9, 33}, {33}},               // row vector
      {{9, 33}, {9, 1}},             // column vector
      {{4, 1, 6}, {1, 5, 1}},        // both sides broadcast
      {{}, {3, 4}},                  // 0-d scalar
      {{1}, {5, 6}},
      {{3, 1, 5}, {2, 1, 1, 5}},     // b has more dimensions
      {{2, 40, 300}, {2, 1, 300}},   // long rows, batch > 1
      {{300, 1, 17}, {1, 40, 17}},
      {{3000}, {1}},
  };
  uint32_t seed = 100;
  for (const auto& [sa, sb] : patterns) {
    const Shape out_shape = broadcast(sa, sb);
    for (Layout la : kLayouts) {
      for (Layout lb : kLayouts) {
        const Tensor a = random_tensor(sa, ++seed, la);
        const Tensor b = random_tensor(sb, ++seed, lb, 0.5f, 2.0f);
        const std::vector<float> av = a.to_vector<float>(), bv = b.to_vector<float>();
        for (const BinaryCase& c : binary_cases()) {
          for (bool swap : {false, true}) {
            const Tensor y = swap ? c.op(ctx, b, a) : c.op(ctx, a, b);
            ASSERT_EQ(y.shape(), out_shape) << c.name;
            const std::vector<float> yv = y.to_vector<float>();
            for (int64_t i = 0; i < out_shape.numel(); ++i) {
              const double x1 = av[broadcast_index(i, out_shape, sa)], x2 = bv[broadcast_index(i, out_shape, sb)];
              const float want = static_cast<float>(swap ? c.ref(x2, x1) : c.ref(x1, x2));
              ASSERT_EQ(yv[i], want) << c.name << " " << sa.str() << " " << layout_name(la) << " with " << sb.str()
                                     << " " << layout_name(lb) << (swap ? " swapped" : "") << " at " << i;
            }
          }
        }
      }
    }
  }
}

TEST_F(OpsTest, AddInPlace) {
  // Broadcast b into a contiguous a.
  Tensor a = random_tensor({2, 3, 4, 5}, 200);
  const Tensor bias = random_tensor({1, 3, 1, 1}, 201);
  const Tensor expected = ops::add(ctx, Tensor::from_vector(a.to_vector<float>(), a.shape()), bias);
  const void* storage = a.raw();
  ops::add_(ctx, a, bias);
  EXPECT_EQ(a.raw(), storage);
  expect_same(a, expected, "add_ broadcast");

  // A strided a: only its elements change.
  Tensor base = random_tensor({4, 9}, 202);
  const std::vector<float> orig = base.to_vector<float>();
  Tensor view = base.transpose(0, 1).slice(0, 0, 9, 2);  // [5, 4]: every other column, transposed
  const Tensor row = random_tensor({4}, 203);
  const std::vector<float> rv = row.to_vector<float>();
  ops::add_(ctx, view, row);
  const std::vector<float> after = base.to_vector<float>();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 9; ++j)
      EXPECT_EQ(after[i * 9 + j], j % 2 == 0 ? orig[i * 9 + j] + rv[i] : orig[i * 9 + j]) << i << "," << j;

  // b a shifted view of a's own storage: b is read before a is written.
  Tensor t = random_tensor({100}, 204);
  const std::vector<float> tv = t.to_vector<float>();
  Tensor head = t.slice(0, 1, 100);
  ops::add_(ctx, head, t.slice(0, 0, 99));
  const std::vector<float> shifted = t.to_vector<float>();
  for (int i = 1; i < 100; ++i) EXPECT_EQ(shifted[i], tv[i] + tv[i - 1]) << i;

  // b the very same view: x += x doubles.
  Tensor d = random_tensor({33}, 205);
  const std::vector<float> dv = d.to_vector<float>();
  ops::add_(ctx, d, d);
  for (int i = 0; i < 33; ++i) EXPECT_EQ(d.to_vector<float>()[i], 2 * dv[i]);

  // The backend contract: out may alias a.
  Tensor x = random_tensor({7, 9}, 206);
  const Tensor y = random_tensor({7, 9}, 207);
  const Tensor want = ops::mul(ctx, x, y);
  ctx.backend().binary(ctx, BinaryOp::Mul, x, y, x);
  expect_same(x, want, "binary in place");
}

TEST_F(OpsTest, ElementwiseOnEmptyTensors) {
  const Tensor e = ops::zeros(ctx, {0, 3});
  EXPECT_EQ(ops::relu(ctx, e).shape(), Shape({0, 3}));
  EXPECT_EQ(ops::gelu(ctx, e).shape(), Shape({0, 3}));
  EXPECT_EQ(ops::add(ctx, e, random_tensor({3}, 1)).shape(), Shape({0, 3}));
  EXPECT_EQ(ops::mul(ctx, e, random_tensor({1, 3}, 2)).shape(), Shape({0, 3}));
  EXPECT_EQ(ops::sub(ctx, random_tensor({4, 1, 3}, 3), e).shape(), Shape({4, 0, 3}));
  Tensor m = ops::zeros(ctx, {2, 0});
  ops::silu_(ctx, m);
  ops::add_(ctx, m, random_tensor({1}, 4));
  EXPECT_EQ(m.numel(), 0);
}

TEST_F(OpsTest, ElementwiseErrors) {
  const Tensor a = random_tensor({2, 3}, 1), b = random_tensor({4}, 2);
  try {
    ops::add(ctx, a, b);
    FAIL() << "add of [2, 3] and [4] did not throw";
  } catch (const Exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("add"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4]"), std::string::npos) << msg;
  }
  EXPECT_THROW(ops::mul(ctx, random_tensor({2, 3, 4}, 3), random_tensor({3, 3, 1}, 4)), Exception);
  EXPECT_THROW(ops::maximum(ctx, a, random_tensor({3, 2}, 5)), Exception);
  const Tensor ints = Tensor::from_vector(std::vector<int32_t>{1, 2, 3}, {3});
  EXPECT_THROW(ops::relu(ctx, ints), Exception);
  EXPECT_THROW(ops::add(ctx, ints, ints), Exception);
  EXPECT_THROW(ops::silu(ctx, Tensor()), Exception);
  EXPECT_THROW(ops::add(ctx, a, Tensor()), Exception);
  // add_ cannot grow a: b must broadcast to a's own shape.
  Tensor small = random_tensor({3}, 6);
  EXPECT_THROW(ops::add_(ctx, small, a), Exception);
  // Read-only storage (a mapped weight) is never written.
  Tensor weight = testing::read_only_tensor({1, 1, 1, 1});
  EXPECT_THROW(ops::add_(ctx, weight, random_tensor({4}, 7)), Exception);
  EXPECT_THROW(ops::relu_(ctx, weight), Exception);
  EXPECT_EQ(weight.to_vector<float>()[0], 1.0f);
}

}  // namespace
}  // namespace easel
