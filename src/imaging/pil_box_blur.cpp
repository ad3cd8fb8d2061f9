// ImageFilter.GaussianBlur as Pillow 13.0.0 computes it: ImagingGaussianBlur
// (libImaging/BoxBlur.c) turns the standard deviation into an extended box radius and runs
// 3 passes of a box blur along x, then 3 along y, each pass rounding to 8 bits.
//
// The radius arithmetic is in C float, in Pillow's order; the compiler must not fuse a multiply
// and an add (-march=native enables FMA): cmake/source_properties.cmake compiles this file with
// -ffp-contract=off.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "imaging/image_checks.h"
#include "imaging/pil_ops.h"

namespace easel::imaging {
namespace {

constexpr int kPasses = 3;  // _gaussian_blur_impl's default

// BoxBlur.c _gaussian_blur_radius: the extended box radius l + a whose `passes` repetitions have
// variance radius^2 (Gwosdek et al., "Theoretical foundations of Gaussian convolution by extended
// box filtering", eqs. 7, 11, 14). Float variables, double sqrt/floor as in the C.
float extended_box_radius(float radius, int passes) {
  const float sigma2 = radius * radius / passes;
  const float L = float(std::sqrt(12.0 * sigma2 + 1.0));
  const float l = float(std::floor((L - 1.0) / 2.0));
  float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
  a /= 6 * (sigma2 - (l + 1) * (l + 1));
  return l + a;
}

// BoxBlur.c ImagingLineBoxBlur8/32 on one line of `n` pixels of `ch` bands with stride `step`
// between pixels: a box of 2 * radius + 1 whole pixels weighted ww plus the two next pixels
// weighted fw (the fractional part), in 8.24 fixed point; the edge pixel repeats outward.
void box_blur_line(const uint8_t* in, uint8_t* out, int n, int ch, size_t step, int radius,
                   uint32_t ww, uint32_t fw) {
  const int lastx = n - 1;
  const int edge_a = std::min(radius + 1, n);
  const int edge_b = std::max(n - radius - 1, 0);
  auto px = [&](int x, int b) -> uint32_t { return in[size_t(x) * step + b]; };
  for (int b = 0; b < ch; ++b) {
    // The running sum for pixel -1: the first pixel repeated radius + 1 times, then pixels
    // 0 .. edge_a - 2, then the last pixel for what lies beyond a short line.
    uint32_t acc = px(0, b) * uint32_t(radius + 1);
    for (int x = 0; x < edge_a - 1; ++x) acc += px(x, b);
    acc += px(lastx, b) * uint32_t(radius - edge_a + 1);
    // Unsigned wrap-around in acc is intended (as in the C): the sum is always back in range
    // after each add/subtract pair.
    auto emit = [&](int x, int sub, int add, int left, int right) {
      acc += px(add, b) - px(sub, b);
      const uint32_t bulk = acc * ww + (px(left, b) + px(right, b)) * fw;
      out[size_t(x) * step + b] = uint8_t((bulk + (1u << 23)) >> 24);
    };
    if (edge_a <= edge_b) {
      for (int x = 0; x < edge_a; ++x) emit(x, 0, x + radius, 0, x + radius + 1);
      for (int x = edge_a; x < edge_b; ++x)
        emit(x, x - radius - 1, x + radius, x - radius - 1, x + radius + 1);
      for (int x = edge_b; x <= lastx; ++x) emit(x, x - radius - 1, lastx, x - radius - 1, lastx);
    } else {
      for (int x = 0; x < edge_b; ++x) emit(x, 0, x + radius, 0, x + radius + 1);
      for (int x = edge_b; x < edge_a; ++x) emit(x, 0, lastx, 0, lastx);
      for (int x = edge_a; x <= lastx; ++x) emit(x, x - radius - 1, lastx, x - radius - 1, lastx);
    }
  }
}

// BoxBlur.c ImagingHorizontalBoxBlur, on every row (along x) or every column (along y; Pillow
// transposes the image and blurs rows, the same arithmetic).
void box_blur_pass(Image& im, float float_radius, bool along_x) {
  const int radius = int(float_radius);
  const uint32_t ww = uint32_t(float(1 << 24) / (float_radius * 2 + 1));
  const uint32_t fw = ((1u << 24) - uint32_t(radius * 2 + 1) * ww) / 2;
  const int ch = im.channels;
  const int n = along_x ? im.width : im.height, lines = along_x ? im.height : im.width;
  const size_t step = along_x ? size_t(ch) : size_t(im.width) * ch;
  const size_t line_step = along_x ? size_t(im.width) * ch : size_t(ch);
  std::vector<uint8_t> line(size_t(n) * ch), blurred(size_t(n) * ch);
  for (int l = 0; l < lines; ++l) {
    uint8_t* base = &im.pixels[l * line_step];
    for (int x = 0; x < n; ++x)
      for (int b = 0; b < ch; ++b) line[size_t(x) * ch + b] = base[x * step + b];
    box_blur_line(line.data(), blurred.data(), n, ch, ch, radius, ww, fw);
    for (int x = 0; x < n; ++x)
      for (int b = 0; b < ch; ++b) base[x * step + b] = blurred[size_t(x) * ch + b];
  }
}

}  // namespace

Image gaussian_blur(const Image& im, float radius) {
  detail::check_image(im, "gaussian_blur");
  EASEL_CHECK(radius >= 0, "gaussian_blur: radius must be >= 0, got ", radius);
  Image out = im;
  out.text.clear();
  if (radius == 0) return out;  // ImageFilter.GaussianBlur.filter: radius 0 is a copy
  const float r = extended_box_radius(radius, kPasses);
  // Pillow refuses r >= 2^31; its int arithmetic on the box bounds overflows well before that,
  // so we stop at 2^28 (a box hundreds of millions of pixels wide: the image's mean long before).
  EASEL_CHECK(r < 268435456.0f, "gaussian_blur: radius too large: ", radius);
  // ImagingBoxBlur: all passes along x, then all along y; a zero extended radius skips the axis.
  if (r != 0)
    for (int i = 0; i < kPasses; ++i) box_blur_pass(out, r, true);
  if (r != 0)
    for (int i = 0; i < kPasses; ++i) box_blur_pass(out, r, false);
  return out;
}

}  // namespace easel::imaging
