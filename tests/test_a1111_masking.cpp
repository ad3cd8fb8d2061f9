// The pure helpers of A1111's "Inpaint area: Only masked" (modules/masking.py get_crop_region_v2,
// expand_crop_region). Expected values are A1111's functions run on the same input (the copies in
// tools/refgen/sd_pipeline.py); the whole pipeline is checked on sd_pipeline_tiny.
#include <gtest/gtest.h>

#include "pipelines/a1111_masking.h"

namespace easel {
namespace {

Image mask_48x32() {
  Image m{48, 32, 1, std::vector<uint8_t>(48 * 32, 0), {}};
  for (int y = 5; y < 9; ++y)
    for (int x = 30; x < 47; ++x) m.pixels[size_t(y * 48 + x)] = 200;  // any non-zero value counts
  return m;
}

TEST(A1111Masking, CropRegionIsTheBoundingBoxGrownByThePaddingAndClipped) {
  const Image m = mask_48x32();
  EXPECT_EQ(mask_crop_region(m, 0), (CropRegion{30, 5, 47, 9}));
  EXPECT_EQ(mask_crop_region(m, 3), (CropRegion{27, 2, 48, 12}));
  EXPECT_EQ(mask_crop_region(m, 100), (CropRegion{0, 0, 48, 32}));
  const Image blank{48, 32, 1, std::vector<uint8_t>(48 * 32, 0), {}};
  EXPECT_FALSE(mask_crop_region(blank, 8).has_value());  // A1111 falls back to plain img2img
}

TEST(A1111Masking, ExpandCropRegionMatchesA1111) {
  struct Case {
    CropRegion in;
    int pw, ph;
    CropRegion out;
  };
  const Case cases[] = {
      {{10, 4, 40, 10}, 32, 32, {10, 0, 40, 30}},  // too wide: grow the height, centred, clipped at the top
      {{0, 20, 30, 30}, 16, 16, {0, 2, 30, 32}},   // grown past the bottom: shifted back up
      {{40, 0, 48, 4}, 8, 8, {40, 0, 48, 8}},      // in a corner
      {{30, 1, 47, 9}, 24, 24, {30, 0, 47, 17}},   // odd growth: the extra pixel goes after
      {{3, 3, 10, 8}, 48, 32, {3, 3, 10, 8}},      // growth below one pixel: unchanged (int() truncates)
      {{10, 4, 20, 30}, 64, 32, {0, 4, 48, 30}},   // the image is too narrow for the ratio: clipped to it
      {{2, 2, 46, 30}, 8, 64, {2, 0, 46, 32}},     // too short for the ratio: clipped to it
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << c.in.x1 << "," << c.in.y1 << "," << c.in.x2 << "," << c.in.y2 << " for "
                                    << c.pw << "x" << c.ph);
    EXPECT_EQ(expand_crop_region(c.in, c.pw, c.ph, 48, 32), c.out);
  }
}

}  // namespace
}  // namespace easel
