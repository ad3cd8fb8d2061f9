// GEMM: linear (x · wᵀ + bias) and batched matmul, both on oneDNN's matmul primitive.
//
// Why oneDNN and not OpenBLAS: on the 2-core AVX2 dev machine both reach ~0.85 of peak at SD
// sizes, but for few rows (M = 77 text tokens, K = 768, N = 320) oneDNN runs ~160 GFLOP/s against
// OpenBLAS's ~50; oneDNN also fuses the bias into the output write (a separate bias pass costs
// ~8% at M = 4096) and shares its OpenMP runtime with the convolutions, so only one foreign thread
// pool ever spins. The weight is handed over in its stored layout, w[N, K] seen as a K x N matrix
// with strides {1, K}: no f32 weight is ever copied or reordered.
//
// f16/bf16 weights: oneDNN 2.6 has only reference (very slow) f16/bf16 matmul without AVX-512,
// so the weight is converted to f32 a panel of rows at a time into a bounded scratch buffer
// (kPanelBytes), and each panel runs as its own matmul into its slice of out's columns. The
// conversion reads the weight once per call, which is small next to the 2·M flops each weight
// element takes part in, and no full f32 copy of a model ever exists. With few rows
// (M <= kDirectRows: token-by-token decoding, short prompts) there is too little to amortise it
// against: a Highway kernel reads the weight in its stored dtype and widens it in registers
// instead of writing and re-reading a 4-byte copy. Measured at K = 3072, N = 768: M = 1 runs in
// 0.11 ms (0.99 ms through a panel), M = 16 at 86 GFLOP/s (55); the panel path wins from ~48 rows.
#include <algorithm>
#include <bit>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include <hwy/highway.h>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_impl.h"
#include "core/half.h"

namespace easel {
namespace {

namespace hn = hwy::HWY_NAMESPACE;

using dnnl::memory;
using Dims = memory::dims;

// Largest f32 weight panel converted at a time: large enough that each panel is a full-speed
// GEMM (the activation is re-packed once per panel), small enough to stay cache-friendly.
constexpr size_t kPanelBytes = size_t(4) << 20;

// One operand of a matmul: a float buffer seen as `dims` with element `strides`.
struct MatrixDesc {
  const float* data;
  Dims dims;
  Dims strides;
  memory::desc desc() const { return memory::desc(dims, memory::data_type::f32, strides); }
};

// dst = alpha · src · weights (+ bias), with oneDNN's batch broadcasting. Returns false, doing
// nothing, when only oneDNN's reference implementation accepts these strides: the caller then
// gathers the operands into plain layouts and calls again.
bool run_matmul(Context& ctx, const dnnl::engine& engine, const MatrixDesc& src, const MatrixDesc& weights,
                const MatrixDesc* bias, float alpha, const MatrixDesc& dst) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  const memory::desc bias_desc = bias ? bias->desc() : memory::desc();
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src.desc(), weights.desc(), bias_desc, dst.desc()), attr,
                                      engine);
  } catch (const dnnl::error&) {
    return false;  // strides oneDNN does not describe at all (a broadcast row or column)
  }
  if (std::string_view(pd.impl_info_str()).starts_with("ref")) return false;

  std::vector<Tensor> keep;
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, cpu::wrap(src.desc(), engine, const_cast<float*>(src.data))},
      {DNNL_ARG_WEIGHTS, cpu::wrap(weights.desc(), engine, const_cast<float*>(weights.data))},
      {DNNL_ARG_DST, cpu::wrap(dst.desc(), engine, const_cast<float*>(dst.data))},
      {DNNL_ARG_SCRATCHPAD, cpu::scratch_memory(ctx, pd.scratchpad_desc(), engine, keep)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, cpu::wrap(bias_desc, engine, const_cast<float*>(bias->data)));
  dnnl::stream stream(engine);
  dnnl::matmul(pd).execute(stream, args);
  stream.wait();
  return true;
}

// Rows of x up to which half weights take the direct kernel rather than f32 panels.
constexpr int64_t kDirectRows = 32;

float widen(hwy::float16_t h) { return f16_to_f32(std::bit_cast<uint16_t>(h)); }
float widen(hwy::bfloat16_t b) { return bf16_to_f32(std::bit_cast<uint16_t>(b)); }

// out[m][n0], out[m][n0 + 1] for MR rows of x: two weight rows at a time, so each widened
// weight vector feeds MR FMAs and 2·MR chains hide the FMA latency.
template <int MR, class Half>
void dot_two_rows(const float* x, int64_t K, const Half* w0, const Half* w1, float* out, int64_t ldo) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<Half, decltype(df)> dh;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  hn::Vec<decltype(df)> acc[MR][2];
  for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = hn::Zero(df);
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    const auto a = hn::PromoteTo(df, hn::LoadU(dh, w0 + k)), b = hn::PromoteTo(df, hn::LoadU(dh, w1 + k));
    for (int m = 0; m < MR; ++m) {
      const auto xv = hn::LoadU(df, x + m * K + k);
      acc[m][0] = hn::MulAdd(xv, a, acc[m][0]);
      acc[m][1] = hn::MulAdd(xv, b, acc[m][1]);
    }
  }
  for (int m = 0; m < MR; ++m) {
    float s0 = hn::GetLane(hn::SumOfLanes(df, acc[m][0])), s1 = hn::GetLane(hn::SumOfLanes(df, acc[m][1]));
    for (int64_t t = k; t < K; ++t) {
      s0 += x[m * K + t] * widen(w0[t]);
      s1 += x[m * K + t] * widen(w1[t]);
    }
    out[m * ldo] += s0;
    out[m * ldo + 1] += s1;
  }
}

// out[M, N] (already holding the bias or 0) += x[M, K] · w[N, K]ᵀ for M <= kDirectRows, in
// parallel over the weight's rows; each task runs all rows of x, four at a time, against its
// block of weight rows while that block is in cache.
template <class Half>
void linear_direct(Context& ctx, const float* x, int64_t M, int64_t K, const Half* w, int64_t N, float* out) {
  auto rows = [&]<int MR>(int64_t m0, int64_t n0, int64_t n1) {
    const float* xm = x + m0 * K;
    float* om = out + m0 * N;
    for (int64_t n = n0; n < n1; n += 2) {
      if (n + 1 < N) {
        dot_two_rows<MR>(xm, K, w + n * K, w + (n + 1) * K, om + n, N);
      } else {  // an odd last row pairs with itself
        float tmp[8] = {};
        dot_two_rows<MR>(xm, K, w + n * K, w + n * K, tmp, 2);
        for (int m = 0; m < MR; ++m) om[m * N + n] += tmp[2 * m];
      }
    }
  };
  // 64 weight rows a task: enough work to amortise the scheduling.
  ctx.pool().parallel_for((N + 1) / 2, 32, [&](int64_t begin, int64_t end) {
    const int64_t n0 = 2 * begin, n1 = std::min(N, 2 * end);
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      switch (std::min<int64_t>(4, M - m0)) {
        case 1: rows.template operator()<1>(m0, n0, n1); break;
        case 2: rows.template operator()<2>(m0, n0, n1); break;
        case 3: rows.template operator()<3>(m0, n0, n1); break;
        default: rows.template operator()<4>(m0, n0, n1); break;
      }
    }
  });
}

// out[M, N] = bias (or 0): what a product over K = 0 leaves.
void fill_rows(float* out, int64_t M, int64_t N, const float* bias) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) out[m * N + n] = bias ? bias[n] : 0.0f;
}

// out[:, n0 : n0 + rows] = x · w[n0 : n0 + rows, :]ᵀ + bias[n0 : n0 + rows] for an f32 weight
// block with rows `w_row_stride` apart.
void linear_block(Context& ctx, const dnnl::engine& engine, const float* x, int64_t M, int64_t K, const float* w,
                  int64_t w_row_stride, int64_t rows, const float* bias, float* out, int64_t N) {
  const MatrixDesc src{x, {M, K}, {K, 1}};
  const MatrixDesc weights{w, {K, rows}, {1, w_row_stride}};
  const MatrixDesc dst{out, {M, rows}, {N, 1}};
  const MatrixDesc bias_desc{bias, {1, rows}, {rows, 1}};
  const bool ok = run_matmul(ctx, engine, src, weights, bias ? &bias_desc : nullptr, 1.0f, dst);
  EASEL_CHECK(ok, "linear: oneDNN has no fast matmul for x[", M, ", ", K, "] and w[", rows, ", ", K, "]");
}

}  // namespace

void CpuBackend::linear(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) {
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  if (M == 0 || N == 0) return;
  Tensor bias_f32;
  const float* b = cpu::f32_vector(ctx, bias, bias_f32);
  float* y = out.data<float>();
  if (K == 0) return fill_rows(y, M, N, b);

  cpu::DnnlThreads threads(ctx);
  const float* xp = x.data<float>();
  if (w.dtype() == DType::F32) return linear_block(ctx, impl_->engine, xp, M, K, w.data<float>(), K, N, b, y, N);

  if (M <= kDirectRows) {
    fill_rows(y, M, N, b);
    if (w.dtype() == DType::F16) return linear_direct(ctx, xp, M, K, static_cast<const hwy::float16_t*>(w.raw()), N, y);
    return linear_direct(ctx, xp, M, K, static_cast<const hwy::bfloat16_t*>(w.raw()), N, y);
  }
  // f16/bf16: convert and multiply one panel of weight rows at a time.
  const int64_t panel = std::clamp<int64_t>(int64_t(kPanelBytes / (K * sizeof(float))) / 16 * 16, 16, N);
  Tensor scratch = ctx.empty({panel, K}, DType::F32);
  float* wp = scratch.data<float>();
  const size_t row_bytes = dtype_bytes(w.dtype(), K);
  for (int64_t n0 = 0; n0 < N; n0 += panel) {
    const int64_t rows = std::min(panel, N - n0);
    cpu::convert_to_f32(ctx, static_cast<const std::byte*>(w.raw()) + n0 * row_bytes, w.dtype(), wp, rows * K);
    linear_block(ctx, impl_->engine, xp, M, K, wp, K, rows, b ? b + n0 : nullptr, y + n0, N);
  }
}

namespace {

// A 3-d f32 view as a oneDNN operand; a batch of stride 0 (or of one) becomes a broadcast batch
// of 1.
MatrixDesc operand(const Tensor& t) {
  const bool broadcast = t.size(0) == 1 || t.stride(0) == 0;
  return MatrixDesc{t.data<float>(), {broadcast ? 1 : t.size(0), t.size(1), t.size(2)},
                    {broadcast ? t.size(1) * t.size(2) : t.stride(0), t.stride(1), t.stride(2)}};
}

// oneDNN wants every stride positive even where the size is 1; 0 would be rejected.
void fix_unit_strides(MatrixDesc& m) {
  for (size_t i = 0; i < m.dims.size(); ++i)
    if (m.dims[i] == 1 && m.strides[i] == 0) m.strides[i] = 1;
}

}  // namespace

void CpuBackend::matmul(Context& ctx, const Tensor& a, const Tensor& b, float alpha, Tensor& out) {
  const int64_t batch = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
  if (out.numel() == 0) return;
  float* y = out.data<float>();
  if (K == 0) return fill_rows(y, batch * M, N, nullptr);

  cpu::DnnlThreads threads(ctx);
  MatrixDesc src = operand(a), weights = operand(b);
  fix_unit_strides(src);
  fix_unit_strides(weights);
  // oneDNN broadcasts a batch of 1 only against a real batch; when both operands are broadcast
  // (every output matrix is the same), compute the first and copy it.
  const bool same_for_all = src.dims[0] == 1 && weights.dims[0] == 1;
  const MatrixDesc dst{y, {same_for_all ? 1 : batch, M, N}, {M * N, N, 1}};
  if (!run_matmul(ctx, impl_->engine, src, weights, nullptr, alpha, dst)) {
    // Strides only the reference implementation handles (e.g. neither of the last two is 1):
    // gather both operands into plain row-major matrices.
    const Tensor ac = cpu::to_contiguous_f32(ctx, src.dims[0] == 1 ? a.narrow(0, 0, 1) : a);
    const Tensor bc = cpu::to_contiguous_f32(ctx, weights.dims[0] == 1 ? b.narrow(0, 0, 1) : b);
    const bool ok = run_matmul(ctx, impl_->engine, operand(ac), operand(bc), nullptr, alpha, dst);
    EASEL_CHECK(ok, "matmul: oneDNN has no fast matmul for ", a.describe(), " x ", b.describe());
  }
  if (same_for_all)
    for (int64_t i = 1; i < batch; ++i) std::memcpy(y + i * M * N, y, static_cast<size_t>(M * N) * sizeof(float));
}

}  // namespace easel
