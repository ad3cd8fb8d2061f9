// Helpers shared by the golden tests: where the data lives and how to compare tensors.
// Golden tests read the data root from EASEL_TEST_DATA (default tests/data) and iterate every case
// their set lists, so they run unchanged on any other set of the same layout.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "core/tensor.h"

namespace easel::testing {

inline std::filesystem::path data_root() {
  const char* env = std::getenv("EASEL_TEST_DATA");
  return env && *env ? std::filesystem::path(env) : std::filesystem::path("tests/data");
}

// The folder of one set; the test fails (not skips) when it is missing.
inline std::filesystem::path set_dir(const std::string& set) {
  auto dir = data_root() / set;
  EXPECT_TRUE(std::filesystem::is_directory(dir)) << "golden set missing: " << dir;
  return dir;
}

// Largest |a - b| over two f32 tensors of the same shape (any strides).
inline float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape()) << a.describe() << " vs " << b.describe();
  if (!(a.shape() == b.shape())) return INFINITY;
  const auto va = a.to_vector<float>(), vb = b.to_vector<float>();
  float m = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const float d = std::fabs(va[i] - vb[i]);
    if (!(d <= m)) m = d;  // NaN propagates as the max
  }
  return m;
}

// max |a - b| / max |b|: the error relative to the reference tensor's scale (the golden sets'
// "<= 1e-4 relative" criterion), robust to elements near zero.
inline float max_rel_diff(const Tensor& a, const Tensor& ref) {
  const float err = max_abs_diff(a, ref);
  float scale = 0;
  for (float v : ref.to_vector<float>()) scale = std::max(scale, std::fabs(v));
  return err / std::max(scale, 1e-30f);
}

}  // namespace easel::testing
