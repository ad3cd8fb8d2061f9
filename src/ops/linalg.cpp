// Front ends of the linear-algebra ops: check shapes and dtypes (messages name the op and the
// tensors), compute the output shape, allocate it and hand plain views to the backend.
#include <algorithm>
#include <cmath>
#include <string>

#include "ops/device_check.h"
#include "ops/ops.h"

namespace easel::ops {
namespace {

bool is_weight_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

void check_activation(const Context& ctx, const char* op, const char* name, const Tensor& t, int min_dim,
                      int max_dim) {
  EASEL_CHECK(t.defined(), op, ": ", name, " is undefined");
  check_device(ctx, op, name, t);
  EASEL_CHECK(t.dtype() == DType::F32, op, ": ", name, " must be f32, got ", t.describe());
  EASEL_CHECK(t.dim() >= min_dim && t.dim() <= max_dim, op, ": ", name, " must have ",
              min_dim == max_dim ? std::to_string(min_dim) : cat(min_dim, " to ", max_dim), " dimensions, got ",
              t.describe());
}

void check_weight(const Context& ctx, const char* op, const char* name, const Tensor& t) {
  EASEL_CHECK(t.defined(), op, ": ", name, " is undefined");
  check_device(ctx, op, name, t);
  EASEL_CHECK(is_weight_dtype(t.dtype()), op, ": ", name, " must be f32, f16 or bf16, got ", t.describe());
}

void check_bias(const Context& ctx, const char* op, const Tensor& bias, int64_t n, const Tensor& w) {
  if (!bias.defined()) return;
  check_weight(ctx, op, "bias", bias);
  EASEL_CHECK(bias.dim() == 1 && bias.size(0) == n, op, ": bias ", bias.describe(), " does not match weight ",
              w.describe(), " (expected [", n, "])");
}

// Numpy broadcasting of two batch shapes; nullopt-like failure reported by the caller.
bool broadcast_shapes(const Shape& a, const Shape& b, Shape& out) {
  const int n = std::max(a.size(), b.size());
  out = Shape();
  for (int i = 0; i < n; ++i) {
    const int ia = i - (n - a.size()), ib = i - (n - b.size());
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) return false;
    out.push_back(da == 1 ? db : da);
  }
  return true;
}

Shape leading(const Tensor& t, int keep_last) {
  Shape s;
  for (int i = 0; i < t.dim() - keep_last; ++i) s.push_back(t.size(i));
  return s;
}

Shape append(Shape s, std::initializer_list<int64_t> tail) {
  for (int64_t d : tail) s.push_back(d);
  return s;
}

// `t` (already expanded to batch + [R, C]) as a 3-d [P, R, C] view without copying, where the
// batch dimensions allow it: all broadcast (stride 0), or contiguous. Undefined otherwise.
Tensor batch3(const Tensor& t, int64_t P) {
  const int nb = t.dim() - 2;
  bool broadcast = true;
  for (int i = 0; i < nb; ++i) broadcast = broadcast && (t.stride(i) == 0 || t.size(i) == 1);
  if (broadcast) {
    Tensor m = t;
    for (int i = 0; i < nb; ++i) m = m.select(0, 0);
    return m.unsqueeze(0).expand({P, t.size(-2), t.size(-1)});
  }
  if (t.is_contiguous()) return t.view({P, t.size(-2), t.size(-1)});
  return {};
}

}  // namespace

Tensor linear(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_activation(ctx, "linear", "x", x, 1, kMaxDims);
  check_weight(ctx, "linear", "weight", w);
  EASEL_CHECK(w.dim() == 2, "linear: weight must be [out, in], got ", w.describe());
  const int64_t K = w.size(1), N = w.size(0);
  EASEL_CHECK(x.size(-1) == K, "linear: x ", x.describe(), " has ", x.size(-1), " features but weight ",
              w.describe(), " takes ", K);
  check_bias(ctx, "linear", bias, N, w);

  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 1] = N;
  Tensor out = ctx.empty(out_shape);
  if (out.numel() == 0) return out;
  const int64_t M = out.numel() / N;
  // The backend reads x as a plain [M, K] matrix and w in its stored layout.
  const Tensor xc = contiguous(ctx, x);
  const Tensor wc = contiguous(ctx, w);
  Tensor out2 = out.view({M, N});
  ctx.backend().linear(ctx, xc.view({M, K}), wc, bias, out2);
  return out;
}

Tensor matmul(Context& ctx, const Tensor& a, const Tensor& b, float alpha) {
  check_activation(ctx, "matmul", "a", a, 2, kMaxDims);
  check_activation(ctx, "matmul", "b", b, 2, kMaxDims);
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  EASEL_CHECK(b.size(-2) == K, "matmul: cannot multiply ", a.describe(), " by ", b.describe(), ": inner sizes ", K,
              " and ", b.size(-2), " differ");
  Shape batch;
  EASEL_CHECK(broadcast_shapes(leading(a, 2), leading(b, 2), batch), "matmul: batch dimensions of ", a.describe(),
              " and ", b.describe(), " do not broadcast");
  EASEL_CHECK(batch.size() + 2 <= kMaxDims, "matmul: too many batch dimensions");
  Tensor out = ctx.empty(append(batch, {M, N}));
  if (out.numel() == 0) return out;

  const Tensor ae = a.expand(append(batch, {M, K}));
  const Tensor be = b.expand(append(batch, {K, N}));
  const int64_t P = batch.numel();
  Tensor a3 = batch3(ae, P), b3 = batch3(be, P);
  if (a3.defined() && b3.defined()) {
    if (P > 1 && b3.stride(0) == 0 && a.is_contiguous() && a.numel() == P * M * K) {
      // One weight for every batch entry: a single GEMM over all P * M rows.
      Tensor out2 = out.view({1, P * M, N});
      ctx.backend().matmul(ctx, a.view({1, P * M, K}), b3.narrow(0, 0, 1), alpha, out2);
    } else {
      Tensor out3 = out.view({P, M, N});
      ctx.backend().matmul(ctx, a3, b3, alpha, out3);
    }
    return out;
  }
  // Batch strides the backend's single batch stride cannot express (e.g. permuted [B, H, N, D]
  // views): one call per index of the outer batch dimensions, the last one as the batch.
  const int nb = batch.size();
  const int64_t inner = batch[nb - 1], outer = P / inner;
  Tensor out3 = out.view({outer, inner, M, N});
  for (int64_t o = 0; o < outer; ++o) {
    Tensor ai = ae, bi = be;
    int64_t rest = o;
    for (int d = nb - 2; d >= 0; --d) {
      const int64_t idx = rest % batch[d];
      rest /= batch[d];
      ai = ai.select(d, idx);
      bi = bi.select(d, idx);
    }
    Tensor oi = out3.select(0, o);
    ctx.backend().matmul(ctx, ai, bi, alpha, oi);
  }
  return out;
}

Tensor conv2d(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  check_activation(ctx, "conv2d", "input", x, 4, 4);
  check_weight(ctx, "conv2d", "weight", w);
  EASEL_CHECK(w.dim() == 4, "conv2d: weight must be [out, in/groups, kh, kw], got ", w.describe());
  EASEL_CHECK(p.groups >= 1, "conv2d: groups must be >= 1, got ", p.groups);
  EASEL_CHECK(p.stride_h >= 1 && p.stride_w >= 1, "conv2d: stride must be >= 1, got ", p.stride_h, "x", p.stride_w);
  EASEL_CHECK(p.dilation_h >= 1 && p.dilation_w >= 1, "conv2d: dilation must be >= 1, got ", p.dilation_h, "x",
              p.dilation_w);
  EASEL_CHECK(p.pad_h >= 0 && p.pad_w >= 0, "conv2d: padding must be >= 0, got ", p.pad_h, "x", p.pad_w);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), kh = w.size(2), kw = w.size(3);
  EASEL_CHECK(C % p.groups == 0 && O % p.groups == 0, "conv2d: groups = ", p.groups, " must divide the ", C,
              " input and ", O, " output channels (input ", x.describe(), ", weight ", w.describe(), ")");
  EASEL_CHECK(w.size(1) * p.groups == C, "conv2d: input ", x.describe(), " has ", C, " channels but weight ",
              w.describe(), " with groups = ", p.groups, " expects ", w.size(1) * p.groups);
  check_bias(ctx, "conv2d", bias, O, w);
  const int64_t span_h = p.dilation_h * (kh - 1) + 1, span_w = p.dilation_w * (kw - 1) + 1;
  EASEL_CHECK(H + 2 * p.pad_h >= span_h && W + 2 * p.pad_w >= span_w, "conv2d: input ", x.describe(),
              " padded by ", p.pad_h, "x", p.pad_w, " is smaller than the ", span_h, "x", span_w,
              " (dilated) kernel of weight ", w.describe());
  const int64_t Ho = (H + 2 * p.pad_h - span_h) / p.stride_h + 1;
  const int64_t Wo = (W + 2 * p.pad_w - span_w) / p.stride_w + 1;
  Tensor out = ctx.empty({N, O, Ho, Wo});
  if (out.numel() == 0) return out;
  ctx.backend().conv2d(ctx, x, w, bias, p, out);
  return out;
}

Tensor attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                 const AttentionParams& p) {
  check_activation(ctx, "attention", "q", q, 4, 4);
  check_activation(ctx, "attention", "k", k, 4, 4);
  check_activation(ctx, "attention", "v", v, 4, 4);
  const int64_t B = q.size(0), H = q.size(1), Nq = q.size(2), D = q.size(3);
  const int64_t Nk = k.size(2), Dv = v.size(3);
  EASEL_CHECK(k.size(0) == B && k.size(1) == H && v.size(0) == B && v.size(1) == H, "attention: q ", q.describe(),
              ", k ", k.describe(), " and v ", v.describe(), " must share batch and heads [B, H, N, D]");
  EASEL_CHECK(k.size(3) == D, "attention: q ", q.describe(), " and k ", k.describe(), " have different head sizes");
  EASEL_CHECK(v.size(2) == Nk, "attention: k ", k.describe(), " and v ", v.describe(),
              " have different sequence lengths");
  EASEL_CHECK(std::isfinite(p.scale), "attention: scale must be finite, got ", p.scale);
  const Shape scores{B, H, Nq, Nk};
  Tensor m;
  if (mask.defined()) {
    check_device(ctx, "attention", "mask", mask);
    EASEL_CHECK(mask.dtype() == DType::F32, "attention: mask must be an additive f32 mask, got ", mask.describe());
    Shape broadcast;
    EASEL_CHECK(mask.dim() <= 4 && broadcast_shapes(mask.shape(), scores, broadcast) && broadcast == scores,
                "attention: mask ", mask.describe(), " does not broadcast to the scores ", scores.str());
    m = mask.expand(scores);
  }
  Tensor out = ctx.empty({B, H, Nq, Dv});
  if (out.numel() == 0) return out;
  ctx.backend().attention(ctx, q, k, v, m, p, out);
  return out;
}

}  // namespace easel::ops
