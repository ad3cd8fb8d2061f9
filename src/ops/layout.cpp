// Layout op front ends: everything that moves or converts elements without arithmetic. All of
// them reduce to the backend's strided copy and fill (plus nearest upsampling).
#include <algorithm>

#include "ops/device_check.h"
#include "ops/ops.h"

namespace easel::ops {
namespace {

void check_input(const Context& ctx, const char* op, const Tensor& x, const char* what = "input") {
  EASEL_CHECK(x.defined(), op, ": ", what, " is undefined");
  check_device(ctx, op, what, x);
}

// True when src can be expanded to `shape` (numpy rules, src never has more dimensions).
bool broadcasts_to(const Shape& src, const Shape& shape) {
  if (src.size() > shape.size()) return false;
  const int lead = shape.size() - src.size();
  for (int i = 0; i < src.size(); ++i)
    if (src[i] != 1 && src[i] != shape[lead + i]) return false;
  return true;
}

}  // namespace

Tensor upsample_nearest2d(Context& ctx, const Tensor& x, int scale) {
  check_input(ctx, "upsample_nearest2d", x);
  EASEL_CHECK(x.dtype() == DType::F32 && x.dim() == 4, "upsample_nearest2d: input must be f32 NCHW, got ",
              x.describe());
  EASEL_CHECK(scale >= 1, "upsample_nearest2d: scale must be a positive integer, got ", scale);
  Tensor out = ctx.empty({x.size(0), x.size(1), x.size(2) * scale, x.size(3) * scale}, DType::F32);
  ctx.backend().upsample_nearest2d(ctx, x, out);
  return out;
}

Tensor concat(Context& ctx, std::span<const Tensor> xs, int dim) {
  EASEL_CHECK(!xs.empty(), "concat: no tensors to concatenate");
  const Tensor& first = xs[0];
  check_input(ctx, "concat", first);
  EASEL_CHECK(dim >= -first.dim() && dim < first.dim(), "concat: dim ", dim, " out of range for ", first.describe());
  const int d = normalize_dim(dim, first.dim());
  Shape shape = first.shape();
  shape[d] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    check_input(ctx, "concat", x);
    bool same = x.dtype() == first.dtype() && x.dim() == first.dim();
    for (int k = 0; same && k < x.dim(); ++k) same = k == d || x.size(k) == first.size(k);
    EASEL_CHECK(same, "concat along dim ", d, ": tensor ", i, " is ", x.describe(), ", which does not match ",
                first.describe(), " (all dtypes and all sizes but dim ", d, " must agree)");
    shape[d] += x.size(d);
  }
  Tensor out = ctx.empty(shape, first.dtype());
  int64_t offset = 0;
  for (const Tensor& x : xs) {
    if (x.size(d) == 0) continue;
    Tensor slot = out.narrow(d, offset, x.size(d));
    ctx.backend().copy(ctx, x, slot);
    offset += x.size(d);
  }
  return out;
}

Tensor contiguous(Context& ctx, const Tensor& x) {
  check_input(ctx, "contiguous", x);
  if (x.is_contiguous()) return x;
  Tensor out = ctx.empty(x.shape(), x.dtype());
  ctx.backend().copy(ctx, x, out);
  return out;
}

Tensor permute(Context& ctx, const Tensor& x, std::initializer_list<int> dims) {
  check_input(ctx, "permute", x);
  return contiguous(ctx, x.permute(dims));
}

// Like torch's .to(dtype): x itself when it already has that dtype.
Tensor cast(Context& ctx, const Tensor& x, DType dtype) {
  check_input(ctx, "cast", x);
  if (x.dtype() == dtype) return x;
  Tensor out = ctx.empty(x.shape(), dtype);
  ctx.backend().copy(ctx, x, out);
  return out;
}

// Constant padding: pads[2i], pads[2i+1] widen (or, negative, crop) dimension dim-1-i at its
// start and end. The output is filled with `value`, then the kept part of x is copied into it.
Tensor pad(Context& ctx, const Tensor& x, std::span<const int64_t> pads, float value) {
  check_input(ctx, "pad", x);
  EASEL_CHECK(pads.size() % 2 == 0 && static_cast<int>(pads.size()) <= 2 * x.dim(), "pad: ", pads.size(),
              " pad values for ", x.describe(), ": need an even number, at most twice its dimensions");
  Shape shape = x.shape();
  Tensor src = x;
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int d = x.dim() - 1 - static_cast<int>(i);
    const int64_t before = pads[2 * i], after = pads[2 * i + 1];
    shape[d] = x.size(d) + before + after;
    EASEL_CHECK(shape[d] >= 0, "pad: padding (", before, ", ", after, ") of dimension ", d, " of ", x.describe(),
                " leaves a negative size");
    const int64_t keep_begin = std::min(x.size(d), std::max<int64_t>(0, -before));
    const int64_t keep_end = x.size(d) - std::max<int64_t>(0, -after);
    src = src.narrow(d, keep_begin, std::max<int64_t>(0, keep_end - keep_begin));
  }
  Tensor out = full(ctx, shape, value, x.dtype());
  if (src.numel() == 0) return out;
  Tensor dst = out;
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int d = x.dim() - 1 - static_cast<int>(i);
    dst = dst.narrow(d, std::max<int64_t>(0, pads[2 * i]), src.size(d));
  }
  ctx.backend().copy(ctx, src, dst);
  return out;
}

Tensor zeros(Context& ctx, const Shape& shape, DType dtype) { return full(ctx, shape, 0.0f, dtype); }

Tensor full(Context& ctx, const Shape& shape, float value, DType dtype) {
  Tensor out = ctx.empty(shape, dtype);
  ctx.backend().fill(ctx, out, value);
  return out;
}

// dst = src, src broadcast to dst's shape and converted to dst's dtype (torch's Tensor.copy_).
void copy_(Context& ctx, const Tensor& src, Tensor& dst) {
  check_input(ctx, "copy_", src, "source");
  check_input(ctx, "copy_", dst, "destination");
  EASEL_CHECK(!dst.read_only(), "copy_: cannot write into read-only ", dst.describe(), " (a mapped weight?)");
  EASEL_CHECK(broadcasts_to(src.shape(), dst.shape()), "copy_: source ", src.describe(),
              " does not broadcast to destination ", dst.describe());
  const Tensor from = src.expand(dst.shape());
  if (src.storage() == dst.storage()) {
    const bool same_view = src.byte_offset() == dst.byte_offset() && from.strides() == dst.strides() &&
                           src.dtype() == dst.dtype();
    if (same_view) return;
    // Another view of the same memory: read it all before writing any of it.
    Tensor tmp = ctx.empty(src.shape(), src.dtype());
    ctx.backend().copy(ctx, src, tmp);
    ctx.backend().copy(ctx, tmp.expand(dst.shape()), dst);
    return;
  }
  ctx.backend().copy(ctx, from, dst);
}

}  // namespace easel::ops
