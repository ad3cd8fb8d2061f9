// Layout kernels of the CPU backend: strided copy with dtype conversion (which backs contiguous,
// permute, cast, concat and pad), fill, and nearest-neighbour upsampling.
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/strided.h"
#include "core/half.h"

namespace easel {
namespace cpu {
namespace {

namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------------------------
// Element types. f16, bf16 and bool get tag types so that each dtype maps to a distinct C++ type.

struct F16 {
  uint16_t bits;
};
struct BF16 {
  uint16_t bits;
};
struct Bool8 {
  uint8_t v;  // any non-zero byte reads as true
};

// Calls fn.template operator()<T>() with the storage type of dtype.
template <class Fn>
decltype(auto) with_type(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32: return fn.template operator()<float>();
    case DType::F16: return fn.template operator()<F16>();
    case DType::BF16: return fn.template operator()<BF16>();
    case DType::F64: return fn.template operator()<double>();
    case DType::I64: return fn.template operator()<int64_t>();
    case DType::I32: return fn.template operator()<int32_t>();
    case DType::I16: return fn.template operator()<int16_t>();
    case DType::I8: return fn.template operator()<int8_t>();
    case DType::U8: return fn.template operator()<uint8_t>();
    case DType::Bool: return fn.template operator()<Bool8>();
  }
  throw Exception(cat("copy: unsupported dtype ", dtype_name(dtype)));
}

// The arithmetic value of an element: halves widen to float, bool to 0/1, the rest are themselves.
inline float arith(F16 v) { return f16_to_f32(v.bits); }
inline float arith(BF16 v) { return bf16_to_f32(v.bits); }
inline uint8_t arith(Bool8 v) { return v.v != 0; }
template <class T>
inline T arith(T v) {
  return v;
}

// Float to integer truncates toward zero like a C cast, but saturates and sends NaN to 0 instead
// of being undefined behaviour.
template <class I, class F>
I float_to_int(F f) {
  if (std::isnan(f)) return 0;
  constexpr F lo = static_cast<F>(std::numeric_limits<I>::min());
  constexpr F hi = static_cast<F>(std::numeric_limits<I>::max());
  if (f <= lo) return std::numeric_limits<I>::min();
  if (f >= hi) return std::numeric_limits<I>::max();
  return static_cast<I>(f);
}

// Element conversion with torch's semantics: integers convert directly (wrapping), anything to a
// half type goes through float, bool is "not zero".
template <class D, class S>
inline D convert(S s) {
  const auto v = arith(s);
  using A = decltype(v);
  if constexpr (std::is_same_v<D, S>) {
    return s;
  } else if constexpr (std::is_same_v<D, F16>) {
    return F16{f32_to_f16(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<D, BF16>) {
    return BF16{f32_to_bf16(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<D, Bool8>) {
    return Bool8{static_cast<uint8_t>(v != 0)};
  } else if constexpr (std::is_integral_v<D> && std::is_floating_point_v<A>) {
    return float_to_int<D>(v);
  } else {
    return static_cast<D>(v);
  }
}

// ---------------------------------------------------------------------------------------------
// Contiguous conversions. f16 <-> f32 uses the F16C instructions through Highway; bf16 rounds to
// nearest even in integer arithmetic (Highway 1.0's DemoteTo to bf16 truncates).

void f16_to_f32_run(const F16* s, float* d, int64_t n) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto* src = reinterpret_cast<const hwy::float16_t*>(s);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, src + i)), df, d + i);
  for (; i < n; ++i) d[i] = f16_to_f32(s[i].bits);
}

void f32_to_f16_run(const float* s, F16* d, int64_t n) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  auto* dst = reinterpret_cast<hwy::float16_t*>(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::DemoteTo(dh, hn::LoadU(df, s + i)), dh, dst + i);
  for (; i < n; ++i) d[i].bits = f32_to_f16(s[i]);
}

void bf16_to_f32_run(const BF16* s, float* d, int64_t n) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du32;
  const hn::Rebind<uint16_t, decltype(df)> du16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto* src = reinterpret_cast<const uint16_t*>(s);
  int64_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(du16, src + i)))), df, d + i);
  for (; i < n; ++i) d[i] = bf16_to_f32(s[i].bits);
}

void f32_to_bf16_run(const float* s, BF16* d, int64_t n) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di32;
  const hn::Rebind<uint16_t, decltype(df)> du16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  auto* dst = reinterpret_cast<uint16_t*>(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(df, s + i);
    const auto bits = hn::BitCast(di32, v);
    // Round to nearest even: add 0x7fff plus the lowest kept bit, then drop the low half.
    const auto odd = hn::And(hn::ShiftRight<16>(bits), hn::Set(di32, 1));
    const auto rounded = hn::ShiftRight<16>(hn::Add(bits, hn::Add(hn::Set(di32, 0x7fff), odd)));
    const auto quiet_nan = hn::Or(hn::ShiftRight<16>(bits), hn::Set(di32, 0x40));
    auto r = hn::IfThenElse(hn::RebindMask(di32, hn::IsNaN(v)), quiet_nan, rounded);
    r = hn::And(r, hn::Set(di32, 0xffff));  // the arithmetic shift smeared the sign into the top
    hn::StoreU(hn::DemoteTo(du16, r), du16, dst + i);
  }
  for (; i < n; ++i) d[i].bits = f32_to_bf16(s[i]);
}

template <class S, class D>
void convert_run(const S* s, int64_t ss, D* d, int64_t ds, int64_t n) {
  if (ss == 1 && ds == 1) {
    if constexpr (std::is_same_v<S, D>) {
      std::memcpy(d, s, sizeof(S) * n);
      return;
    } else if constexpr (std::is_same_v<S, F16> && std::is_same_v<D, float>) {
      return f16_to_f32_run(s, d, n);
    } else if constexpr (std::is_same_v<S, float> && std::is_same_v<D, F16>) {
      return f32_to_f16_run(s, d, n);
    } else if constexpr (std::is_same_v<S, BF16> && std::is_same_v<D, float>) {
      return bf16_to_f32_run(s, d, n);
    } else if constexpr (std::is_same_v<S, float> && std::is_same_v<D, BF16>) {
      return f32_to_bf16_run(s, d, n);
    } else {
      for (int64_t i = 0; i < n; ++i) d[i] = convert<D>(s[i]);
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i) d[i * ds] = convert<D>(s[i * ss]);
}

// ---------------------------------------------------------------------------------------------
// Transposing copy: the two innermost (merged) dimensions are swapped between src and dst, as in
// NCHW <-> NHWC. Reading one side along its strided dimension would touch a new cache line per
// element; square tiles keep both sides' lines in L1.

constexpr int64_t kTile = 32;

// d[i, j] = s[j, i] for i < rows, j < cols: s is read along its rows, d written along its columns.
template <class T>
void transpose_tile_scalar(const T* s, int64_t s_row, T* d, int64_t d_row, int64_t rows, int64_t cols) {
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t i = 0; i < rows; ++i) d[i * d_row + j] = s[j * s_row + i];
}

#if HWY_TARGET <= HWY_AVX2
// The same for one 8 x 8 block of 4-byte elements, in registers: eight row loads, three rounds of
// interleaves (32-bit, 64-bit, 128-bit halves), eight row stores. Only bits move, never arithmetic.
void transpose_8x8(const uint32_t* s, int64_t s_row, uint32_t* d, int64_t d_row) {
  const hn::FixedTag<float, 8> df;
  const hn::Repartition<double, decltype(df)> dd;
  using V = hn::Vec<decltype(df)>;
  V r[8];
  for (int k = 0; k < 8; ++k) r[k] = hn::LoadU(df, reinterpret_cast<const float*>(s + k * s_row));
  V t[8], u[8];
  for (int k = 0; k < 8; k += 2) {
    t[k] = hn::InterleaveLower(df, r[k], r[k + 1]);      // r_k[0] r_k+1[0] r_k[1] r_k+1[1] | same for 4, 5
    t[k + 1] = hn::InterleaveUpper(df, r[k], r[k + 1]);  // ... elements 2, 3 | 6, 7
  }
  for (int k = 0; k < 8; k += 4) {
    for (int h = 0; h < 2; ++h) {
      const auto a = hn::BitCast(dd, t[k + h]), b = hn::BitCast(dd, t[k + h + 2]);
      u[k + 2 * h] = hn::BitCast(df, hn::InterleaveLower(dd, a, b));      // column 2h   | 2h + 4 of rows k..k+3
      u[k + 2 * h + 1] = hn::BitCast(df, hn::InterleaveUpper(dd, a, b));  // column 2h+1 | 2h + 5
    }
  }
  for (int m = 0; m < 4; ++m) {
    hn::StoreU(hn::ConcatLowerLower(df, u[m + 4], u[m]), df, reinterpret_cast<float*>(d + m * d_row));
    hn::StoreU(hn::ConcatUpperUpper(df, u[m + 4], u[m]), df, reinterpret_cast<float*>(d + (m + 4) * d_row));
  }
}
#endif

template <class T>
void transpose_tile(const T* s, int64_t s_row, T* d, int64_t d_row, int64_t rows, int64_t cols) {
#if HWY_TARGET <= HWY_AVX2
  if constexpr (sizeof(T) == 4) {
    const int64_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
    for (int64_t j = 0; j < cols8; j += 8)
      for (int64_t i = 0; i < rows8; i += 8)
        transpose_8x8(reinterpret_cast<const uint32_t*>(s + j * s_row + i), s_row,
                      reinterpret_cast<uint32_t*>(d + i * d_row + j), d_row);
    // The ragged right and bottom edges, element by element.
    transpose_tile_scalar(s + rows8, s_row, d + rows8 * d_row, d_row, rows - rows8, cols);
    transpose_tile_scalar(s + cols8 * s_row, s_row, d + cols8, d_row, rows8, cols - cols8);
    return;
  }
#endif
  transpose_tile_scalar(s, s_row, d, d_row, rows, cols);
}

// loop: dims (..., R, C) with dst strides (..., dR, 1) and src strides (..., 1, sC).
template <class T>
void transpose_copy(Context& ctx, const StridedLoop<2>& loop, const T* src, T* dst) {
  const int nd = loop.dims();
  const int64_t rows = loop.size(nd - 2), cols = loop.size(nd - 1);
  const int64_t d_row = loop.stride(0, nd - 2), s_col = loop.stride(1, nd - 1);
  int64_t outer = 1;
  for (int d = 0; d < nd - 2; ++d) outer *= loop.size(d);
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t col_tiles = (cols + kTile - 1) / kTile;
  const int64_t tiles_per_matrix = row_tiles * col_tiles;
  const int64_t grain = std::max<int64_t>(1, kStreamGrain / (kTile * kTile));
  ctx.pool().parallel_for(outer * tiles_per_matrix, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      int64_t m = t / tiles_per_matrix;
      const int64_t tile = t % tiles_per_matrix;
      const int64_t r0 = tile / col_tiles * kTile, c0 = tile % col_tiles * kTile;
      int64_t s_off = 0, d_off = 0;
      for (int d = nd - 3; d >= 0; --d) {
        const int64_t i = m % loop.size(d);
        m /= loop.size(d);
        s_off += i * loop.stride(1, d);
        d_off += i * loop.stride(0, d);
      }
      transpose_tile(src + s_off + r0 + c0 * s_col, s_col, dst + d_off + r0 * d_row + c0, d_row,
                     std::min(kTile, rows - r0), std::min(kTile, cols - c0));
    }
  });
}

bool is_transpose(const StridedLoop<2>& loop) {
  const int nd = loop.dims();
  return nd >= 2 && loop.inner() >= 8 && loop.inner_stride(0) == 1 && loop.inner_stride(1) != 1 &&
         loop.stride(1, nd - 2) == 1 && loop.size(nd - 2) >= 8;
}

template <class T>
void transpose_copy_bits(Context& ctx, const StridedLoop<2>& loop, const void* src, void* dst) {
  transpose_copy(ctx, loop, static_cast<const T*>(src), static_cast<T*>(dst));
}

}  // namespace
}  // namespace cpu

void CpuBackend::copy(Context& ctx, const Tensor& src, Tensor& dst) {
  using namespace cpu;
  const StridedLoop<2> loop(dst.shape(), {&dst.strides(), &src.strides()});
  if (loop.numel() == 0) return;
  if (src.dtype() == dst.dtype() && is_transpose(loop)) {
    // Same dtype: move bits of the element's size.
    switch (dtype_size(src.dtype())) {
      case 1: return transpose_copy_bits<uint8_t>(ctx, loop, src.raw(), dst.raw());
      case 2: return transpose_copy_bits<uint16_t>(ctx, loop, src.raw(), dst.raw());
      case 4: return transpose_copy_bits<uint32_t>(ctx, loop, src.raw(), dst.raw());
      case 8: return transpose_copy_bits<uint64_t>(ctx, loop, src.raw(), dst.raw());
    }
  }
  with_type(src.dtype(), [&]<class S>() {
    with_type(dst.dtype(), [&]<class D>() {
      const S* s = static_cast<const S*>(src.raw());
      D* d = static_cast<D*>(dst.raw());
      const int64_t ss = loop.inner_stride(1), ds = loop.inner_stride(0);
      loop.parallel_runs(ctx, kStreamGrain, [&](const std::array<int64_t, 2>& off, int64_t len) {
        convert_run(s + off[1], ss, d + off[0], ds, len);
      });
    });
  });
}

void CpuBackend::fill(Context& ctx, Tensor& dst, double value) {
  using namespace cpu;
  const StridedLoop<1> loop(dst.shape(), {&dst.strides()});
  if (loop.numel() == 0) return;
  with_type(dst.dtype(), [&]<class D>() {
    const D v = convert<D>(value);
    D* d = static_cast<D*>(dst.raw());
    const int64_t ds = loop.inner_stride(0);
    loop.parallel_runs(ctx, kStreamGrain, [&](const std::array<int64_t, 1>& off, int64_t len) {
      D* p = d + off[0];
      if (ds == 1) {
        std::fill(p, p + len, v);
      } else {
        for (int64_t i = 0; i < len; ++i) p[i * ds] = v;
      }
    });
  });
}

// Output row (n, c, oh) repeats input row (n, c, oh / sh), each element sw times: one row is
// expanded once, then copied for the other sh - 1 output rows.
void CpuBackend::upsample_nearest2d(Context& ctx, const Tensor& x, Tensor& out) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = out.size(2), OW = out.size(3);
  if (out.numel() == 0) return;
  const int64_t sh = OH / H, sw = OW / W;
  const float* xp = static_cast<const float*>(x.raw());
  float* yp = static_cast<float*>(out.raw());
  const int64_t grain = std::max<int64_t>(1, cpu::kStreamGrain / (OW * sh));
  ctx.pool().parallel_for(N * C * H, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t h = r % H, c = r / H % C, n = r / H / C;
      const float* src = xp + n * x.stride(0) + c * x.stride(1) + h * x.stride(2);
      const int64_t sx = x.stride(3);
      float* dst = yp + ((n * C + c) * OH + h * sh) * OW;
      if (sw == 2) {
        for (int64_t w = 0; w < W; ++w) dst[2 * w] = dst[2 * w + 1] = src[w * sx];
      } else {
        for (int64_t w = 0; w < W; ++w)
          for (int64_t k = 0; k < sw; ++k) dst[w * sw + k] = src[w * sx];
      }
      for (int64_t k = 1; k < sh; ++k) std::memcpy(dst + k * OW, dst, sizeof(float) * OW);
    }
  });
}

}  // namespace easel
