// Elementwise unary and binary kernels of the CPU backend (Highway SIMD, static dispatch: the
// build targets the host CPU).
//
// Every layout goes through the same vector kernels so that a result never depends on the
// layout of its inputs: contiguous runs are processed in place, a stride-0 (broadcast) operand
// becomes a splatted scalar, and any other stride is gathered into a small buffer first.
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/strided.h"
#include "backends/cpu/vec_math.h"

namespace easel {
namespace cpu {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using vec::DF;
using vec::kDF;
using vec::VF;
using vec::exp_f32;
using vec::gelu_erf_f32;
using vec::gelu_tanh_f32;
using vec::sigmoid_f32;
using vec::silu_f32;
using vec::tanh_f32;
constexpr size_t kMaxLanes = hn::MaxLanes(kDF);
// Elements gathered at a time on the strided path.
constexpr int64_t kGatherBlock = 256;

// Max and min that propagate NaN from either side, as torch does (x86 max/min do not).
VF max_nan(VF a, VF b) {
  return hn::IfThenElse(hn::IsNaN(a), a, hn::IfThenElse(hn::IsNaN(b), b, hn::Max(a, b)));
}
VF min_nan(VF a, VF b) {
  return hn::IfThenElse(hn::IsNaN(a), a, hn::IfThenElse(hn::IsNaN(b), b, hn::Min(a, b)));
}

// ---------------------------------------------------------------------------------------------
// Unary

// Applies f to n contiguous floats; the tail goes through a padded buffer so f only ever sees
// whole vectors.
template <class F>
void map_unary(const float* x, float* y, int64_t n, const F& f) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(kDF));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f(hn::LoadU(kDF, x + i)), kDF, y + i);
  if (i < n) {
    alignas(64) float buf[kMaxLanes] = {};
    std::memcpy(buf, x + i, sizeof(float) * (n - i));
    hn::Store(f(hn::Load(kDF, buf)), kDF, buf);
    std::memcpy(y + i, buf, sizeof(float) * (n - i));
  }
}

template <class F>
void unary_loop(Context& ctx, const Tensor& x, Tensor& out, const F& f) {
  const StridedLoop<2> loop(out.shape(), {&out.strides(), &x.strides()});
  const float* xp = static_cast<const float*>(x.raw());
  float* yp = static_cast<float*>(out.raw());
  const int64_t sx = loop.inner_stride(1), sy = loop.inner_stride(0);
  loop.parallel_runs(ctx, kStreamGrain, [&](const std::array<int64_t, 2>& off, int64_t len) {
    if (sx == 1 && sy == 1) return map_unary(xp + off[1], yp + off[0], len, f);
    // Strided (or broadcast) operands: gather, compute, scatter.
    alignas(64) float in[kGatherBlock], res[kGatherBlock];
    for (int64_t j = 0; j < len; j += kGatherBlock) {
      const int64_t m = std::min(kGatherBlock, len - j);
      for (int64_t i = 0; i < m; ++i) in[i] = xp[off[1] + (j + i) * sx];
      map_unary(in, res, m, f);
      for (int64_t i = 0; i < m; ++i) yp[off[0] + (j + i) * sy] = res[i];
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Binary

// One input of a binary run: contiguous floats, or one value repeated (a stride-0 operand).
struct Operand {
  const float* p;
  bool scalar;
};

template <class F>
void map_binary(Operand a, Operand b, float* y, int64_t n, const F& f) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(kDF));
  auto load = [&](const Operand& o, int64_t i) { return o.scalar ? hn::Set(kDF, *o.p) : hn::LoadU(kDF, o.p + i); };
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f(load(a, i), load(b, i)), kDF, y + i);
  if (i < n) {
    alignas(64) float ba[kMaxLanes] = {}, bb[kMaxLanes] = {};
    std::memcpy(ba, a.scalar ? a.p : a.p + i, sizeof(float) * (a.scalar ? 1 : n - i));
    std::memcpy(bb, b.scalar ? b.p : b.p + i, sizeof(float) * (b.scalar ? 1 : n - i));
    const VF va = a.scalar ? hn::Set(kDF, *a.p) : hn::Load(kDF, ba);
    const VF vb = b.scalar ? hn::Set(kDF, *b.p) : hn::Load(kDF, bb);
    hn::Store(f(va, vb), kDF, ba);
    std::memcpy(y + i, ba, sizeof(float) * (n - i));
  }
}

template <class F>
void binary_loop(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out, const F& f) {
  const StridedLoop<3> loop(out.shape(), {&out.strides(), &a.strides(), &b.strides()});
  const float* ap = static_cast<const float*>(a.raw());
  const float* bp = static_cast<const float*>(b.raw());
  float* yp = static_cast<float*>(out.raw());
  const int64_t sy = loop.inner_stride(0), sa = loop.inner_stride(1), sb = loop.inner_stride(2);
  const bool direct = sy == 1 && (sa == 0 || sa == 1) && (sb == 0 || sb == 1);
  loop.parallel_runs(ctx, kStreamGrain, [&](const std::array<int64_t, 3>& off, int64_t len) {
    if (direct) return map_binary({ap + off[1], sa == 0}, {bp + off[2], sb == 0}, yp + off[0], len, f);
    alignas(64) float ga[kGatherBlock], gb[kGatherBlock], res[kGatherBlock];
    for (int64_t j = 0; j < len; j += kGatherBlock) {
      const int64_t m = std::min(kGatherBlock, len - j);
      for (int64_t i = 0; i < m; ++i) ga[i] = ap[off[1] + (j + i) * sa];
      for (int64_t i = 0; i < m; ++i) gb[i] = bp[off[2] + (j + i) * sb];
      map_binary({ga, false}, {gb, false}, res, m, f);
      for (int64_t i = 0; i < m; ++i) yp[off[0] + (j + i) * sy] = res[i];
    }
  });
}

}  // namespace
}  // namespace cpu

void CpuBackend::unary(Context& ctx, UnaryOp op, const Tensor& x, float a, float b, Tensor& out) {
  using namespace cpu;
  const auto run = [&](auto f) { unary_loop(ctx, x, out, f); };
  switch (op) {
    case UnaryOp::Relu:
      return run([](VF v) { return hn::IfThenElse(hn::IsNaN(v), v, hn::Max(v, hn::Zero(kDF))); });
    case UnaryOp::Silu:
      return run([](VF v) { return silu_f32(v); });
    case UnaryOp::GeluErf:
      return run([](VF v) { return gelu_erf_f32(v); });
    case UnaryOp::GeluTanh:
      return run([](VF v) { return gelu_tanh_f32(v); });
    case UnaryOp::Tanh:
      return run([](VF v) { return tanh_f32(v); });
    case UnaryOp::Sigmoid:
      return run([](VF v) { return sigmoid_f32(v); });
    case UnaryOp::Exp:
      return run([](VF v) { return exp_f32(v); });
    case UnaryOp::Sqrt:
      return run([](VF v) { return hn::Sqrt(v); });
    case UnaryOp::Affine:
      return run([va = hn::Set(kDF, a), vb = hn::Set(kDF, b)](VF v) { return hn::MulAdd(v, va, vb); });
    case UnaryOp::Clamp:
      return run([lo = hn::Set(kDF, a), hi = hn::Set(kDF, b)](VF v) {
        return hn::IfThenElse(hn::IsNaN(v), v, hn::Min(hn::Max(v, lo), hi));
      });
  }
  throw Exception(cat("unary: unknown op ", static_cast<int>(op)));
}

void CpuBackend::binary(Context& ctx, BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  using namespace cpu;
  const auto run = [&](auto f) { binary_loop(ctx, a, b, out, f); };
  switch (op) {
    case BinaryOp::Add:
      return run([](VF x, VF y) { return hn::Add(x, y); });
    case BinaryOp::Sub:
      return run([](VF x, VF y) { return hn::Sub(x, y); });
    case BinaryOp::Mul:
      return run([](VF x, VF y) { return hn::Mul(x, y); });
    case BinaryOp::Div:
      return run([](VF x, VF y) { return hn::Div(x, y); });
    case BinaryOp::Max:
      return run([](VF x, VF y) { return max_nan(x, y); });
    case BinaryOp::Min:
      return run([](VF x, VF y) { return min_nan(x, y); });
  }
  throw Exception(cat("binary: unknown op ", static_cast<int>(op)));
}

}  // namespace easel
