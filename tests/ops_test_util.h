// Helpers for the op tests: random inputs in several memory layouts, and comparisons against
// double-precision reference loops.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/runtime.h"
#include "core/tensor.h"
#include "ops/ops.h"

namespace easel::testing {

// One Runtime per test: the default thread count of the machine, so kernels run in parallel.
class OpsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Runtime> runtime = Runtime::create().value();
  Context ctx = runtime->context();
};

inline std::vector<float> random_values(int64_t n, uint32_t seed, float lo = -3.0f, float hi = 3.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// How a test input is laid out in memory; the logical shape and values are the same either way.
enum class Layout {
  Contiguous,
  Permuted,  // stored with its dimensions reversed, viewed back through permute
  Strided,   // every other element of a wider last dimension, at an offset
};

inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Contiguous: return "contiguous";
    case Layout::Permuted: return "permuted";
    case Layout::Strided: return "strided";
  }
  return "?";
}

constexpr Layout kLayouts[] = {Layout::Contiguous, Layout::Permuted, Layout::Strided};

// An f32 tensor of `shape` with random values in [lo, hi), laid out as asked.
inline Tensor random_tensor(const Shape& shape, uint32_t seed, Layout layout = Layout::Contiguous, float lo = -3.0f,
                            float hi = 3.0f) {
  const int nd = shape.size();
  switch (layout) {
    case Layout::Contiguous:
      return Tensor::from_vector(random_values(shape.numel(), seed, lo, hi), shape);
    case Layout::Permuted: {
      Shape stored;
      std::vector<int> back;
      for (int i = nd - 1; i >= 0; --i) stored.push_back(shape[i]);
      for (int i = nd - 1; i >= 0; --i) back.push_back(i);
      Tensor t = Tensor::from_vector(random_values(stored.numel(), seed, lo, hi), stored);
      return t.permute(std::span<const int>(back));
    }
    case Layout::Strided: {
      if (nd == 0) return Tensor::from_vector(random_values(1, seed, lo, hi), shape);
      Shape stored = shape;
      stored[nd - 1] = 2 * shape[nd - 1] + 1;
      Tensor t = Tensor::from_vector(random_values(stored.numel(), seed, lo, hi), stored);
      return t.slice(nd - 1, 1, 1 + 2 * shape[nd - 1], 2);
    }
  }
  return {};
}

// t.to_vector<float>(), also for empty tensors (core's to_vector memcpys from a null pointer then).
inline std::vector<float> floats(const Tensor& t) { return t.numel() ? t.to_vector<float>() : std::vector<float>{}; }

// A 1-d f32 tensor over read-only memory, as a weight mapped from a checkpoint would be.
inline Tensor read_only_tensor(const std::vector<float>& values) {
  auto owner = std::make_shared<std::vector<float>>(values);
  auto* data = reinterpret_cast<std::byte*>(owner->data());
  const size_t bytes = values.size() * sizeof(float);
  auto storage = std::make_shared<BorrowedStorage>(owner, data, bytes, Device{}, true);
  return Tensor::from_storage(storage, 0, {static_cast<int64_t>(values.size())}, DType::F32);
}

inline std::vector<double> to_double(const Tensor& t) {
  const std::vector<float> v = t.to_vector<float>();
  return std::vector<double>(v.begin(), v.end());
}

// Distance in units in the last place of the float nearest `ref`. Below the normal range the
// unit is the subnormal spacing, which is what f32 can resolve there.
inline double ulp_error(float got, double ref) {
  if (std::isnan(ref)) return std::isnan(got) ? 0.0 : INFINITY;
  if (std::isinf(ref)) return got == ref ? 0.0 : INFINITY;
  const float r = static_cast<float>(ref);
  const float a = std::fabs(r);
  const double ulp = a < std::numeric_limits<float>::min()
                         ? std::numeric_limits<float>::denorm_min()
                         : static_cast<double>(std::nextafter(a, INFINITY) - a);
  if (std::isinf(r)) return std::fabs(got) >= std::numeric_limits<float>::max() ? 0.0 : INFINITY;
  return std::fabs(static_cast<double>(got) - ref) / ulp;
}

// |got - ref| <= abs_tol + rel_tol * |ref| elementwise, reporting the worst element.
inline void expect_close(const Tensor& got, const std::vector<double>& ref, double abs_tol, double rel_tol,
                         const std::string& what) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(ref.size())) << what;
  const std::vector<float> v = got.to_vector<float>();
  double worst = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double excess = std::fabs(v[i] - ref[i]) - (abs_tol + rel_tol * std::fabs(ref[i]));
    if (!(excess <= worst)) {  // NaN counts as a failure
      worst = std::isnan(excess) ? INFINITY : excess;
      worst_i = i;
    }
  }
  EXPECT_EQ(worst, 0.0) << what << ": element " << worst_i << " is " << v[worst_i] << ", expected " << ref[worst_i];
}

// Bitwise equality of two f32 tensors (same shape), treating NaNs as equal.
inline void expect_same(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  const std::vector<float> va = a.to_vector<float>(), vb = b.to_vector<float>();
  for (size_t i = 0; i < va.size(); ++i) {
    if (std::isnan(va[i]) && std::isnan(vb[i])) continue;
    if (std::bit_cast<uint32_t>(va[i]) != std::bit_cast<uint32_t>(vb[i])) {
      ADD_FAILURE() << what << ": element " << i << ": " << va[i] << " vs " << vb[i];
      return;
    }
  }
}

// C-order index -> offset in a tensor of `shape` broadcast from `src_shape` (numpy rules).
inline int64_t broadcast_index(int64_t i, const Shape& shape, const Shape& src_shape) {
  int64_t off = 0, stride = 1;
  for (int d = shape.size() - 1, s = src_shape.size() - 1; d >= 0; --d, --s) {
    const int64_t idx = i % shape[d];
    i /= shape[d];
    if (s >= 0) {
      if (src_shape[s] != 1) off += idx * stride;
      stride *= src_shape[s];
    }
  }
  return off;
}

}  // namespace easel::testing
