#include <gtest/gtest.h>

#include "pipelines/generation_params.h"

namespace easel {
namespace {

std::string error_of(const GenerationParams& p) {
  auto s = validate(p);
  return s.ok() ? "" : s.error().message();
}

TEST(GenerationParams, DefaultsAreValid) { EXPECT_EQ(error_of({}), ""); }

TEST(GenerationParams, ErrorsNameTheField) {
  GenerationParams p;
  p.width = 513;
  EXPECT_NE(error_of(p).find("width: 513 is not a multiple of 8"), std::string::npos);
  p = {};
  p.height = 100000;
  EXPECT_NE(error_of(p).find("height"), std::string::npos);
  p = {};
  p.steps = 0;
  EXPECT_NE(error_of(p).find("steps"), std::string::npos);
  p = {};
  p.batch_size = 1000;
  EXPECT_NE(error_of(p).find("batch_size"), std::string::npos);
  p = {};
  p.cfg_scale = -1;
  EXPECT_NE(error_of(p).find("cfg_scale"), std::string::npos);
  p = {};
  p.denoising_strength = 1.5;
  EXPECT_NE(error_of(p).find("denoising_strength"), std::string::npos);
  GenerationInputs mask_only;
  mask_only.mask = Image{8, 8, 1, std::vector<uint8_t>(64, 255), {}};
  ASSERT_FALSE(validate(mask_only).ok());
  EXPECT_NE(validate(mask_only).error().message().find("init image"), std::string::npos);
  mask_only.init_image = mask_only.mask;
  EXPECT_TRUE(validate(mask_only).ok());
}

}  // namespace
}  // namespace easel
