// Reading and writing PNG, JPEG and WebP images as 8-bit RGB or RGBA pixels.
//
// Decoding sniffs the format from the magic bytes (never from the file name) and converts whatever
// the file holds (gray, gray+alpha, palette, 16-bit, interlaced PNG; grayscale or CMYK JPEG; WebP
// with or without alpha) to 8-bit RGB, or RGBA when the file has alpha. Every failure is an Error
// that names the file: "photo.png: truncated PNG data (libpng: ...)". The decoders are fuzzed under
// ASan+UBSan (tests/test_image.cpp, suites Parser*), so hostile files give an error, never a crash.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace easel {

enum class ImageFormat { Png, Jpeg, Webp };

struct Image {
  int width = 0, height = 0, channels = 0;  // 3 = RGB, 4 = RGBA (8-bit, interleaved, rows top to bottom)
  std::vector<uint8_t> pixels;              // width * height * channels bytes
  // PNG tEXt/iTXt/zTXt chunks as (keyword, UTF-8 text), in file order; e.g. A1111's "parameters".
  std::vector<std::pair<std::string, std::string>> text;
};

// What a decoder accepts before it allocates anything. The default pixel cap is 16384 x 16384
// (1 GiB as RGBA); a server facing untrusted uploads may want less.
struct ImageLimits {
  int64_t max_pixels = int64_t(1) << 28;
  int64_t max_file_bytes = int64_t(1) << 30;  // read_image only
};

Result<Image> decode_image(std::span<const uint8_t> bytes, std::string_view name_for_errors,
                           const ImageLimits& limits = {});
Result<Image> read_image(const std::filesystem::path& path, const ImageLimits& limits = {});

// quality (clamped to 0..100) is the JPEG / lossy WebP quality; WebP is lossless (and exact, even
// under transparent pixels) when quality >= 100; PNG ignores it. PNG keeps the text chunks (tEXt
// when the text is Latin-1, else iTXt); JPEG and WebP drop them. JPEG drops alpha.
Result<std::vector<uint8_t>> encode_image(const Image& image, ImageFormat format, int quality = 95);

// Writes to a temporary file beside `path`, then renames it over `path`, so a failure never leaves a
// half-written file. The format comes from the extension (.png .jpg .jpeg .webp, any case) unless
// given.
Status write_image(const std::filesystem::path& path, const Image& image,
                   std::optional<ImageFormat> format = {}, int quality = 95);

std::optional<ImageFormat> image_format_from_extension(const std::filesystem::path& path);
const char* image_format_name(ImageFormat format);  // "PNG", "JPEG", "WebP"

// RGB copy: drops alpha, expands gray (1 channel) and gray+alpha (2 channels). Text is kept.
// Throws easel::Exception for an inconsistent Image (pixels.size() != width * height * channels).
Image to_rgb(const Image& image);

}  // namespace easel
