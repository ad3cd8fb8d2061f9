// Pillow's mode conversions and point operations on 8-bit images.
// Rules from Pillow 13.0.0 src/libImaging/Convert.c, ImagingUtils.h and PIL/ImageOps.py.
#include <cstdint>

#include "imaging/image_checks.h"
#include "imaging/pil_ops.h"

namespace easel::imaging {
namespace {

// ImagingUtils.h MULDIV255: a * b / 255 rounded, as ((t >> 8) + t) >> 8 with t = a * b + 128.
inline uint8_t mul_div_255(unsigned a, unsigned b) {
  const unsigned t = a * b + 128;
  return uint8_t(((t >> 8) + t) >> 8);
}

// Convert.c rgba2rgbA / la2lA: c * 255 / alpha truncated and clipped, except where alpha is 0 or
// 255 (the value is kept as stored).
inline uint8_t unpremultiply_value(unsigned c, unsigned alpha) {
  if (alpha == 0 || alpha == 255) return uint8_t(c);
  const unsigned v = 255 * c / alpha;
  return uint8_t(v > 255 ? 255 : v);
}

// Convert.c L24: ITU-R 601-2 luma in 16.16 fixed point (19595, 38470, 7471 are 0.299, 0.587,
// 0.114 * 65536), rounded by the + 0x8000 before the shift.
inline uint8_t luma(unsigned r, unsigned g, unsigned b) {
  return uint8_t((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

Image with_channels(const Image& im, int channels) {
  return detail::blank_like(im.width, im.height, channels);
}

size_t pixel_count(const Image& im) { return size_t(im.width) * im.height; }

// Every colour value of an image whose last band is alpha, through f(value, alpha).
template <class F>
Image map_colours_by_alpha(const Image& im, const char* what, const char* modes, F f) {
  detail::check_image(im, what);
  EASEL_CHECK(im.channels == 2 || im.channels == 4, what, ": needs ", modes, ", got ", im.channels, " channels");
  Image out = im;
  out.text.clear();
  const int colours = im.channels - 1;
  for (size_t i = 0; i < pixel_count(im); ++i) {
    uint8_t* p = &out.pixels[i * im.channels];
    for (int c = 0; c < colours; ++c) p[c] = f(p[c], p[colours]);
  }
  return out;
}

}  // namespace

// Convert.c rgbA2rgba ("RGBA" -> "RGBa") and lA2la ("LA" -> "La").
Image premultiply(const Image& im) { return map_colours_by_alpha(im, "premultiply", "RGBA or LA", mul_div_255); }

// Convert.c rgba2rgbA ("RGBa" -> "RGBA") and la2lA ("La" -> "LA").
Image unpremultiply(const Image& im) {
  return map_colours_by_alpha(im, "unpremultiply", "RGBa or La", unpremultiply_value);
}

Image premultiplied_to_rgb(const Image& im) {
  detail::check_channels(im, 4, "premultiplied_to_rgb", "RGBa");
  // Convert.c rgba2rgb_ ("RGBa" -> "RGB"): unpremultiply as rgba2rgbA, then drop alpha.
  Image out = with_channels(im, 3);
  for (size_t i = 0; i < pixel_count(im); ++i) {
    const uint8_t* p = &im.pixels[i * 4];
    for (int c = 0; c < 3; ++c) out.pixels[i * 3 + c] = unpremultiply_value(p[c], p[3]);
  }
  return out;
}

Image to_luma(const Image& im) {
  detail::check_image(im, "to_luma");
  Image out = with_channels(im, 1);
  for (size_t i = 0; i < pixel_count(im); ++i) {
    const uint8_t* p = &im.pixels[i * im.channels];
    // Convert.c: L and LA keep their L band (la2l); RGB and RGBA use rgb2l (alpha ignored).
    out.pixels[i] = im.channels <= 2 ? p[0] : luma(p[0], p[1], p[2]);
  }
  return out;
}

Image gray_to_rgb(const Image& im) {
  detail::check_channels(im, 1, "gray_to_rgb", "L");
  Image out = with_channels(im, 3);  // Convert.c l2rgb
  for (size_t i = 0; i < pixel_count(im); ++i)
    out.pixels[i * 3] = out.pixels[i * 3 + 1] = out.pixels[i * 3 + 2] = im.pixels[i];
  return out;
}

Image gray_to_rgba(const Image& im) {
  detail::check_channels(im, 1, "gray_to_rgba", "L");
  Image out = with_channels(im, 4);  // Convert.c l2rgb writes alpha 255
  for (size_t i = 0; i < pixel_count(im); ++i) {
    uint8_t* p = &out.pixels[i * 4];
    p[0] = p[1] = p[2] = im.pixels[i];
    p[3] = 255;
  }
  return out;
}

Image rgb_to_rgba(const Image& im) {
  detail::check_channels(im, 3, "rgb_to_rgba", "RGB");
  Image out = with_channels(im, 4);  // Convert.c rgb2rgba
  for (size_t i = 0; i < pixel_count(im); ++i) {
    for (int c = 0; c < 3; ++c) out.pixels[i * 4 + c] = im.pixels[i * 3 + c];
    out.pixels[i * 4 + 3] = 255;
  }
  return out;
}

Image rgba_to_rgb(const Image& im) {
  detail::check_channels(im, 4, "rgba_to_rgb", "RGBA");
  Image out = with_channels(im, 3);  // Convert.c: RGBA -> RGB is rgb2rgba on the first 3 bytes
  for (size_t i = 0; i < pixel_count(im); ++i)
    for (int c = 0; c < 3; ++c) out.pixels[i * 3 + c] = im.pixels[i * 4 + c];
  return out;
}

Image invert(const Image& im) {
  detail::check_image(im, "invert");
  // ImageOps.invert -> _lut: only "L" and "RGB" (OSError "not supported for mode" otherwise).
  EASEL_CHECK(im.channels == 1 || im.channels == 3, "invert: Pillow inverts L or RGB only, got ",
              im.channels, " channels");
  Image out = im;
  out.text.clear();
  for (uint8_t& v : out.pixels) v = uint8_t(255 - v);
  return out;
}

Image point_threshold(const Image& im, int threshold) {
  detail::check_channels(im, 1, "point_threshold", "L");
  // Image.point(fn) on "L" evaluates fn on 0..255 into a lookup table.
  Image out = im;
  out.text.clear();
  for (uint8_t& v : out.pixels) v = int(v) > threshold ? 255 : 0;
  return out;
}

}  // namespace easel::imaging
