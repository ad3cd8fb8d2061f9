// Internal: the per-format decoders and encoders behind io/image.h, one file each
// (image_png.cpp, image_jpeg.cpp, image_webp.cpp), plus the checks they share.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "io/image.h"

namespace easel::detail {

// `bytes` already starts with the format's magic; `name` is only for messages.
Result<Image> decode_png(std::span<const uint8_t> bytes, std::string_view name, const ImageLimits& limits);
Result<Image> decode_jpeg(std::span<const uint8_t> bytes, std::string_view name, const ImageLimits& limits);
Result<Image> decode_webp(std::span<const uint8_t> bytes, std::string_view name, const ImageLimits& limits);

// `image` has already passed check_image (3 or 4 channels, consistent pixel count); quality is 0..100.
Result<std::vector<uint8_t>> encode_png(const Image& image);
Result<std::vector<uint8_t>> encode_jpeg(const Image& image, int quality);
Result<std::vector<uint8_t>> encode_webp(const Image& image, int quality);

// The size a header claims, checked before anything is allocated for the pixels:
// "photo.png: PNG image is 100000 x 100000 pixels, more than the limit of 268435456 pixels".
Status check_dimensions(int64_t width, int64_t height, std::string_view name, std::string_view format,
                        const ImageLimits& limits);

// Appends to `out`; false (never an exception) when memory runs out, for use inside codec callbacks
// that must not throw through C frames.
bool append_bytes(std::vector<uint8_t>& out, const uint8_t* data, size_t count) noexcept;

}  // namespace easel::detail
