// io/image and io/image_tensor: round trips through every format, the PNG variants our encoder never
// writes (built by hand in image_test_util.h), text chunks, file writing, the real photos of set
// taef2_real, and the exact float <-> uint8 rules of the reference. Hostile input is in
// test_image_parser.cpp.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "image_test_util.h"
#include "io/image.h"
#include "io/image_tensor.h"
#include "io/safetensors.h"
#include "test_data.h"

namespace easel {
namespace {

using testing::build_png;
using testing::bytes_of;
using testing::PngSpec;

Image decode_ok(std::span<const uint8_t> bytes, const std::string& name = "test") {
  auto r = decode_image(bytes, name);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return r.ok() ? std::move(r).value() : Image{};
}

std::vector<uint8_t> encode_ok(const Image& im, ImageFormat f, int quality = 95) {
  auto r = encode_image(im, f, quality);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return r.ok() ? std::move(r).value() : std::vector<uint8_t>{};
}

std::filesystem::path images_dir() { return testing::data_root() / "images"; }

// ---- round trips ----

TEST(Image, PngRoundTripIsExact) {
  for (int channels : {3, 4})
    for (auto [w, h] : {std::pair{1, 1}, {3, 7}, {64, 48}}) {
      const Image im = testing::noise_image(w, h, channels, uint32_t(w * 31 + h + channels));
      const Image back = decode_ok(encode_ok(im, ImageFormat::Png));
      EXPECT_EQ(back.width, w);
      EXPECT_EQ(back.height, h);
      EXPECT_EQ(back.channels, channels);
      EXPECT_EQ(back.pixels, im.pixels) << w << "x" << h << "x" << channels;
    }
}

TEST(Image, WebpLosslessRoundTripIsExact) {
  for (int channels : {3, 4})
    for (auto [w, h] : {std::pair{1, 1}, {3, 7}, {64, 48}}) {
      const Image im = testing::noise_image(w, h, channels, uint32_t(w * 17 + h + channels));
      const auto bytes = encode_ok(im, ImageFormat::Webp, 100);
      const Image back = decode_ok(bytes);
      EXPECT_EQ(back.channels, channels);
      EXPECT_EQ(back.pixels, im.pixels) << w << "x" << h << "x" << channels;  // even under alpha = 0
    }
}

TEST(Image, WebpLossyKeepsSizeAndAlpha) {
  const Image im = testing::smooth_image(40, 30, 4);
  const Image back = decode_ok(encode_ok(im, ImageFormat::Webp, 90));
  ASSERT_EQ(back.channels, 4);
  EXPECT_EQ(back.width, 40);
  EXPECT_EQ(back.height, 30);
  EXPECT_GT(testing::psnr(to_rgb(im), to_rgb(back)), 30.0);
  for (size_t i = 0; i < im.pixels.size(); i += 4) EXPECT_NEAR(back.pixels[i + 3], im.pixels[i + 3], 2);
}

TEST(Image, JpegRoundTripAtQuality95) {
  for (int channels : {3, 4})
    for (auto [w, h] : {std::pair{1, 1}, {3, 7}, {64, 48}}) {
      const Image im = testing::smooth_image(w, h, channels);
      const Image back = decode_ok(encode_ok(im, ImageFormat::Jpeg, 95));
      EXPECT_EQ(back.width, w);
      EXPECT_EQ(back.height, h);
      EXPECT_EQ(back.channels, 3);  // JPEG has no alpha
      EXPECT_GT(testing::psnr(to_rgb(im), back), 35.0) << w << "x" << h << "x" << channels;
    }
}

TEST(Image, QualityChangesJpegSize) {
  const Image im = testing::smooth_image(64, 64, 3);
  EXPECT_LT(encode_ok(im, ImageFormat::Jpeg, 30).size(), encode_ok(im, ImageFormat::Jpeg, 95).size());
  EXPECT_FALSE(encode_ok(im, ImageFormat::Jpeg, -5).empty());  // clamped, not an error
}

TEST(Image, EncodeRejectsInconsistentImages) {
  Image im = testing::smooth_image(4, 4, 3);
  im.pixels.pop_back();
  EXPECT_FALSE(encode_image(im, ImageFormat::Png).ok());
  EXPECT_FALSE(encode_image(Image{}, ImageFormat::Png).ok());
  Image gray{2, 2, 1, std::vector<uint8_t>(4), {}};
  auto r = encode_image(gray, ImageFormat::Webp);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("channels"), std::string::npos) << r.error().message();
  Image wide{20000, 1, 3, std::vector<uint8_t>(60000), {}};
  EXPECT_FALSE(encode_image(wide, ImageFormat::Webp).ok());  // WebP sides stop at 16383
}

// ---- text chunks ----

TEST(Image, PngTextSurvivesWriteAndRead) {
  Image im = testing::noise_image(5, 4, 3, 7);
  const std::string long_value(200000, 'x');
  im.text = {{"parameters", "a cat, masterpiece\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1"},
             {"Comment", "caf\xc3\xa9 \xc2\xb1 1"},                               // Latin-1 range: tEXt
             {"parameters", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x9c\x93 \xf0\x9f\x90\xb1"},  // 日本語 ✓ 🐱: iTXt
             {"long", long_value},
             {"empty", ""}};
  const auto bytes = encode_ok(im, ImageFormat::Png);
  const Image back = decode_ok(bytes);
  EXPECT_EQ(back.text, im.text);
  EXPECT_EQ(back.pixels, im.pixels);
  const auto types = testing::png_chunk_types(bytes);
  std::vector<std::string> text_types;
  for (const auto& t : types)
    if (t == "tEXt" || t == "iTXt" || t == "zTXt") text_types.push_back(t);
  EXPECT_EQ(text_types, (std::vector<std::string>{"tEXt", "tEXt", "iTXt", "tEXt", "tEXt"}));
}

TEST(Image, PngTextRejectsBadKeywordsAndValues) {
  Image im = testing::noise_image(2, 2, 3, 1);
  for (const std::string& key : {std::string(""), std::string(80, 'k'), std::string(" lead"), std::string("a\xe2\x9c\x93")}) {
    im.text = {{key, "v"}};
    EXPECT_FALSE(encode_image(im, ImageFormat::Png).ok()) << key;
  }
  im.text = {{"k", std::string("a\0b", 3)}};
  EXPECT_FALSE(encode_image(im, ImageFormat::Png).ok());
  im.text = {{"k", "\xff\xfe not utf-8"}};
  EXPECT_FALSE(encode_image(im, ImageFormat::Png).ok());
  im.text = {{"k", "fine"}};
  EXPECT_TRUE(encode_image(im, ImageFormat::Png).ok());
}

TEST(Image, PngTextChunksOfEveryKindInFileOrder) {
  PngSpec s{.width = 2, .height = 1, .samples = {1, 2, 3, 4, 5, 6}};
  s.before_idat.push_back({"tEXt", bytes_of(std::string("Title\0caf\xe9", 10))});  // Latin-1 é
  std::vector<uint8_t> ztxt = bytes_of(std::string("Note\0\0", 6));
  const auto z = testing::zlib_stored(bytes_of("na\xefve"));  // Latin-1 ï, deflated
  ztxt.insert(ztxt.end(), z.begin(), z.end());
  s.before_idat.push_back({"zTXt", ztxt});
  s.after_idat.push_back({"iTXt", bytes_of(std::string("parameters\0\0\0\0\0\xe2\x9c\x93 after", 24))});
  const Image im = decode_ok(build_png(s));
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"Title", "caf\xc3\xa9"}, {"Note", "na\xc3\xafve"}, {"parameters", "\xe2\x9c\x93 after"}};
  EXPECT_EQ(im.text, expected);
}

// ---- PNG variants: decoded to 8-bit RGB(A), then re-encoded losslessly ----

struct Variant {
  std::string what;
  PngSpec spec;
  int channels;
  std::vector<uint8_t> expected;  // decoded pixels
};

std::vector<Variant> png_variants() {
  std::vector<Variant> v;
  {  // gray 8-bit, odd size
    PngSpec s{.width = 5, .height = 3, .depth = 8, .color_type = 0, .samples_per_pixel = 1};
    std::vector<uint8_t> e;
    for (int i = 0; i < 15; ++i) s.samples.push_back(uint16_t(i * 17)), e.insert(e.end(), 3, uint8_t(i * 17));
    v.push_back({"gray8", s, 3, e});
  }
  {  // gray 1-bit, width not a multiple of 8
    PngSpec s{.width = 10, .height = 2, .depth = 1, .color_type = 0, .samples_per_pixel = 1};
    std::vector<uint8_t> e;
    for (int i = 0; i < 20; ++i) s.samples.push_back(uint16_t(i % 3 == 0)), e.insert(e.end(), 3, i % 3 == 0 ? 255 : 0);
    v.push_back({"gray1", s, 3, e});
  }
  {  // gray 4-bit: v * 17
    PngSpec s{.width = 7, .height = 2, .depth = 4, .color_type = 0, .samples_per_pixel = 1};
    std::vector<uint8_t> e;
    for (int i = 0; i < 14; ++i) s.samples.push_back(uint16_t(i)), e.insert(e.end(), 3, uint8_t(i * 17));
    v.push_back({"gray4", s, 3, e});
  }
  {  // gray + alpha
    PngSpec s{.width = 3, .height = 2, .depth = 8, .color_type = 4, .samples_per_pixel = 2};
    std::vector<uint8_t> e;
    for (int i = 0; i < 6; ++i) {
      s.samples.insert(s.samples.end(), {uint16_t(40 * i), uint16_t(255 - 30 * i)});
      e.insert(e.end(), {uint8_t(40 * i), uint8_t(40 * i), uint8_t(40 * i), uint8_t(255 - 30 * i)});
    }
    v.push_back({"gray_alpha", s, 4, e});
  }
  {  // gray with a transparent value (tRNS) -> RGBA
    PngSpec s{.width = 4, .height = 1, .depth = 8, .color_type = 0, .samples_per_pixel = 1, .samples = {0x10, 0x40, 0x80, 0x40}};
    s.before_idat.push_back({"tRNS", {0x00, 0x40}});
    std::vector<uint8_t> e = {0x10, 0x10, 0x10, 255, 0x40, 0x40, 0x40, 0, 0x80, 0x80, 0x80, 255, 0x40, 0x40, 0x40, 0};
    v.push_back({"gray_trns", s, 4, e});
  }
  // palette, 4-bit, with and without tRNS
  std::vector<uint8_t> plte;
  for (int i = 0; i < 16; ++i) plte.insert(plte.end(), {uint8_t(i * 16), uint8_t(255 - i * 8), uint8_t(i * i)});
  for (bool trns : {false, true}) {
    PngSpec s{.width = 7, .height = 5, .depth = 4, .color_type = 3, .samples_per_pixel = 1};
    s.before_idat.push_back({"PLTE", plte});
    if (trns) s.before_idat.push_back({"tRNS", {0, 128}});  // entries 0 and 1; the rest opaque
    std::vector<uint8_t> e;
    for (int i = 0; i < 35; ++i) {
      const int idx = (i * 5) % 16;
      s.samples.push_back(uint16_t(idx));
      e.insert(e.end(), plte.begin() + idx * 3, plte.begin() + idx * 3 + 3);
      if (trns) e.push_back(idx == 0 ? 0 : idx == 1 ? 128 : 255);
    }
    v.push_back({trns ? "palette4_trns" : "palette4", s, trns ? 4 : 3, e});
  }
  // 16-bit RGB, RGBA and gray: the high byte, as PIL
  for (auto [ct, spp] : {std::pair{2, 3}, {6, 4}, {0, 1}}) {
    PngSpec s{.width = 3, .height = 2, .depth = 16, .color_type = ct, .samples_per_pixel = spp};
    std::vector<uint8_t> e;
    for (int i = 0; i < 6 * spp; ++i) s.samples.push_back(uint16_t(i * 2749 + 0x7f));
    for (int p = 0; p < 6; ++p)
      for (int c = 0; c < (spp == 1 ? 3 : spp); ++c) e.push_back(uint8_t(s.samples[p * spp + (spp == 1 ? 0 : c)] >> 8));
    v.push_back({"rgb16_ct" + std::to_string(ct), s, spp == 4 ? 4 : 3, e});
  }
  // interlaced (Adam7): same pixels as the plain file
  {
    PngSpec s{.width = 9, .height = 11, .depth = 8, .color_type = 2, .interlace = 1, .samples_per_pixel = 3};
    std::vector<uint8_t> e;
    for (int i = 0; i < 9 * 11 * 3; ++i) s.samples.push_back(uint16_t((i * 37) & 255)), e.push_back(uint8_t((i * 37) & 255));
    v.push_back({"interlaced_rgb", s, 3, e});
  }
  {
    PngSpec s{.width = 13, .height = 6, .depth = 2, .color_type = 3, .interlace = 1, .samples_per_pixel = 1};
    s.before_idat.push_back({"PLTE", {255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9}});
    std::vector<uint8_t> e;
    for (int i = 0; i < 78; ++i) {
      s.samples.push_back(uint16_t(i % 4));
      const uint8_t rgb[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {9, 9, 9}};
      e.insert(e.end(), rgb[i % 4], rgb[i % 4] + 3);
    }
    v.push_back({"interlaced_palette2", s, 3, e});
  }
  {  // 1x1 interlaced: only the first Adam7 pass has a pixel
    PngSpec s{.width = 1, .height = 1, .depth = 8, .color_type = 6, .interlace = 1, .samples_per_pixel = 4, .samples = {1, 2, 3, 4}};
    v.push_back({"interlaced_1x1", s, 4, {1, 2, 3, 4}});
  }
  return v;
}

TEST(Image, PngVariantsDecodeTo8BitRgbOrRgba) {
  for (const Variant& v : png_variants()) {
    SCOPED_TRACE(v.what);
    const Image im = decode_ok(build_png(v.spec), v.what);
    EXPECT_EQ(im.width, v.spec.width);
    EXPECT_EQ(im.height, v.spec.height);
    EXPECT_EQ(im.channels, v.channels);
    EXPECT_EQ(im.pixels, v.expected);
    // What we decoded encodes and decodes back unchanged, in both lossless formats.
    for (ImageFormat f : {ImageFormat::Png, ImageFormat::Webp}) {
      const Image back = decode_ok(encode_ok(im, f, 100));
      EXPECT_EQ(back.channels, im.channels);
      EXPECT_EQ(back.pixels, im.pixels) << image_format_name(f);
    }
  }
}

// ---- JPEG variants (tiny fixtures in tests/data/images, see its README) ----

TEST(Image, JpegGrayscaleBecomesRgb) {
  const Image im = decode_ok(testing::read_bytes(images_dir() / "gray_16x8.jpg"));
  ASSERT_EQ(im.channels, 3);
  ASSERT_EQ(im.width, 16);
  ASSERT_EQ(im.height, 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 16; ++x) {
      const uint8_t* p = &im.pixels[(size_t(y) * 16 + x) * 3];
      EXPECT_EQ(p[0], p[1]);
      EXPECT_EQ(p[1], p[2]);
      EXPECT_NEAR(p[0], x * 16 + 8, 3);
    }
}

TEST(Image, JpegAdobeCmykBecomesRgb) {
  const Image im = decode_ok(testing::read_bytes(images_dir() / "cmyk_adobe_16x8.jpg"));
  ASSERT_EQ(im.channels, 3);
  ASSERT_EQ(im.width, 16);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 16; ++x) {
      const uint8_t* p = &im.pixels[(size_t(y) * 16 + x) * 3];
      const int r = x < 8 ? 255 : 0, b = x < 8 ? 0 : 255;  // left red, right blue
      EXPECT_NEAR(p[0], r, 4);
      EXPECT_NEAR(p[1], 0, 4);
      EXPECT_NEAR(p[2], b, 4);
    }
}

TEST(Image, JpegProgressiveDecodes) {
  const Image im = decode_ok(testing::read_bytes(images_dir() / "progressive_24x16.jpg"));
  ASSERT_EQ(im.width, 24);
  ASSERT_EQ(im.height, 16);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 24; ++x) {
      const uint8_t* p = &im.pixels[(size_t(y) * 24 + x) * 3];
      EXPECT_NEAR(p[0], x * 10, 4);
      EXPECT_NEAR(p[1], y * 15, 4);
      EXPECT_NEAR(p[2], 128, 4);
    }
}

// ---- the real photos of set taef2_real ----

TEST(Image, RealPhotosDecode) {
  const auto dir = testing::set_dir("taef2_real");
  int decoded = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".png") continue;
    SCOPED_TRACE(entry.path().string());
    auto im = read_image(entry.path());
    ASSERT_TRUE(im.ok()) << im.error().message();
    EXPECT_GT(im->width, 0);
    EXPECT_EQ(im->pixels.size(), size_t(im->width) * im->height * im->channels);
    // A photo survives JPEG at quality 95 well above 35 dB.
    const Image rgb = to_rgb(*im);
    EXPECT_GT(testing::psnr(rgb, decode_ok(encode_ok(rgb, ImageFormat::Jpeg, 95))), 35.0);
    ++decoded;
  }
  EXPECT_GT(decoded, 0) << "no PNG in " << dir;
}

// The set's tensors: `<case>.image` = torchvision to_tensor(<case>.png), and `<case>.decoded.png`
// = `<case>.decoded` clamped to [0, 1] and rounded half to even (see image_tensor.h). Both must
// match bit for bit; truncating instead would miss about half of the bytes.
TEST(ImageTensor, MatchesTheReferenceOnRealPhotos) {
  const auto dir = testing::set_dir("taef2_real");
  std::ifstream info_file(dir / "info.json");
  ASSERT_TRUE(info_file.good());
  const auto info = nlohmann::json::parse(info_file);
  auto cases = SafetensorsFile::open(dir / "cases.safetensors");
  ASSERT_TRUE(cases.ok()) << cases.error().message();
  int checked = 0;
  for (const auto& [name, meta] : info.items()) {
    SCOPED_TRACE(name);
    auto photo = read_image(dir / (name + ".png"));
    ASSERT_TRUE(photo.ok()) << photo.error().message();
    EXPECT_EQ(photo->width, meta["resized_to_wh"][0].get<int>());
    EXPECT_EQ(photo->height, meta["resized_to_wh"][1].get<int>());
    const Tensor t = image_to_tensor(*photo);
    auto expected_input = cases->get(name + ".image");
    ASSERT_TRUE(expected_input.ok()) << expected_input.error().message();
    EXPECT_EQ(testing::max_abs_diff(t, *expected_input), 0.0f);

    auto decoded = cases->get(name + ".decoded");
    ASSERT_TRUE(decoded.ok()) << decoded.error().message();
    auto ours = tensor_to_image(*decoded);
    ASSERT_TRUE(ours.ok()) << ours.error().message();
    auto reference = read_image(dir / (name + ".decoded.png"));
    ASSERT_TRUE(reference.ok()) << reference.error().message();
    ASSERT_EQ(ours->channels, reference->channels);
    size_t differing = 0;
    for (size_t i = 0; i < ours->pixels.size(); ++i) differing += ours->pixels[i] != reference->pixels[i];
    EXPECT_EQ(differing, 0u) << "of " << ours->pixels.size() << " bytes";
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// ---- image <-> tensor rules ----

TEST(ImageTensor, ImageToTensorIsPlanarDivBy255) {
  Image im{2, 1, 4, {0, 128, 255, 7, 10, 20, 30, 40}, {}};
  const Tensor t = image_to_tensor(im);
  EXPECT_EQ(t.shape(), Shape({1, 3, 1, 2}));
  const auto v = t.to_vector<float>();
  const std::vector<float> expected = {0.0f, 10 / 255.0f, 128 / 255.0f, 20 / 255.0f, 1.0f, 30 / 255.0f};
  EXPECT_EQ(v, expected);  // alpha dropped, channel planes
}

TEST(ImageTensor, TensorToImageClampsThenRoundsHalfToEven) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // One row of 10 pixels; channel 0 carries the interesting values. 0x1.414142p-7f * 255 is
  // exactly 2.5 in f32 and 0x1.c1c1c2p-7f * 255 exactly 3.5: ties go to the even neighbour.
  std::vector<float> values = {-0.5f, 0.0f, 0.5f, 0.999f, 1.0f, 1.5f, nan, 0.2f, 0x1.414142p-7f, 0x1.c1c1c2p-7f};
  values.resize(30, 0.25f);
  auto im = tensor_to_image(Tensor::from_vector(values, {3, 1, 10}));
  ASSERT_TRUE(im.ok()) << im.error().message();
  ASSERT_EQ(im->channels, 3);
  const std::vector<int> expected = {0, 0, 128, 255, 255, 255, 0, 51, 2, 4};  // 127.5 -> 128, 254.7 -> 255
  for (int x = 0; x < 10; ++x) EXPECT_EQ(im->pixels[size_t(x) * 3], expected[size_t(x)]) << x;
  EXPECT_EQ(im->pixels[1], 64);  // 0.25 * 255 = 63.75
}

TEST(ImageTensor, TensorToImageTakesAnyStridesAndRejectsBadShapes) {
  const Image im = testing::noise_image(5, 3, 3, 4);
  const Tensor t = image_to_tensor(im);
  auto back = tensor_to_image(t);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->pixels, im.pixels);  // x / 255 * 255 comes back to x for every byte
  // [1, H, W, 3] viewed as [1, 3, H, W]: non-contiguous input.
  const Tensor nhwc = Tensor::from_vector(t.permute({0, 2, 3, 1}).to_vector<float>(), {1, 3, 5, 3});
  auto strided = tensor_to_image(nhwc.permute({0, 3, 1, 2}));
  ASSERT_TRUE(strided.ok());
  EXPECT_EQ(strided->pixels, im.pixels);

  EXPECT_FALSE(tensor_to_image(Tensor()).ok());
  EXPECT_FALSE(tensor_to_image(Tensor::from_vector(std::vector<float>(10), {1, 2, 5})).ok());
  EXPECT_FALSE(tensor_to_image(Tensor::from_vector(std::vector<float>(30), {2, 3, 1, 5})).ok());
  EXPECT_FALSE(tensor_to_image(Tensor::from_vector(std::vector<int32_t>(15), {3, 1, 5})).ok());
  auto rgba = tensor_to_image(Tensor::from_vector(std::vector<float>(8, 1.0f), {1, 4, 1, 2}));
  ASSERT_TRUE(rgba.ok());
  EXPECT_EQ(rgba->channels, 4);
}

// ---- files ----

class ImageFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("easel_image_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  std::filesystem::path dir_;
};

TEST_F(ImageFiles, WriteThenReadEveryFormat) {
  Image im = testing::smooth_image(33, 17, 4);
  im.text = {{"parameters", "steps 20"}};
  for (const std::string name : {"a.png", "b.JPG", "c.jpeg", "d.webp"}) {
    ASSERT_TRUE(write_image(dir_ / name, im).ok()) << name;
    auto back = read_image(dir_ / name);
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(back->width, 33);
    EXPECT_GT(testing::psnr(to_rgb(im), to_rgb(*back)), 30.0) << name;
    if (name == "a.png") {
      EXPECT_EQ(back->text, im.text);
    }
  }
  EXPECT_EQ(listing(), (std::vector<std::string>{"a.png", "b.JPG", "c.jpeg", "d.webp"}));  // no temporaries left
}

TEST_F(ImageFiles, FormatComesFromBytesNotName) {
  const Image im = testing::noise_image(6, 5, 3, 9);
  ASSERT_TRUE(write_image(dir_ / "really_a_png.jpg", im, ImageFormat::Png).ok());
  auto back = read_image(dir_ / "really_a_png.jpg");
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->pixels, im.pixels);  // decoded as PNG: exact
}

TEST_F(ImageFiles, UnknownExtensionIsAClearError) {
  auto s = write_image(dir_ / "out.bmp", testing::noise_image(2, 2, 3, 1));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find(".bmp"), std::string::npos) << s.error().message();
  EXPECT_TRUE(listing().empty());
  EXPECT_EQ(image_format_from_extension("x.WebP"), ImageFormat::Webp);
  EXPECT_EQ(image_format_from_extension("noext"), std::nullopt);
}

TEST_F(ImageFiles, FailedWriteLeavesTheOldFileAlone) {
  const Image good = testing::noise_image(4, 4, 3, 2);
  ASSERT_TRUE(write_image(dir_ / "out.png", good).ok());
  const auto before = testing::read_bytes(dir_ / "out.png");
  Image bad = good;
  bad.pixels.resize(5);
  auto s = write_image(dir_ / "out.png", bad);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message().rfind((dir_ / "out.png").string(), 0), 0u) << s.error().message();
  EXPECT_EQ(testing::read_bytes(dir_ / "out.png"), before);
  EXPECT_EQ(listing(), std::vector<std::string>{"out.png"});
  EXPECT_FALSE(write_image(dir_ / "missing_dir" / "x.png", good).ok());
  EXPECT_EQ(listing(), std::vector<std::string>{"out.png"});
}

TEST_F(ImageFiles, ReadErrorsNameTheFile) {
  auto missing = read_image(dir_ / "nope.png");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("nope.png"), std::string::npos);
  auto directory = read_image(dir_);
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.error().message().find("directory"), std::string::npos) << directory.error().message();
  std::ofstream(dir_ / "photo.png") << "<html><body>404</body></html>";
  auto html = read_image(dir_ / "photo.png");
  ASSERT_FALSE(html.ok());
  EXPECT_EQ(html.error().message(), (dir_ / "photo.png").string() + ": not a PNG, JPEG or WebP file (starts with 3c 68 74 6d)");
  ImageLimits tiny_files;
  tiny_files.max_file_bytes = 10;
  EXPECT_FALSE(read_image(dir_ / "photo.png", tiny_files).ok());
}

TEST(Image, ToRgbDropsAlphaAndExpandsGray) {
  const Image rgba{2, 1, 4, {1, 2, 3, 4, 5, 6, 7, 8}, {{"k", "v"}}};
  const Image rgb = to_rgb(rgba);
  EXPECT_EQ(rgb.channels, 3);
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{1, 2, 3, 5, 6, 7}));
  EXPECT_EQ(rgb.text, rgba.text);
  EXPECT_EQ(to_rgb(Image{2, 1, 2, {9, 100, 7, 200}, {}}).pixels, (std::vector<uint8_t>{9, 9, 9, 7, 7, 7}));
  EXPECT_EQ(to_rgb(Image{1, 1, 1, {5}, {}}).pixels, (std::vector<uint8_t>{5, 5, 5}));
  EXPECT_THROW(to_rgb(Image{2, 2, 3, {1}, {}}), Exception);
}

}  // namespace
}  // namespace easel
