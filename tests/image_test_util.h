// Helpers for the image tests: deterministic pixel patterns, PSNR, and a tiny hand-written PNG
// builder (stored deflate blocks, correct CRCs) that makes the files our encoder never writes —
// gray, palette, 16-bit, interlaced, tRNS, zTXt — without linking libpng into the tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "io/image.h"

namespace easel::testing {

inline std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Smooth colours with a little texture: what photos look like to JPEG and lossy WebP.
inline Image smooth_image(int w, int h, int channels) {
  Image im{w, h, channels, std::vector<uint8_t>(size_t(w) * h * channels), {}};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) {
        const double v = c == 3 ? 255.0 * (x + 1) / (w + 1)
                                : 127.5 + 100.0 * std::sin(0.11 * x * (c + 1) + 0.07 * y * (3 - c)) + 20.0 * std::cos(0.3 * (x + y));
        im.pixels[(size_t(y) * w + x) * channels + c] = uint8_t(std::lround(std::clamp(v, 0.0, 255.0)));
      }
  return im;
}

// Every byte random, including RGB under fully transparent pixels: only an exact codec survives.
inline Image noise_image(int w, int h, int channels, uint32_t seed) {
  std::mt19937 rng(seed);
  Image im{w, h, channels, std::vector<uint8_t>(size_t(w) * h * channels), {}};
  for (auto& b : im.pixels) b = uint8_t(rng());
  if (channels == 4)
    for (size_t i = 0; i < im.pixels.size(); i += 8) im.pixels[i + 3] = 0;  // some fully transparent
  return im;
}

inline double psnr(const Image& a, const Image& b) {
  EXPECT_EQ(a.pixels.size(), b.pixels.size());
  if (a.pixels.size() != b.pixels.size() || a.pixels.empty()) return 0;
  double se = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const double d = double(a.pixels[i]) - double(b.pixels[i]);
    se += d * d;
  }
  const double mse = se / double(a.pixels.size());
  return mse == 0 ? INFINITY : 10.0 * std::log10(255.0 * 255.0 / mse);
}

// ---- PNG building blocks ----

inline uint32_t crc32(std::span<const uint8_t> bytes, uint32_t crc = 0) {
  crc = ~crc;
  for (uint8_t b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(v >> s));
}

inline std::vector<uint8_t> bytes_of(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// A zlib stream of stored (uncompressed) deflate blocks.
inline std::vector<uint8_t> zlib_stored(std::span<const uint8_t> data) {
  std::vector<uint8_t> out = {0x78, 0x01};
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(data.size() - pos, 65535);
    const bool last = pos + n == data.size();
    out.push_back(last ? 1 : 0);
    out.push_back(uint8_t(n));
    out.push_back(uint8_t(n >> 8));
    out.push_back(uint8_t(~n));
    out.push_back(uint8_t((~n) >> 8));
    out.insert(out.end(), data.begin() + pos, data.begin() + pos + n);
    pos += n;
  } while (pos < data.size());
  uint32_t a = 1, b = 0;
  for (uint8_t v : data) a = (a + v) % 65521, b = (b + a) % 65521;
  put_be32(out, (b << 16) | a);
  return out;
}

struct PngChunk {
  std::string type;
  std::vector<uint8_t> data;
};

inline void append_chunk(std::vector<uint8_t>& out, const PngChunk& chunk) {
  put_be32(out, uint32_t(chunk.data.size()));
  std::vector<uint8_t> body = bytes_of(chunk.type);
  body.insert(body.end(), chunk.data.begin(), chunk.data.end());
  out.insert(out.end(), body.begin(), body.end());
  put_be32(out, crc32(body));
}

inline std::vector<uint8_t> ihdr_data(uint32_t w, uint32_t h, int depth, int color_type, int interlace) {
  std::vector<uint8_t> d;
  put_be32(d, w);
  put_be32(d, h);
  d.insert(d.end(), {uint8_t(depth), uint8_t(color_type), 0, 0, uint8_t(interlace)});
  return d;
}

// Samples of one pixel row, packed at `depth` bits (MSB first below 8 bits, big-endian at 16).
inline void pack_samples(std::vector<uint8_t>& out, std::span<const uint16_t> samples, int depth) {
  if (depth >= 8) {
    for (uint16_t s : samples) {
      if (depth == 16) out.push_back(uint8_t(s >> 8));
      out.push_back(uint8_t(s));
    }
    return;
  }
  int bits = 0;
  uint8_t acc = 0;
  for (uint16_t s : samples) {
    acc = uint8_t(acc | (s << (8 - depth - bits)));
    bits += depth;
    if (bits == 8) out.push_back(acc), acc = 0, bits = 0;
  }
  if (bits) out.push_back(acc);
}

struct PngSpec {
  int width = 0, height = 0, depth = 8, color_type = 2, interlace = 0;
  int samples_per_pixel = 3;
  std::vector<uint16_t> samples;           // width * height * samples_per_pixel, row major
  std::vector<PngChunk> before_idat;       // PLTE, tRNS, tEXt...
  std::vector<PngChunk> after_idat;        // text after the pixels
};

// The filtered (filter type 0) scanlines, in Adam7 pass order when interlaced.
inline std::vector<uint8_t> png_scanlines(const PngSpec& s) {
  struct Pass { int x0, y0, dx, dy; };
  const std::vector<Pass> passes = s.interlace
      ? std::vector<Pass>{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}
      : std::vector<Pass>{{0, 0, 1, 1}};
  std::vector<uint8_t> raw;
  for (const Pass& p : passes) {
    for (int y = p.y0; y < s.height; y += p.dy) {
      std::vector<uint16_t> row;
      for (int x = p.x0; x < s.width; x += p.dx)
        for (int c = 0; c < s.samples_per_pixel; ++c)
          row.push_back(s.samples[(size_t(y) * s.width + x) * s.samples_per_pixel + c]);
      if (row.empty()) continue;  // an empty pass has no rows at all
      raw.push_back(0);
      pack_samples(raw, row, s.depth);
    }
  }
  return raw;
}

inline std::vector<uint8_t> build_png(const PngSpec& s) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  append_chunk(out, {"IHDR", ihdr_data(uint32_t(s.width), uint32_t(s.height), s.depth, s.color_type, s.interlace)});
  for (const auto& c : s.before_idat) append_chunk(out, c);
  append_chunk(out, {"IDAT", zlib_stored(png_scanlines(s))});
  for (const auto& c : s.after_idat) append_chunk(out, c);
  append_chunk(out, {"IEND", {}});
  return out;
}

// Chunk types of a PNG file in order ("IHDR", "tEXt", ...), to check what the encoder wrote.
inline std::vector<std::string> png_chunk_types(std::span<const uint8_t> png) {
  std::vector<std::string> types;
  size_t pos = 8;
  while (pos + 12 <= png.size()) {
    const uint32_t len = uint32_t(png[pos]) << 24 | uint32_t(png[pos + 1]) << 16 | uint32_t(png[pos + 2]) << 8 | png[pos + 3];
    types.emplace_back(reinterpret_cast<const char*>(&png[pos + 4]), 4);
    pos += 12 + size_t(len);
  }
  return types;
}

}  // namespace easel::testing
