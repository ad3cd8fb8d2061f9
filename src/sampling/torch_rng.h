// A bit-exact reimplementation of PyTorch's CPU random generator (torch.Generator() on the CPU,
// as shipped in torch 1.13 on an x86-64 machine with AVX2).
//
// Why: diffusers, A1111 and SD.Next draw their initial latents and ancestral noise from a CPU
// torch.Generator when asked for "CPU noise". Reproducing torch's stream bit for bit means the
// same seed gives the same image here as there. This file reproduces:
//
//  * the engine: 32-bit Mersenne Twister mt19937, seeded with the low 32 bits of the seed
//    (torch.manual_seed accepts 0..2^64-1 and negative seeds modulo 2^64; only the low 32 bits
//    reach the engine). random() is one output, random64() two outputs, first in the high half.
//  * torch.rand (float32: 24 random bits per element; float64: 53 bits from random64()).
//  * torch.randn float32 with numel >= 16 on a contiguous tensor: torch's vectorised Box-Muller
//    `normal_fill` with the AVX2 kernel (the default on AVX2 machines), including the
//    recomputation of the last 16 outputs from 16 fresh uniforms when numel % 16 != 0. The AVX2
//    kernel evaluates log/sin/cos with Cephes-style single-precision polynomials, and the shipped
//    binary (GCC, -mfma, default -ffp-contract=fast) fused some multiply-adds into FMAs. We
//    emulate those exact operations in scalar code (explicit std::fma where torch's binary had an
//    FMA), so the result does not depend on the CPU we run on.
//  * torch.randn with numel < 16 (any dtype): serial double Box-Muller whose second value is
//    cached in the generator; the cache survives other calls and is dropped by manual_seed.
//  * torch.randn float16 / bfloat16 / float64 with numel >= 16: `normal_fill<T>` computed in that
//    type (uniforms with 11 / 8 / 53 random bits; c10::Half/BFloat16 arithmetic that computes in
//    float and rounds back to the 16-bit type at each store, and for BFloat16 also after each
//    log/sqrt/sin/cos, which c10 overloads to return BFloat16).
//
// The double and half paths call the C library's log/sin/cos/sqrt exactly like torch does, so on
// those paths we match torch when both use the same libm (glibc on Linux).
//
// Not covered: CUDA generators (Philox), other torch versions, torch builds running the AVX-512 or
// the scalar ("default") kernel for float32 randn (see randn_scalar_kernel for the latter).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace easel {

class TorchGenerator {
 public:
  // c10::default_rng_seed_val: the seed of a fresh torch.Generator().
  static constexpr uint64_t kDefaultSeed = 67280421310721ULL;

  explicit TorchGenerator(uint64_t seed = kDefaultSeed);

  // torch.Generator.manual_seed / torch.manual_seed. A negative Python seed s is passed as
  // static_cast<uint64_t>(s). Re-seeding also drops the cached Box-Muller value.
  void manual_seed(uint64_t seed);
  // The seed as given (all 64 bits, like torch's initial_seed()).
  uint64_t initial_seed() const { return seed_; }

  uint32_t random();    // one mt19937 output
  uint64_t random64();  // (random() << 32) | random()

  // torch.randn(n, generator=g) for each dtype. Values are written in order (C order of the shape).
  void randn(std::span<float> out);
  void randn(std::span<double> out);
  void randn_f16(std::span<uint16_t> out);   // IEEE binary16 bits
  void randn_bf16(std::span<uint16_t> out);  // bfloat16 bits

  // torch.randn float32 as computed by torch's scalar kernel (ATEN_CPU_CAPABILITY=default, or a
  // machine without AVX2). Identical to randn() for numel < 16; for numel >= 16 it differs from the
  // AVX2 kernel by at most a few 1e-6. Uses the C library's float log/sin/cos.
  void randn_scalar_kernel(std::span<float> out);

  // torch.rand(n, generator=g): k / 2^digits with digits = 24 (float), 53 (double, from
  // random64()), 11 (half), 8 (bfloat16); one random() per element otherwise.
  void rand(std::span<float> out);
  void rand(std::span<double> out);
  void rand_f16(std::span<uint16_t> out);
  void rand_bf16(std::span<uint16_t> out);

  // One sample of at::normal_distribution<double>(0, 1) (the serial path; uses and refills the
  // cache).
  double normal_double();

  // The cached second Box-Muller value, if any (torch's next_double_normal_sample).
  std::optional<double> cached_normal() const { return cached_normal_; }

 private:
  void twist();
  float uniform_float();    // 24 bits
  double uniform_double();  // 53 bits
  float uniform_half();     // 11 bits, exact in IEEE half
  float uniform_bfloat();   // 8 bits, exact in bfloat16

  static constexpr int kN = 624;
  uint32_t state_[kN];
  int index_ = kN;
  uint64_t seed_ = 0;
  std::optional<double> cached_normal_;
};

}  // namespace easel
