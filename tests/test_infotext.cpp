// A1111 infotext: formatting as create_infotext does and parsing as parse_generation_parameters does.
#include <gtest/gtest.h>

#include "pipelines/infotext.h"

namespace easel {
namespace {

TEST(Infotext, PythonFloatRepr) {
  EXPECT_EQ(python_float(7), "7.0");
  EXPECT_EQ(python_float(7.5), "7.5");
  EXPECT_EQ(python_float(0.75), "0.75");
  EXPECT_EQ(python_float(0.1), "0.1");
  EXPECT_EQ(python_float(-2), "-2.0");
  EXPECT_EQ(python_float(100000), "100000.0");
  EXPECT_EQ(python_float(0.0001), "0.0001");
  EXPECT_EQ(python_float(0.00001), "1e-05");
  EXPECT_EQ(python_float(1e16), "1e+16");
  EXPECT_EQ(python_float(123456789012345.6), "123456789012345.6");
  EXPECT_EQ(python_float(0), "0.0");
}

TEST(Infotext, QuoteOnlyWhatA1111Quotes) {
  EXPECT_EQ(infotext_quote("Euler a"), "Euler a");
  EXPECT_EQ(infotext_quote("a, b"), "\"a, b\"");
  EXPECT_EQ(infotext_quote("k: v"), "\"k: v\"");
  EXPECT_EQ(infotext_quote("say \"hi\", ok"), R"("say \"hi\", ok")");
  EXPECT_EQ(infotext_quote("ünï, cödé"), "\"ünï, cödé\"");  // ensure_ascii=False
}

TEST(Infotext, FormatsInA1111Layout) {
  Infotext info{"a cat, (sitting:1.2)", "blurry",
                {{"Steps", "20"}, {"Sampler", "Euler a"}, {"Schedule type", "Automatic"}, {"CFG scale", "7.0"},
                 {"Seed", "1"}, {"Size", "512x768"}, {"Model hash", "6ce0161689"}, {"Model", "v1-5-pruned-emaonly"},
                 {"Lora hashes", "a: 1, b: 2"}, {"Version", "easel 0.1.0"}}};
  EXPECT_EQ(format_infotext(info),
            "a cat, (sitting:1.2)\nNegative prompt: blurry\n"
            "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.0, Seed: 1, Size: 512x768, "
            "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: \"a: 1, b: 2\", Version: easel 0.1.0");
  info.negative_prompt.clear();
  EXPECT_EQ(format_infotext(info).find("Negative prompt"), std::string::npos);
}

TEST(Infotext, ParsesBackWhatItWrites) {
  Infotext info{"line one\nline two", "neg one\nneg two",
                {{"Steps", "4"}, {"Sampler", "DPM++ 2M"}, {"Schedule type", "Karras"}, {"CFG scale", "6.5"},
                 {"Seed", "42"}, {"Size", "64x64"}, {"Hires prompt", "x, y: z"}}};
  const Infotext back = parse_infotext(format_infotext(info));
  EXPECT_EQ(back.prompt, info.prompt);
  EXPECT_EQ(back.negative_prompt, info.negative_prompt);
  EXPECT_EQ(back.params, info.params);
  ASSERT_TRUE(back.find("Sampler"));
  EXPECT_EQ(*back.find("Sampler"), "DPM++ 2M");
}

TEST(Infotext, ParsesA1111Quirks) {
  // Fewer than three pairs on the last line: it is part of the prompt.
  const Infotext short_tail = parse_infotext("a cat\nSteps: 20, Seed: 1");
  EXPECT_EQ(short_tail.prompt, "a cat\nSteps: 20, Seed: 1");
  EXPECT_TRUE(short_tail.params.empty());
  // Only parameters, no prompt.
  const Infotext no_prompt = parse_infotext("Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 5");
  EXPECT_EQ(no_prompt.prompt, "");
  EXPECT_EQ(no_prompt.params.size(), 4u);
  // Surrounding whitespace and an empty value.
  const Infotext spaced = parse_infotext("  p  \nSteps: 1, Sampler: Euler, Model: , Seed: 3\n");
  EXPECT_EQ(spaced.prompt, "p");
  ASSERT_TRUE(spaced.find("Model"));
  EXPECT_EQ(*spaced.find("Model"), "");
  EXPECT_EQ(parse_infotext("").prompt, "");
}

}  // namespace
}  // namespace easel

namespace easel {
namespace {

TEST(Infotext, MakeFollowsA1111KeyOrder) {
  GenerationParams p;
  p.prompt = "a red fox";
  p.negative_prompt = "blurry, low quality";
  p.steps = 4;
  p.cfg_scale = 7;
  p.width = 512;
  p.height = 768;
  p.clip_skip = 2;
  ImageProvenance im;
  im.seed = 42;
  im.sampler = "DPM++ 2M";
  im.schedule = "Karras";
  im.model_hash = "6ce0161689";
  im.model_name = "v1-5-pruned-emaonly";
  EXPECT_EQ(format_infotext(make_infotext(p, im)),
            "a red fox\nNegative prompt: blurry, low quality\n"
            "Steps: 4, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 42, Size: 512x768, "
            "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Clip skip: 2, Version: easel 0.1.0");
  im.img2img = true;
  p.denoising_strength = 0.6;
  const Infotext i2i = make_infotext(p, im);
  ASSERT_TRUE(i2i.find("Denoising strength"));
  EXPECT_EQ(*i2i.find("Denoising strength"), "0.6");
}

}  // namespace
}  // namespace easel
