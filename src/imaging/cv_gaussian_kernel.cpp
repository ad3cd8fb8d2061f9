// See cv_gaussian_kernel.h. OpenCV computes these kernels with softdouble (Berkeley SoftFloat),
// i.e. IEEE double operations rounded to nearest even; the same operations on hardware doubles
// give the same bits as long as the compiler does not fuse a multiply and an add on its own
// (-march=native enables FMA): cmake/source_properties.cmake compiles this file with
// -ffp-contract=off. The one fused multiply-add OpenCV does
// (mulAdd, for the default sigma) is written with std::fma.
#include "imaging/cv_gaussian_kernel.h"

#include <bit>
#include <cmath>

#include "core/error.h"

namespace easel::imaging {
namespace {

double from_bits(uint64_t bits) { return std::bit_cast<double>(bits); }

// 2^(i/64) rounded to the nearest double: OpenCV's expTab (checked against it; these are also
// the values an exact computation gives).
constexpr uint64_t kExp2Table[64] = {
    0x3ff0000000000000, 0x3ff02c9a3e778061, 0x3ff059b0d3158574, 0x3ff0874518759bc8,
    0x3ff0b5586cf9890f, 0x3ff0e3ec32d3d1a2, 0x3ff11301d0125b51, 0x3ff1429aaea92de0,
    0x3ff172b83c7d517b, 0x3ff1a35beb6fcb75, 0x3ff1d4873168b9aa, 0x3ff2063b88628cd6,
    0x3ff2387a6e756238, 0x3ff26b4565e27cdd, 0x3ff29e9df51fdee1, 0x3ff2d285a6e4030b,
    0x3ff306fe0a31b715, 0x3ff33c08b26416ff, 0x3ff371a7373aa9cb, 0x3ff3a7db34e59ff7,
    0x3ff3dea64c123422, 0x3ff4160a21f72e2a, 0x3ff44e086061892d, 0x3ff486a2b5c13cd0,
    0x3ff4bfdad5362a27, 0x3ff4f9b2769d2ca7, 0x3ff5342b569d4f82, 0x3ff56f4736b527da,
    0x3ff5ab07dd485429, 0x3ff5e76f15ad2148, 0x3ff6247eb03a5585, 0x3ff6623882552225,
    0x3ff6a09e667f3bcd, 0x3ff6dfb23c651a2f, 0x3ff71f75e8ec5f74, 0x3ff75feb564267c9,
    0x3ff7a11473eb0187, 0x3ff7e2f336cf4e62, 0x3ff82589994cce13, 0x3ff868d99b4492ed,
    0x3ff8ace5422aa0db, 0x3ff8f1ae99157736, 0x3ff93737b0cdc5e5, 0x3ff97d829fde4e50,
    0x3ff9c49182a3f090, 0x3ffa0c667b5de565, 0x3ffa5503b23e255d, 0x3ffa9e6b5579fdbf,
    0x3ffae89f995ad3ad, 0x3ffb33a2b84f15fb, 0x3ffb7f76f2fb5e47, 0x3ffbcc1e904bc1d2,
    0x3ffc199bdd85529c, 0x3ffc67f12e57d14b, 0x3ffcb720dcef9069, 0x3ffd072d4a07897c,
    0x3ffd5818dcfba487, 0x3ffda9e603db3285, 0x3ffdfc97337b9b5f, 0x3ffe502ee78b3ff6,
    0x3ffea4afa2a490da, 0x3ffefa1bee615a27, 0x3fff50765b6e4540, 0x3fffa7c1819e90d8,
};

constexpr int kExpTableBits = 6;  // EXPTAB_SCALE

}  // namespace

double cv_softdouble_exp(double x) {
  if (std::isnan(x)) return x;
  if (std::isinf(x)) return x > 0 ? x : 0.0;
  // softfloat.cpp constants: EXPPOLY_32F_A0 and the polynomial coefficients divided by it.
  const double a0_scale = from_bits(0x3f83ce0f3e46f431);
  const double A5 = 1.0 / a0_scale;
  const double A4 = from_bits(0x3fe62e42fefa39f1) / a0_scale;
  const double A3 = from_bits(0x3fcebfbdff82a45a) / a0_scale;
  const double A2 = from_bits(0x3fac6b08d81fec75) / a0_scale;
  const double A1 = from_bits(0x3f83b2a72b4f3cd3) / a0_scale;
  const double A0 = from_bits(0x3f55e7aa1566c2a4) / a0_scale;
  const double prescale = from_bits(0x3ff71547652b82fe) * double(1 << kExpTableBits);  // 64 / ln 2
  const double postscale = 1.0 / double(1 << kExpTableBits);
  const double max_val = 3000.0 * (1 << kExpTableBits);

  // |x| >= 2^11: clamp (the result is 0 or inf either way).
  const int biased_exponent = int((std::bit_cast<uint64_t>(x) >> 52) & 0x7ff);
  double x0 = biased_exponent > 1023 + 10 ? (std::signbit(x) ? -max_val : max_val) : x * prescale;
  const double rounded = std::nearbyint(x0);  // round half to even (default rounding mode)
  const int val0 = int(rounded);
  int t = (val0 >> kExpTableBits) + 1023;
  t = t < 0 ? 0 : (t > 2047 ? 2047 : t);
  const double power_of_two = std::bit_cast<double>(uint64_t(t) << 52);
  x0 = (x0 - rounded) * postscale;
  const double poly = ((((A0 * x0 + A1) * x0 + A2) * x0 + A3) * x0 + A4) * x0 + A5;
  return power_of_two * a0_scale * from_bits(kExp2Table[val0 & ((1 << kExpTableBits) - 1)]) * poly;
}

std::vector<double> cv_gaussian_kernel(int n, double sigma) {
  EASEL_CHECK(n > 0, "Gaussian kernel: size must be positive, got ", n);
  // Fixed kernels for sigma <= 0 and small n (binomial coefficients).
  if (sigma <= 0) {
    switch (n) {
      case 1: return {1.0};
      case 3: return {0.25, 0.5, 0.25};
      case 5: return {0.0625, 0.25, 0.375, 0.25, 0.0625};
      case 7: return {0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125};
      case 9: return {4 / 256.0, 13 / 256.0, 30 / 256.0, 51 / 256.0, 60 / 256.0,
                      51 / 256.0, 30 / 256.0, 13 / 256.0, 4 / 256.0};
      default: break;
    }
  }
  const double sd_0_15 = from_bits(0x3fc3333333333333), sd_0_35 = from_bits(0x3fd6666666666666);
  const double sigma_x = sigma > 0 ? sigma : std::fma(double(n), sd_0_15, sd_0_35);
  const double scale2 = -0.125 / (sigma_x * sigma_x);
  // Taps at x = 2 * (i - (n - 1) / 2): exp(-x^2 / (8 sigma^2)) = exp(-d^2 / (2 sigma^2)).
  const int half = (n - 1) / 2;
  std::vector<double> values(half);
  double sum = 0;
  for (int i = 0, x = 1 - n; i < half; ++i, x += 2) {
    values[i] = cv_softdouble_exp(double(x * x) * scale2);
    sum += values[i];
  }
  sum *= 2.0;
  sum += 1.0;                   // the centre tap, exp(0)
  if ((n & 1) == 0) sum += 1.0;  // an even n has two centre taps
  const double mul = 1.0 / sum;
  std::vector<double> k(n);
  for (int i = 0; i < half; ++i) k[i] = k[n - 1 - i] = values[i] * mul;
  k[half] = 1.0 * mul;
  if ((n & 1) == 0) k[half + 1] = k[half];
  return k;
}

std::vector<uint16_t> cv_gaussian_kernel_fixed8(int n, double sigma) {
  EASEL_CHECK(n > 0 && n % 2 == 1, "Gaussian kernel: size must be odd and positive, got ", n);
  const std::vector<double> k = cv_gaussian_kernel(n, sigma);
  constexpr int64_t kOne = 1 << 8;
  std::vector<uint16_t> out(n);
  const int half = n / 2;
  double err = 0;
  int64_t sum = 0;
  for (int i = 0; i < half; ++i) {
    const double adjusted = k[i] * double(kOne) + err;
    const int64_t v = int64_t(std::nearbyint(adjusted));  // cvRound: half to even
    err = adjusted - double(v);
    out[i] = out[n - 1 - i] = uint16_t(v);  // ufixedpoint16::fromRaw keeps the low 16 bits
    sum += v;
  }
  out[half] = uint16_t(kOne - 2 * sum);
  return out;
}

}  // namespace easel::imaging
