// Pillow's paste, alpha_composite, crop and getbbox on 8-bit images.
// Rules from Pillow 13.0.0 src/libImaging/Paste.c, AlphaComposite.c, Crop.c, GetBBox.c and
// ImagingUtils.h.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "imaging/image_checks.h"
#include "imaging/pil_ops.h"

namespace easel::imaging {
namespace {

// ImagingUtils.h SHIFTFORDIV255: a / 255 for the sums below, ((a >> 8) + a) >> 8.
inline uint32_t shift_for_div255(uint32_t a) { return ((a >> 8) + a) >> 8; }

// ImagingUtils.h BLEND(mask, in1, in2): (in1 * (255 - mask) + in2 * mask) / 255, rounded by DIV255.
inline uint8_t blend(uint32_t mask, uint32_t under, uint32_t over) {
  return uint8_t(shift_for_div255(under * (255 - mask) + over * mask + 128));
}

}  // namespace

void paste(Image& dst, const Image& src, int x, int y, const Image* mask) {
  detail::check_image(dst, "paste");
  detail::check_image(src, "paste");
  EASEL_CHECK(src.channels == dst.channels, "paste: source has ", src.channels,
              " channels, destination ", dst.channels, " (convert first)");
  if (mask) {
    detail::check_channels(*mask, 1, "paste mask", "L");
    EASEL_CHECK(mask->width == src.width && mask->height == src.height, "paste: mask is ",
                mask->width, "x", mask->height, ", source ", src.width, "x", src.height);
  }
  // Paste.c ImagingPaste: clip the source rectangle to the destination.
  const int64_t sx = std::max<int64_t>(0, -int64_t(x)), sy = std::max<int64_t>(0, -int64_t(y));
  const int64_t dx = int64_t(x) + sx, dy = int64_t(y) + sy;
  const int64_t w = std::min<int64_t>(src.width - sx, dst.width - dx);
  const int64_t h = std::min<int64_t>(src.height - sy, dst.height - dy);
  if (w <= 0 || h <= 0) return;
  const int ch = dst.channels;
  for (int64_t row = 0; row < h; ++row) {
    uint8_t* out = &dst.pixels[((dy + row) * dst.width + dx) * ch];
    const uint8_t* in = &src.pixels[((sy + row) * src.width + sx) * ch];
    if (!mask) {
      std::memcpy(out, in, size_t(w) * ch);  // Paste.c paste: opaque copy
      continue;
    }
    // Paste.c paste_mask_L: every band blended with the mask value.
    const uint8_t* m = &mask->pixels[(sy + row) * mask->width + sx];
    for (int64_t col = 0; col < w; ++col)
      for (int c = 0; c < ch; ++c) out[col * ch + c] = blend(m[col], out[col * ch + c], in[col * ch + c]);
  }
}

void alpha_composite(Image& dst, const Image& src) {
  detail::check_image(dst, "alpha_composite");
  detail::check_image(src, "alpha_composite");
  EASEL_CHECK(dst.channels == 4 || dst.channels == 2, "alpha_composite: needs RGBA or LA, got ",
              dst.channels, " channels");
  EASEL_CHECK(src.channels == dst.channels && src.width == dst.width && src.height == dst.height,
              "alpha_composite: images differ: ", dst.width, "x", dst.height, "x", dst.channels,
              " and ", src.width, "x", src.height, "x", src.channels);
  // AlphaComposite.c: integer "over" with 7 extra bits of precision, divisions by 255 rounded.
  constexpr uint32_t kPrecisionBits = 7;
  const int ch = dst.channels, colours = ch - 1;
  const size_t n = size_t(dst.width) * dst.height;
  for (size_t i = 0; i < n; ++i) {
    uint8_t* d = &dst.pixels[i * ch];
    const uint8_t* s = &src.pixels[i * ch];
    const uint32_t src_a = s[colours], dst_a = d[colours];
    if (src_a == 0) continue;  // the destination pixel is kept as is
    const uint32_t blend_a = dst_a * (255 - src_a);
    const uint32_t out_a255 = src_a * 255 + blend_a;
    const uint32_t coef1 = src_a * 255 * 255 * (1u << kPrecisionBits) / out_a255;
    const uint32_t coef2 = 255 * (1u << kPrecisionBits) - coef1;
    for (int c = 0; c < colours; ++c) {
      const uint32_t t = s[c] * coef1 + d[c] * coef2;
      d[c] = uint8_t(shift_for_div255(t + (0x80u << kPrecisionBits)) >> kPrecisionBits);
    }
    d[colours] = uint8_t(shift_for_div255(out_a255 + 0x80));
  }
}

Image crop(const Image& im, int x0, int y0, int x1, int y1) {
  detail::check_image(im, "crop");
  // Image.crop raises for a reversed box; Crop.c fills what lies outside the image with 0.
  EASEL_CHECK(x1 >= x0, "crop: right (", x1, ") is less than left (", x0, ")");
  EASEL_CHECK(y1 >= y0, "crop: lower (", y1, ") is less than upper (", y0, ")");
  const int64_t w = int64_t(x1) - x0, h = int64_t(y1) - y0;
  EASEL_CHECK(w * h <= (int64_t(1) << 28), "crop: ", w, "x", h, " is too large");
  Image out = detail::blank_like(int(w), int(h), im.channels);
  if (w == 0 || h == 0) return out;
  paste(out, im, -x0, -y0);  // clips exactly as Crop.c's ImagingPaste call does
  return out;
}

std::optional<std::array<int, 4>> getbbox(const Image& im) {
  detail::check_image(im, "getbbox");
  // GetBBox.c with alpha_only = 1: images with alpha look at the alpha byte only; the others at
  // every band.
  const int ch = im.channels;
  const bool alpha_only = ch == 2 || ch == 4;
  auto nonzero = [&](int x, int y) {
    const uint8_t* p = &im.pixels[(size_t(y) * im.width + x) * ch];
    if (alpha_only) return p[ch - 1] != 0;
    for (int c = 0; c < ch; ++c)
      if (p[c]) return true;
    return false;
  };
  int left = im.width, upper = -1, right = 0, lower = 0;
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x)
      if (nonzero(x, y)) {
        if (upper < 0) upper = y;
        lower = y + 1;
        left = std::min(left, x);
        right = std::max(right, x + 1);
      }
  if (upper < 0) return std::nullopt;
  return std::array<int, 4>{left, upper, right, lower};
}

}  // namespace easel::imaging
