// cv2.GaussianBlur on 8-bit single-channel images: OpenCV 4.10's bit-exact fixed-point path
// (imgproc smooth.dispatch.cpp GaussianBlur -> smooth.simd.hpp GaussianBlurFixedPoint, types from
// fixedpoint.inl.hpp), with the default border BORDER_REFLECT_101.
//
// A row pass computes, per pixel, sum(kx[i] * src) in 8.8 fixed point (ufixedpoint16, saturating
// at 0xFFFF), a column pass sum(ky[j] * row) in 16.16 (ufixedpoint32, saturating), and the result
// is rounded half up to 8 bits. Both kernels sum to exactly 256, so nothing saturates for 8-bit
// input and the SIMD variants OpenCV dispatches to give these same integers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "imaging/cv_gaussian_kernel.h"
#include "imaging/image_checks.h"
#include "imaging/pil_ops.h"

namespace easel::imaging {
namespace {

// core borderInterpolate for BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba), bouncing as often as
// a kernel longer than the line needs.
int reflect_101(int p, int len) {
  if (len == 1) return 0;
  while (unsigned(p) >= unsigned(len)) p = p < 0 ? -p : 2 * len - 2 - p;
  return p;
}

inline uint16_t add_saturated(uint16_t a, uint16_t b) {
  const uint32_t s = uint32_t(a) + b;
  return uint16_t(s > 0xFFFF ? 0xFFFF : s);
}

inline uint32_t add_saturated(uint32_t a, uint32_t b) {
  const uint32_t s = a + b;
  return s < a ? 0xFFFFFFFFu : s;
}

// cvRound for the automatic kernel size: round half to even.
int cv_round(double v) { return int(std::nearbyint(v)); }

}  // namespace

Image cv2_gaussian_blur(const Image& gray, int kx, int ky, double sigma_x, double sigma_y) {
  detail::check_channels(gray, 1, "cv2_gaussian_blur", "single-channel (L)");
  const int w = gray.width, h = gray.height;
  // GaussianBlur: a one-pixel-high (wide) image is not blurred along that axis.
  if (h == 1) ky = 1;
  if (w == 1) kx = 1;
  Image out = gray;
  out.text.clear();
  if (kx == 1 && ky == 1) return out;
  // createGaussianKernels: sigma_y defaults to sigma_x; a size <= 0 comes from sigma (3 sigma
  // each side for 8-bit images, made odd).
  if (sigma_y <= 0) sigma_y = sigma_x;
  if (kx <= 0 && sigma_x > 0) kx = cv_round(sigma_x * 3 * 2 + 1) | 1;
  if (ky <= 0 && sigma_y > 0) ky = cv_round(sigma_y * 3 * 2 + 1) | 1;
  EASEL_CHECK(kx > 0 && kx % 2 == 1 && ky > 0 && ky % 2 == 1,
              "cv2_gaussian_blur: kernel size must be odd and positive, got ", kx, "x", ky);
  EASEL_CHECK(kx <= (1 << 20) && ky <= (1 << 20), "cv2_gaussian_blur: kernel ", kx, "x", ky,
              " is too large");
  const std::vector<uint16_t> fx = cv_gaussian_kernel_fixed8(kx, std::max(sigma_x, 0.0));
  const std::vector<uint16_t> fy = cv_gaussian_kernel_fixed8(ky, std::max(sigma_y, 0.0));

  // Row pass (hlineSmooth): ufixedpoint16 * uint8 saturates to 16 bits, sums saturate.
  const int rx = kx / 2, ry = ky / 2;
  std::vector<uint16_t> rows(size_t(w) * h);
  for (int y = 0; y < h; ++y) {
    const uint8_t* src = &gray.pixels[size_t(y) * w];
    uint16_t* dst = &rows[size_t(y) * w];
    for (int x = 0; x < w; ++x) {
      uint16_t acc = 0;
      for (int i = 0; i < kx; ++i) {
        const uint32_t p = uint32_t(fx[i]) * src[reflect_101(x + i - rx, w)];
        acc = add_saturated(acc, uint16_t(std::min<uint32_t>(p, 0xFFFF)));
      }
      dst[x] = acc;
    }
  }
  // Column pass (vlineSmooth): ufixedpoint16 * ufixedpoint16 -> ufixedpoint32, sums saturate,
  // then ufixedpoint32 -> uint8: (v + 2^15) >> 16 (in 32 bits), saturated.
  std::vector<int> src_row(ky);
  for (int y = 0; y < h; ++y) {
    for (int j = 0; j < ky; ++j) src_row[j] = reflect_101(y + j - ry, h);
    uint8_t* dst = &out.pixels[size_t(y) * w];
    for (int x = 0; x < w; ++x) {
      uint32_t acc = 0;
      for (int j = 0; j < ky; ++j)
        acc = add_saturated(acc, uint32_t(fy[j]) * rows[size_t(src_row[j]) * w + x]);
      const uint32_t v = (acc + (1u << 15)) >> 16;
      dst[x] = uint8_t(std::min<uint32_t>(v, 255));
    }
  }
  return out;
}

}  // namespace easel::imaging
