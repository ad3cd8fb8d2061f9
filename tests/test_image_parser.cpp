// Hostile input for the image decoders. Suites are named Parser* so that the sanitizer job runs them
// under ASan + UBSan (--gtest_filter='Parser*'): empty input, every truncation, byte flips at every
// position, random corruption with fixed seeds, random bytes behind each magic, and headers that
// claim enormous sizes. Each must give an error (or, for harmless damage, a consistent image) and
// never crash, hang or read out of bounds.
#include <gtest/gtest.h>

#include <random>

#include "image_test_util.h"
#include "io/image.h"
#include "test_data.h"

namespace easel {
namespace {

using testing::build_png;
using testing::bytes_of;
using testing::PngSpec;

// Small enough that a flipped size field cannot make a test allocate gigabytes.
ImageLimits fuzz_limits() {
  ImageLimits limits;
  limits.max_pixels = int64_t(1) << 20;
  return limits;
}

struct Sample {
  std::string name;
  std::vector<uint8_t> bytes;
};

std::vector<uint8_t> encode(const Image& im, ImageFormat f, int quality) {
  auto r = encode_image(im, f, quality);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return r.ok() ? *r : std::vector<uint8_t>{};
}

// One valid file per decoder path: PNG (plain with text, interlaced palette with text after IDAT),
// JPEG (baseline, progressive), WebP (lossless, lossy with alpha).
const std::vector<Sample>& samples() {
  static const std::vector<Sample> all = [] {
    std::vector<Sample> s;
    Image rgba = testing::noise_image(24, 16, 4, 11);
    rgba.text = {{"parameters", "a photo of a cat"}, {"note", "\xe2\x9c\x93"}};
    s.push_back({"plain.png", encode(rgba, ImageFormat::Png, 95)});

    PngSpec p{.width = 13, .height = 9, .depth = 2, .color_type = 3, .interlace = 1, .samples_per_pixel = 1};
    p.before_idat.push_back({"PLTE", {255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9}});
    p.before_idat.push_back({"tRNS", {0, 100}});
    for (int i = 0; i < 13 * 9; ++i) p.samples.push_back(uint16_t((i * 7) % 4));
    p.after_idat.push_back({"iTXt", bytes_of(std::string("k\0\0\0\0\0after", 11))});
    s.push_back({"interlaced.png", build_png(p)});

    s.push_back({"baseline.jpg", encode(testing::smooth_image(32, 24, 3), ImageFormat::Jpeg, 90)});
    s.push_back({"progressive.jpg", testing::read_bytes(testing::data_root() / "images" / "progressive_24x16.jpg")});
    s.push_back({"lossless.webp", encode(testing::noise_image(16, 12, 4, 5), ImageFormat::Webp, 100)});
    s.push_back({"lossy.webp", encode(testing::smooth_image(32, 24, 4), ImageFormat::Webp, 80)});
    return s;
  }();
  return all;
}

// An error that names the file, or an image whose fields agree with each other and the limits.
void expect_sane(const Result<Image>& r, const std::string& name, const ImageLimits& limits) {
  if (!r.ok()) {
    EXPECT_EQ(r.error().message().rfind(name + ": ", 0), 0u) << r.error().message();
    return;
  }
  EXPECT_GT(r->width, 0);
  EXPECT_GT(r->height, 0);
  EXPECT_TRUE(r->channels == 3 || r->channels == 4) << r->channels;
  EXPECT_LE(int64_t(r->width) * r->height, limits.max_pixels);
  EXPECT_EQ(r->pixels.size(), size_t(r->width) * r->height * r->channels);
}

TEST(ParserImage, SamplesAreValid) {
  for (const auto& s : samples()) {
    auto r = decode_image(s.bytes, s.name);
    EXPECT_TRUE(r.ok()) << s.name << ": " << (r.ok() ? "" : r.error().message());
  }
}

TEST(ParserImage, EmptyAndTinyInputs) {
  const std::vector<std::string> inputs = {"", "\x89", "\x89PNG\r\n\x1a\n", "\xff\xd8", "\xff\xd8\xff",
                                           "RIFF", "RIFF\0\0\0\0WEBP", "RIFF\4\0\0\0WEBPVP8 "};
  for (const auto& in : inputs) {
    const auto bytes = bytes_of(in);
    auto r = decode_image(bytes, "tiny.img");
    EXPECT_FALSE(r.ok()) << ::testing::PrintToString(in);
    expect_sane(r, "tiny.img", {});
  }
  auto empty = decode_image({}, "photo.png");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().message(), "photo.png: empty file, not an image");
}

TEST(ParserImage, EveryTruncationIsAnError) {
  for (const auto& s : samples()) {
    SCOPED_TRACE(s.name);
    for (size_t cut = 0; cut < s.bytes.size(); ++cut) {
      auto r = decode_image(std::span(s.bytes).first(cut), s.name, fuzz_limits());
      EXPECT_FALSE(r.ok()) << "cut at " << cut << " of " << s.bytes.size();
      expect_sane(r, s.name, fuzz_limits());
    }
  }
  // Past the magic, the message says what happened.
  const auto& png = samples()[0].bytes;
  auto r = decode_image(std::span(png).first(png.size() / 2), "photo.png");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message().rfind("photo.png: truncated PNG data (", 0), 0u) << r.error().message();
  const auto& jpg = samples()[2].bytes;
  r = decode_image(std::span(jpg).first(jpg.size() / 2), "photo.jpg");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message().rfind("photo.jpg: truncated JPEG data", 0), 0u) << r.error().message();
  const auto& webp = samples()[4].bytes;
  r = decode_image(std::span(webp).first(webp.size() / 2), "photo.webp");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message().rfind("photo.webp: truncated WebP data", 0), 0u) << r.error().message();
}

TEST(ParserImage, ByteFlipsAtEveryPosition) {
  for (const auto& s : samples()) {
    SCOPED_TRACE(s.name);
    int decoded = 0;
    for (size_t pos = 0; pos < s.bytes.size(); ++pos)
      for (uint8_t mask : {uint8_t(0xff), uint8_t(0x01), uint8_t(0x80)}) {
        std::vector<uint8_t> bytes = s.bytes;
        bytes[pos] ^= mask;
        auto r = decode_image(bytes, s.name, fuzz_limits());
        expect_sane(r, s.name, fuzz_limits());
        decoded += r.ok();
      }
    std::printf("  %s: %zu bytes, %d of %zu flipped files still decode\n", s.name.c_str(), s.bytes.size(), decoded,
                s.bytes.size() * 3);
  }
}

TEST(ParserImage, RandomCorruptionWithFixedSeeds) {
  for (const auto& s : samples()) {
    SCOPED_TRACE(s.name);
    for (uint32_t seed = 0; seed < 2000; ++seed) {
      std::mt19937 rng(seed);
      std::vector<uint8_t> bytes = s.bytes;
      const int changes = 1 + int(rng() % 16);
      for (int k = 0; k < changes; ++k) bytes[rng() % bytes.size()] = uint8_t(rng());
      if (seed % 4 == 0) bytes.resize(rng() % bytes.size());  // and sometimes cut, too
      expect_sane(decode_image(bytes, s.name, fuzz_limits()), s.name, fuzz_limits());
    }
  }
}

TEST(ParserImage, RandomBytesBehindEveryMagic) {
  const std::vector<std::string> magics = {"", "\x89PNG\r\n\x1a\n", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "\xff\xd8\xff",
                                           "\xff\xd8\xff\xc0", "RIFF\xff\xff\0\0WEBPVP8 ", "RIFF\xff\xff\0\0WEBPVP8L",
                                           "RIFF\xff\xff\0\0WEBPVP8X"};
  for (size_t m = 0; m < magics.size(); ++m) {
    for (uint32_t seed = 0; seed < 500; ++seed) {
      std::mt19937 rng(seed * 977 + uint32_t(m));
      std::vector<uint8_t> bytes = bytes_of(std::string_view(magics[m].data(), magics[m].size()));
      const size_t extra = rng() % 3000;
      for (size_t i = 0; i < extra; ++i) bytes.push_back(uint8_t(rng()));
      expect_sane(decode_image(bytes, "random.bin", fuzz_limits()), "random.bin", fuzz_limits());
    }
  }
}

// ---- headers that claim enormous (or no) sizes ----

std::vector<uint8_t> png_claiming(uint32_t w, uint32_t h) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  testing::append_chunk(out, {"IHDR", testing::ihdr_data(w, h, 8, 6, 0)});
  testing::append_chunk(out, {"IDAT", testing::zlib_stored(std::vector<uint8_t>(64, 0))});
  testing::append_chunk(out, {"IEND", {}});
  return out;
}

void put_le32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 0; s < 32; s += 8) out.push_back(uint8_t(v >> s));
}

std::vector<uint8_t> webp_with_chunk(const std::string& type, std::vector<uint8_t> payload) {
  if (payload.size() % 2) payload.push_back(0);
  std::vector<uint8_t> out = bytes_of("RIFF");
  put_le32(out, uint32_t(4 + 8 + payload.size()));
  const auto tail = bytes_of("WEBP" + type);
  out.insert(out.end(), tail.begin(), tail.end());
  put_le32(out, uint32_t(payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

TEST(ParserImage, HugePngIsRefusedBeforeAllocating) {
  auto r = decode_image(png_claiming(100000, 100000), "huge.png");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "huge.png: PNG image is 100000 x 100000 pixels, more than the limit of 268435456 pixels");
  // Just over the default cap of 16384 x 16384.
  r = decode_image(png_claiming(16385, 16384), "big.png");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("limit"), std::string::npos) << r.error().message();
  // The cap is configurable.
  ImageLimits small;
  small.max_pixels = 1000;
  r = decode_image(png_claiming(40, 40), "small.png", small);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("limit of 1000"), std::string::npos) << r.error().message();
  // libpng rejects zero and > 2^31 - 1 sides in IHDR itself.
  for (auto [w, h] : {std::pair{0u, 5u}, {5u, 0u}, {0x80000000u, 1u}}) {
    r = decode_image(png_claiming(w, h), "zero.png");
    ASSERT_FALSE(r.ok()) << w << "x" << h;
    expect_sane(r, "zero.png", {});
  }
}

TEST(ParserImage, HugeJpegIsRefusedBeforeAllocating) {
  std::vector<uint8_t> jpg = samples()[2].bytes;
  size_t sof = 0;
  for (size_t i = 2; i + 9 < jpg.size(); ++i)
    if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) { sof = i; break; }
  ASSERT_GT(sof, 0u) << "no SOF0 marker";
  auto with_size = [&](uint16_t w, uint16_t h) {
    std::vector<uint8_t> b = jpg;
    b[sof + 5] = uint8_t(h >> 8), b[sof + 6] = uint8_t(h);
    b[sof + 7] = uint8_t(w >> 8), b[sof + 8] = uint8_t(w);
    return b;
  };
  auto r = decode_image(with_size(65000, 65000), "huge.jpg");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "huge.jpg: JPEG image is 65000 x 65000 pixels, more than the limit of 268435456 pixels");
  r = decode_image(with_size(32, 0), "zero.jpg");
  EXPECT_FALSE(r.ok());
  expect_sane(r, "zero.jpg", {});
  r = decode_image(with_size(0, 24), "zero.jpg");
  EXPECT_FALSE(r.ok());
  expect_sane(r, "zero.jpg", {});
}

TEST(ParserImage, HugeWebpIsRefusedBeforeAllocating) {
  // VP8L: signature 0x2f, then 14 bits width - 1, 14 bits height - 1, alpha, version.
  std::vector<uint8_t> vp8l = {0x2f};
  put_le32(vp8l, 0x3fffu | (0x3fffu << 14));
  for (int i = 0; i < 32; ++i) vp8l.push_back(uint8_t(i * 37));
  ImageLimits limits;
  limits.max_pixels = int64_t(1) << 24;
  auto r = decode_image(webp_with_chunk("VP8L", vp8l), "huge.webp", limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "huge.webp: WebP image is 16384 x 16384 pixels, more than the limit of 16777216 pixels");
  // VP8X: a 2^24 x 2^24 canvas and no image at all.
  std::vector<uint8_t> vp8x = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  r = decode_image(webp_with_chunk("VP8X", vp8x), "canvas.webp");
  EXPECT_FALSE(r.ok());
  expect_sane(r, "canvas.webp", {});
}

// libpng allocates what a chunk header claims before reading the chunk: a flipped length field
// in a 2 kB file once cost 1.5 GB and a second. The chunk walk refuses it first.
TEST(ParserImage, ChunkLengthBeyondTheFileIsRefused) {
  std::vector<uint8_t> bytes = samples()[0].bytes;  // IHDR, then a tEXt chunk at offset 33
  bytes[33] = 0x59;
  auto r = decode_image(bytes, "long.png");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("truncated PNG data (chunk 'tEXt' claims"), std::string::npos)
      << r.error().message();
  bytes[33] = 0x80;  // over 2^31 - 1: not even a valid length
  r = decode_image(bytes, "long.png");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("invalid PNG data"), std::string::npos) << r.error().message();
}

// A damaged ancillary chunk is harmless: libpng drops it and the pixels still decode.
TEST(ParserImage, BadCrcOnTextChunkDropsOnlyTheText) {
  PngSpec s{.width = 2, .height = 2, .samples = std::vector<uint16_t>(12, 7)};
  s.before_idat.push_back({"tEXt", bytes_of(std::string("k\0value", 7))});
  std::vector<uint8_t> bytes = build_png(s);
  const size_t text_chunk = 8 + 25;  // signature, IHDR (12 + 13)
  bytes[text_chunk + 8 + 7 + 2] ^= 0x55;  // the CRC after "tEXt" and its 7 data bytes
  auto r = decode_image(bytes, "crc.png");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->text.empty());
  EXPECT_EQ(r->pixels, std::vector<uint8_t>(12, 7));
}

}  // namespace
}  // namespace easel
