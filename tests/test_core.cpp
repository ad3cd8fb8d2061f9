#include <gtest/gtest.h>

#include <optional>

#include "core/allocator.h"
#include "core/half.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace easel {
namespace {

TEST(Tensor, ViewsShareStorageAndKeepShapes) {
  std::vector<float> v(24);
  for (int i = 0; i < 24; ++i) v[i] = float(i);
  Tensor t = Tensor::from_vector(v, {2, 3, 4});
  EXPECT_TRUE(t.is_contiguous());
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  auto pv = p.to_vector<float>();
  // p[k][i][j] = t[i][j][k] = i*12 + j*4 + k
  EXPECT_EQ(pv[1 * 6 + 1 * 3 + 2], 1 * 12 + 2 * 4 + 1);
  Tensor s = t.slice(2, 1, 4, 2);  // k in {1, 3}
  EXPECT_EQ(s.shape(), Shape({2, 3, 2}));
  EXPECT_EQ(s.to_vector<float>()[3], 1 * 4 + 3);
  Tensor sel = t.select(0, 1);
  EXPECT_EQ(sel.shape(), Shape({3, 4}));
  EXPECT_EQ(sel.to_vector<float>()[0], 12);
  EXPECT_EQ(t.view({6, -1}).shape(), Shape({6, 4}));
  EXPECT_THROW(p.view({24}), Exception);
  EXPECT_THROW(t.view({5, -1}), Exception);
  Tensor e = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3, 1}).expand({2, 3, 4});
  EXPECT_EQ(e.to_vector<float>()[1 * 12 + 2 * 4 + 3], 3);
  EXPECT_EQ(t.unsqueeze(1).shape(), Shape({2, 1, 3, 4}));
  EXPECT_EQ(t.flatten(1).shape(), Shape({2, 12}));
}

TEST(Tensor, CheckedAccess) {
  Tensor t = Tensor::from_vector(std::vector<float>{1, 2}, {2});
  EXPECT_THROW(t.data<int32_t>(), Exception);
  EXPECT_THROW(t.select(0, 2), Exception);
  EXPECT_THROW(t.permute({0, 0}), Exception);
  EXPECT_THROW(Tensor::from_vector(std::vector<float>{1, 2}, {3}), Exception);
}

TEST(Allocator, ReusesFreedBlocks) {
  HostAllocator alloc;
  void* first;
  {
    Tensor a = Tensor::empty(alloc, {1000}, DType::F32);
    first = a.raw();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
    EXPECT_GE(alloc.stats().in_use, 4000u);
  }
  EXPECT_EQ(alloc.stats().in_use, 0u);
  Tensor b = Tensor::empty(alloc, {999}, DType::F32);  // fits where a was
  EXPECT_EQ(b.raw(), first);
  alloc.trim();
}

// Freed neighbours merge, so a later, larger tensor reuses their memory instead of growing the arena.
TEST(Allocator, MergesFreedNeighbours) {
  HostAllocator alloc;
  auto a = std::make_optional(Tensor::empty(alloc, {1 << 20}, DType::F32));
  auto b = std::make_optional(Tensor::empty(alloc, {1 << 20}, DType::F32));
  Tensor c = Tensor::empty(alloc, {16}, DType::F32);
  void* first = a->raw();
  const size_t extent = alloc.stats().extent;
  a.reset();
  b.reset();
  EXPECT_EQ(alloc.stats().cached, size_t(8) << 20);
  Tensor big = Tensor::empty(alloc, {2 << 20}, DType::F32);  // exactly a + b
  EXPECT_EQ(big.raw(), first);
  EXPECT_EQ(alloc.stats().extent, extent);
  EXPECT_EQ(alloc.stats().cached, 0u);
  EXPECT_EQ(alloc.stats().peak_in_use, alloc.stats().in_use);
}

// trim() gives back the free range at the top; the allocator keeps working afterwards.
TEST(Allocator, TrimReturnsFreeMemory) {
  HostAllocator alloc;
  Tensor keep = Tensor::empty(alloc, {16}, DType::F32);
  {
    Tensor big = Tensor::empty(alloc, {4 << 20}, DType::F32);
    big.data<float>()[0] = 1.0f;
  }
  EXPECT_GE(alloc.stats().extent, size_t(16) << 20);
  alloc.trim();
  EXPECT_LT(alloc.stats().extent, size_t(1) << 20);
  EXPECT_EQ(alloc.stats().cached, 0u);
  Tensor again = Tensor::empty(alloc, {4 << 20}, DType::F32);
  again.data<float>()[(4 << 20) - 1] = 2.0f;
  EXPECT_EQ(alloc.stats().in_use, size_t(64 + (16 << 20)));
}

TEST(ThreadPool, CoversRangeOnceAndPropagatesErrors) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> hits(1001);
  pool.parallel_for(1001, 7, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  EXPECT_THROW(pool.parallel_for(100, 1, [&](int64_t b, int64_t) {
    if (b == 0) throw Exception("boom");
  }), Exception);
  // Nested loops run inline instead of deadlocking.
  std::atomic<int> total{0};
  pool.parallel_for(8, 1, [&](int64_t, int64_t) { pool.parallel_for(10, 1, [&](int64_t b, int64_t e) { total += int(e - b); }); });
  EXPECT_EQ(total.load(), 80);
}

TEST(Half, RoundTripsAndRounds) {
  for (uint32_t h = 0; h < 0x7c00; ++h) EXPECT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // overflows to inf
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 4096), 0x3c00);  // ties to even
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.5f)), 1.5f);
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);  // ties to even
}

}  // namespace
}  // namespace easel
