// ImageRng: the per-image noise streams of A1111's modules/rng.py (CPU source).
#include <gtest/gtest.h>

#include "backends/runtime.h"
#include "sampling/image_rng.h"

namespace easel::sampling {
namespace {

std::vector<float> draw(uint64_t seed, size_t n, int skip = 0) {
  TorchGenerator g(seed);
  std::vector<float> v(n);
  for (int i = 0; i <= skip; ++i) g.randn(std::span<float>(v));
  return v;
}

std::vector<float> image(const Tensor& batch, int64_t i) {
  return batch.select(0, i).to_vector<float>();
}

TEST(ImageRng, EachImageHasItsOwnGenerator) {
  auto rt = Runtime::create({.threads = 1}).value();
  Context ctx = rt->context();
  ImageRng rng(SeedParams{{7, 8}, {}, 0, 0, 0, 0});
  const Tensor first = rng.next(ctx, Shape{2, 4, 3, 5}), second = rng.next(ctx, Shape{2, 4, 3, 5});
  EXPECT_EQ(first.shape(), (Shape{2, 4, 3, 5}));
  EXPECT_EQ(image(first, 0), draw(7, 60));
  EXPECT_EQ(image(first, 1), draw(8, 60));
  EXPECT_EQ(image(second, 0), draw(7, 60, 1));  // continues the same stream
  EXPECT_EQ(image(second, 1), draw(8, 60, 1));
}

TEST(ImageRng, ShapeMustMatchTheSeeds) {
  auto rt = Runtime::create({.threads = 1}).value();
  Context ctx = rt->context();
  ImageRng rng(SeedParams{{1, 2}});
  EXPECT_THROW(rng.next(ctx, Shape{3, 4, 2, 2}), Exception);
  rng.next(ctx, Shape{2, 4, 2, 2});
  EXPECT_THROW(rng.next(ctx, Shape{2, 4, 3, 2}), Exception);
}

TEST(ImageRng, EtaNoiseSeedDeltaRestartsTheStreams) {
  auto rt = Runtime::create({.threads = 1}).value();
  Context ctx = rt->context();
  ImageRng rng(SeedParams{{5}, {}, 0, 0, 0, 31337});
  EXPECT_EQ(image(rng.next(ctx, Shape{1, 4, 4, 4}), 0), draw(5, 64));
  EXPECT_EQ(image(rng.next(ctx, Shape{1, 4, 4, 4}), 0), draw(5 + 31337, 64));
}

TEST(ImageRng, SeedResizePastesTheOldNoiseCentred) {
  auto rt = Runtime::create({.threads = 1}).value();
  Context ctx = rt->context();
  // Noise drawn for 16x8 pixels (2x1 latents), pasted into 4x3 latents.
  ImageRng rng(SeedParams{{3}, {}, 0, 16, 8, 0});
  const auto got = image(rng.next(ctx, Shape{1, 1, 3, 4}), 0);
  const auto small = draw(3, 2);   // [1, 1, 2]
  auto expected = draw(3, 12);     // the image's generator also draws the full size
  expected[size_t(1 * 4 + 1)] = small[0];  // dy = (3-1)//2 = 1, dx = (4-2)//2 = 1
  expected[size_t(1 * 4 + 2)] = small[1];
  EXPECT_EQ(got, expected);
}

TEST(ImageRng, VariationSeedSlerps) {
  auto rt = Runtime::create({.threads = 1}).value();
  Context ctx = rt->context();
  ImageRng rng(SeedParams{{11}, {12}, 0.3, 0, 0, 0});
  const auto got = image(rng.next(ctx, Shape{1, 2, 3, 3}), 0);
  const auto expected = a1111_slerp(0.3f, draw(11, 18), draw(12, 18), 2, 3, 3);
  EXPECT_EQ(got, expected);
  // Strength 0 and 1 give the seed's and the subseed's noise (up to rounding).
  const auto a = a1111_slerp(0.0f, draw(11, 18), draw(12, 18), 2, 3, 3);
  const auto b = a1111_slerp(1.0f, draw(11, 18), draw(12, 18), 2, 3, 3);
  const auto na = draw(11, 18), nb = draw(12, 18);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], na[i], 1e-5);
    EXPECT_NEAR(b[i], nb[i], 1e-5);
  }
}

}  // namespace
}  // namespace easel::sampling
