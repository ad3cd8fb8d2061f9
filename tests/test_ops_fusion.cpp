// Fused ops give what the unfused sequence gives.
#include <gtest/gtest.h>

#include "backends/runtime.h"
#include "ops/ops.h"
#include "ops_test_util.h"
#include "test_data.h"

namespace easel {
namespace {

using testing::random_tensor;

TEST(OpsFusion, Conv2dWithReluEqualsReluOfConv2d) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  struct Case {
    Shape x, w;
    int stride, pad;
  };
  // Few pixels (plain layout) and many (channel-blocked layout), bias and none.
  const Case cases[] = {{{1, 5, 7, 9}, {6, 5, 3, 3}, 1, 1}, {{2, 16, 33, 31}, {8, 16, 3, 3}, 2, 1}, {{1, 8, 40, 40}, {8, 8, 1, 1}, 1, 0}};
  uint32_t seed = 1;
  for (const Case& c : cases)
    for (bool with_bias : {true, false}) {
      // Inputs in every layout: the fused path reorders strided views too.
      Tensor x = random_tensor(c.x, seed, testing::kLayouts[seed % 3]);
      ++seed;
      Tensor w = random_tensor(c.w, seed++);
      Tensor b = with_bias ? random_tensor({c.w[0]}, seed++) : Tensor();
      Conv2dParams p;
      p.stride_h = p.stride_w = c.stride;
      p.pad_h = p.pad_w = c.pad;
      Tensor unfused = ops::relu(ctx, ops::conv2d(ctx, x, w, b, p));
      p.relu = true;
      Tensor fused = ops::conv2d(ctx, x, w, b, p);
      EXPECT_EQ(testing::max_abs_diff(fused, unfused), 0.0f) << c.x.str() << " bias " << with_bias;
    }
}

}  // namespace
}  // namespace easel
