// Precondition checks shared by the imaging operations (internal to src/imaging).
#pragma once

#include <cstddef>

#include "core/error.h"
#include "io/image.h"

namespace easel::imaging::detail {

// A consistent image: positive size, 1..4 channels, pixels.size() == width * height * channels.
inline void check_image(const Image& im, const char* op) {
  EASEL_CHECK(im.width > 0 && im.height > 0, op, ": image size must be positive, got ", im.width, "x",
              im.height);
  EASEL_CHECK(im.channels >= 1 && im.channels <= 4, op, ": 1 to 4 channels expected, got ",
              im.channels);
  EASEL_CHECK(im.pixels.size() == size_t(im.width) * im.height * im.channels, op, ": ", im.width,
              "x", im.height, "x", im.channels, " image holds ", im.pixels.size(), " bytes");
}

inline void check_channels(const Image& im, int channels, const char* op, const char* mode) {
  check_image(im, op);
  EASEL_CHECK(im.channels == channels, op, ": needs a ", mode, " image (", channels,
              " channels), got ", im.channels, " channels");
}

inline Image blank_like(int width, int height, int channels) {
  Image out;
  out.width = width;
  out.height = height;
  out.channels = channels;
  out.pixels.assign(size_t(width) * height * channels, 0);
  return out;
}

}  // namespace easel::imaging::detail
