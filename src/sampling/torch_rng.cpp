// See torch_rng.h. Every floating-point operation below is one rounding step of torch's own
// computation, in the same order. The compiler must not fuse a multiply and an add that we wrote
// separately (that would skip a rounding torch did), so contraction is switched off for this file;
// the FMAs that torch's binary executed are written out with std::fma (see
// cmake/source_properties.cmake).
#include "sampling/torch_rng.h"

#include <bit>
#include <cmath>
#include <cstddef>
#include <vector>

#include "core/half.h"

namespace easel {
namespace {

inline uint32_t bits(float x) { return std::bit_cast<uint32_t>(x); }
inline float from_bits(uint32_t x) { return std::bit_cast<float>(x); }

// ---------------------------------------------------------------------------------------------
// Emulation of torch's AVX2 normal kernel (normal_fill_16_AVX2 with log256_ps / sincos256_ps
// from ATen/native/cpu/avx_mathfun.h), one lane at a time.
//
// FMA rule, found by matching torch 1.13.1 (Debian, GCC-built) bit for bit: GCC contracted every
// multiply whose only use is an add or subtract into an FMA. Where an add has two products as
// operands, the product computed first in the source is the fused one and the other is rounded
// on its own. Products whose result feeds another multiply (x*x, the last two steps of each
// polynomial before the final add) are plain multiplies.
// ---------------------------------------------------------------------------------------------

// Cephes single-precision log polynomial constants (as float).
constexpr float kLogP0 = 7.0376836292E-2f;
constexpr float kLogP1 = -1.1514610310E-1f;
constexpr float kLogP2 = 1.1676998740E-1f;
constexpr float kLogP3 = -1.2420140846E-1f;
constexpr float kLogP4 = 1.4249322787E-1f;
constexpr float kLogP5 = -1.6668057665E-1f;
constexpr float kLogP6 = 2.0000714765E-1f;
constexpr float kLogP7 = -2.4999993993E-1f;
constexpr float kLogP8 = 3.3333331174E-1f;
constexpr float kLogQ1 = -2.12194440e-4f;
constexpr float kLogQ2 = 0.693359375f;
constexpr float kSqrtHalf = 0.707106781186547524f;
constexpr uint32_t kMinNormPos = 0x00800000u;

// Natural log of a float, as log256_ps computes it for one lane.
float avx2_log(float x) {
  const bool invalid = x <= 0.0f;  // _CMP_LE_OS: false for NaN
  // _mm256_max_ps(x, min_norm): x if x > min_norm, else min_norm (also for NaN).
  if (!(x > from_bits(kMinNormPos))) x = from_bits(kMinNormPos);
  const uint32_t xi = bits(x);
  const int32_t exponent = static_cast<int32_t>(xi >> 23) - 0x7f;
  x = from_bits((xi & ~0x7f800000u) | bits(0.5f));  // mantissa in [0.5, 1)
  float e = static_cast<float>(exponent);
  e = e + 1.0f;
  const bool below = x < kSqrtHalf;
  const float tmp = below ? x : 0.0f;
  x = x - 1.0f;
  e = e - (below ? 1.0f : 0.0f);
  x = x + tmp;

  const float z = x * x;
  float y = kLogP0;
  y = std::fma(y, x, kLogP1);
  y = std::fma(y, x, kLogP2);
  y = std::fma(y, x, kLogP3);
  y = std::fma(y, x, kLogP4);
  y = std::fma(y, x, kLogP5);
  y = std::fma(y, x, kLogP6);
  y = std::fma(y, x, kLogP7);
  y = std::fma(y, x, kLogP8);
  y = y * x;
  y = std::fma(y, z, e * kLogQ1);   // y*z fused, e*q1 rounded
  y = std::fma(-z, 0.5f, y);        // y - z*0.5 (z*0.5 is exact either way)
  x = x + y;
  x = std::fma(e, kLogQ2, x);       // e*q2 is exact (small integer times 9-bit constant)
  if (invalid) x = from_bits(0xffffffffu);  // or-ed with an all-ones mask: NaN
  return x;
}

constexpr float kMinusDP1 = -0.78515625f;
constexpr float kMinusDP2 = -2.4187564849853515625e-4f;
constexpr float kMinusDP3 = -3.77489497744594108e-8f;
constexpr float kSinP0 = -1.9515295891E-4f;
constexpr float kSinP1 = 8.3321608736E-3f;
constexpr float kSinP2 = -1.6666654611E-1f;
constexpr float kCosP0 = 2.443315711809948E-005f;
constexpr float kCosP1 = -1.388731625493765E-003f;
constexpr float kCosP2 = 4.166664568298827E-002f;
constexpr float kFourOverPi = 1.27323954473516f;

// sin and cos of a float, as sincos256_ps computes them for one lane.
void avx2_sincos(float x, float* s, float* c) {
  uint32_t sign_sin = bits(x) & 0x80000000u;
  x = from_bits(bits(x) & 0x7fffffffu);
  float y = x * kFourOverPi;
  // _mm256_cvttps_epi32: truncation, 0x80000000 when out of range.
  int32_t j = (y >= -2147483648.0f && y < 2147483648.0f) ? static_cast<int32_t>(y)
                                                           : static_cast<int32_t>(0x80000000u);
  j = static_cast<int32_t>((static_cast<uint32_t>(j) + 1u) & ~1u);
  y = static_cast<float>(j);
  const uint32_t swap_sign_sin = (static_cast<uint32_t>(j) & 4u) << 29;
  const bool poly_sin = (j & 2) == 0;
  const uint32_t jc = static_cast<uint32_t>(j) - 2u;
  const uint32_t sign_cos = (~jc & 4u) << 29;
  sign_sin ^= swap_sign_sin;

  // Extended precision modular arithmetic: x = ((x - y*DP1) - y*DP2) - y*DP3, each step fused.
  x = std::fma(y, kMinusDP1, x);
  x = std::fma(y, kMinusDP2, x);
  x = std::fma(y, kMinusDP3, x);

  const float z = x * x;
  float yc = kCosP0;
  yc = std::fma(yc, z, kCosP1);
  yc = std::fma(yc, z, kCosP2);
  yc = yc * z;
  yc = std::fma(yc, z, -(z * 0.5f));  // y*z fused, z*0.5 rounded (exact)
  yc = yc + 1.0f;

  float ys = kSinP0;
  ys = std::fma(ys, z, kSinP1);
  ys = std::fma(ys, z, kSinP2);
  ys = ys * z;
  ys = std::fma(ys, x, x);

  // Lane selection with and/andnot masks, then the subtractions and additions of the original.
  const float ysin2 = poly_sin ? ys : 0.0f;
  const float ysin1 = poly_sin ? 0.0f : yc;
  ys = ys - ysin2;
  yc = yc - ysin1;
  const float sin_abs = ysin1 + ysin2;
  const float cos_abs = yc + ys;
  *s = from_bits(bits(sin_abs) ^ sign_sin);
  *c = from_bits(bits(cos_abs) ^ sign_cos);
}

// normal_fill_16_AVX2 with mean 0 and std 1: data[0..16) holds uniforms in [0, 1) on entry.
void normal_fill_16_avx2(float* data) {
  const float two_pi = static_cast<float>(2.0 * 3.14159265358979323846);
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - data[j];
    const float u2 = data[j + 8];
    const float radius = std::sqrt(-2.0f * avx2_log(u1));
    const float theta = two_pi * u2;
    float s, c;
    avx2_sincos(theta, &s, &c);
    const float n1 = radius * c;
    const float n2 = radius * s;
    data[j] = std::fma(n1, 1.0f, 0.0f);  // _mm256_fmadd_ps(n, std, mean)
    data[j + 8] = std::fma(n2, 1.0f, 0.0f);
  }
}

// normal_fill_16<float> of the scalar kernel (no FMA in that build).
void normal_fill_16_scalar(float* data) {
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - data[j];
    const float u2 = data[j + 8];
    const float radius = std::sqrt(-2.0f * std::log(u1));
    const float theta = static_cast<float>(2.0 * 3.14159265358979323846 * static_cast<double>(u2));
    data[j] = radius * std::cos(theta) * 1.0f + 0.0f;
    data[j + 8] = radius * std::sin(theta) * 1.0f + 0.0f;
  }
}

// normal_fill_16<double>.
void normal_fill_16_double(double* data) {
  for (int j = 0; j < 8; ++j) {
    const double u1 = 1.0 - data[j];
    const double u2 = data[j + 8];
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double theta = 2.0 * 3.14159265358979323846 * u2;
    data[j] = radius * std::cos(theta) * 1.0 + 0.0;
    data[j + 8] = radius * std::sin(theta) * 1.0 + 0.0;
  }
}

// normal_fill_16<c10::Half> / <c10::BFloat16>. The 16-bit values are held in floats here (every
// value stored is exactly representable in the 16-bit type; `round` rounds a float to it).
// c10's operators compute Half op Half in float and round back to Half; Half op float and
// Half op double compute in float / double and return that type; storing a double into a 16-bit
// variable goes through float. For BFloat16 (only), c10/util/BFloat16-math.h in torch 1.13
// overloads std::log/sqrt/cos/sin to return BFloat16, so those results are rounded too.
template <float (*round)(float), bool kMathReturnsT>
void normal_fill_16_reduced(float* data) {
  auto math = [](float v) { return kMathReturnsT ? round(v) : v; };
  for (int j = 0; j < 8; ++j) {
    const float u1 = round(1.0f - data[j]);  // int - T -> T
    const float u2 = data[j + 8];
    const float minus_two_log = math(-2.0f * math(std::log(u1)));  // int * T -> T for BFloat16
    const float radius = round(math(std::sqrt(minus_two_log)));
    const float theta =
        round(static_cast<float>(2.0 * 3.14159265358979323846 * static_cast<double>(u2)));
    // radius * cos(theta) * std + mean with std = 1 and mean = 0: the single product is the
    // only rounding (in float for Half, in BFloat16 for BFloat16; the stores round anyway).
    data[j] = round(radius * math(std::cos(theta)) * 1.0f + 0.0f);
    data[j + 8] = round(radius * math(std::sin(theta)) * 1.0f + 0.0f);
  }
}

float round_to_f16(float x) { return f16_to_f32(f32_to_f16(x)); }
float round_to_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

}  // namespace

TorchGenerator::TorchGenerator(uint64_t seed) { manual_seed(seed); }

void TorchGenerator::manual_seed(uint64_t seed) {
  seed_ = seed;
  cached_normal_.reset();
  state_[0] = static_cast<uint32_t>(seed & 0xffffffffu);
  for (int j = 1; j < kN; ++j) {
    state_[j] = 1812433253u * (state_[j - 1] ^ (state_[j - 1] >> 30)) + static_cast<uint32_t>(j);
  }
  index_ = kN;
}

void TorchGenerator::twist() {
  constexpr int kM = 397;
  constexpr uint32_t kMatrixA = 0x9908b0dfu;
  for (int k = 0; k < kN; ++k) {
    const uint32_t y = (state_[k] & 0x80000000u) | (state_[(k + 1) % kN] & 0x7fffffffu);
    state_[k] = state_[(k + kM) % kN] ^ (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u);
  }
  index_ = 0;
}

uint32_t TorchGenerator::random() {
  if (index_ >= kN) twist();
  uint32_t y = state_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t TorchGenerator::random64() {
  const uint64_t hi = random();
  const uint64_t lo = random();
  return (hi << 32) | lo;
}

float TorchGenerator::uniform_float() {
  return static_cast<float>(random() & 0xffffffu) * (1.0f / 16777216.0f);
}

double TorchGenerator::uniform_double() {
  return static_cast<double>(random64() & ((uint64_t{1} << 53) - 1)) * (1.0 / 9007199254740992.0);
}

float TorchGenerator::uniform_half() {
  return static_cast<float>(random() & 0x7ffu) * (1.0f / 2048.0f);
}

float TorchGenerator::uniform_bfloat() {
  return static_cast<float>(random() & 0xffu) * (1.0f / 256.0f);
}

double TorchGenerator::normal_double() {
  if (cached_normal_) {
    const double v = *cached_normal_;
    cached_normal_.reset();
    return v;
  }
  const double u1 = uniform_double();
  const double u2 = uniform_double();
  const double r = std::sqrt(-2.0 * std::log(1.0 - u2));
  const double theta = 2.0 * 3.14159265358979323846 * u1;
  cached_normal_ = r * std::sin(theta);
  return r * std::cos(theta);
}

void TorchGenerator::rand(std::span<float> out) {
  for (float& v : out) v = uniform_float();
}

void TorchGenerator::rand(std::span<double> out) {
  for (double& v : out) v = uniform_double();
}

void TorchGenerator::rand_f16(std::span<uint16_t> out) {
  for (uint16_t& v : out) v = f32_to_f16(uniform_half());
}

void TorchGenerator::rand_bf16(std::span<uint16_t> out) {
  for (uint16_t& v : out) v = f32_to_bf16(uniform_bfloat());
}

namespace {

// The shared skeleton of torch's normal_fill: uniforms for every element, 16-wide blocks, then
// (if numel % 16 != 0) 16 fresh uniforms for the last 16 outputs.
template <class T, class Uniform, class Fill16>
void normal_fill(std::span<T> out, Uniform uniform, Fill16 fill16) {
  const size_t n = out.size();
  for (size_t i = 0; i < n; ++i) out[i] = uniform();
  for (size_t i = 0; i + 16 <= n; i += 16) fill16(out.data() + i);
  if (n % 16 != 0) {
    T* tail = out.data() + n - 16;
    for (size_t i = 0; i < 16; ++i) tail[i] = uniform();
    fill16(tail);
  }
}

}  // namespace

void TorchGenerator::randn(std::span<float> out) {
  if (out.size() < 16) {
    for (float& v : out) v = static_cast<float>(normal_double());
    return;
  }
  normal_fill(out, [this] { return uniform_float(); }, normal_fill_16_avx2);
}

void TorchGenerator::randn_scalar_kernel(std::span<float> out) {
  if (out.size() < 16) {
    for (float& v : out) v = static_cast<float>(normal_double());
    return;
  }
  normal_fill(out, [this] { return uniform_float(); }, normal_fill_16_scalar);
}

void TorchGenerator::randn(std::span<double> out) {
  if (out.size() < 16) {
    for (double& v : out) v = normal_double();
    return;
  }
  normal_fill(out, [this] { return uniform_double(); }, normal_fill_16_double);
}

void TorchGenerator::randn_f16(std::span<uint16_t> out) {
  const size_t n = out.size();
  if (n < 16) {
    // static_cast<c10::Half>(double) goes through float.
    for (uint16_t& v : out) v = f32_to_f16(static_cast<float>(normal_double()));
    return;
  }
  std::vector<float> work(n);
  // uniform_real_distribution<Half>: 11 random bits.
  normal_fill(std::span<float>(work), [this] { return uniform_half(); },
              normal_fill_16_reduced<round_to_f16, false>);
  for (size_t i = 0; i < n; ++i) out[i] = f32_to_f16(work[i]);
}

void TorchGenerator::randn_bf16(std::span<uint16_t> out) {
  const size_t n = out.size();
  if (n < 16) {
    for (uint16_t& v : out) v = f32_to_bf16(static_cast<float>(normal_double()));
    return;
  }
  std::vector<float> work(n);
  // uniform_real_distribution<BFloat16>: 8 random bits.
  normal_fill(std::span<float>(work), [this] { return uniform_bfloat(); },
              normal_fill_16_reduced<round_to_bf16, true>);
  for (size_t i = 0; i < n; ++i) out[i] = f32_to_bf16(work[i]);
}

}  // namespace easel
