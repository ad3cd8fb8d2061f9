// Normalisation op front ends: group norm, layer norm, RMS norm, softmax.
#include "ops/device_check.h"
#include "ops/ops.h"

namespace easel::ops {
namespace {

void check_input(const Context& ctx, const char* op, const Tensor& x, int min_dims) {
  EASEL_CHECK(x.defined(), op, ": input is undefined");
  check_device(ctx, op, "input", x);
  EASEL_CHECK(x.dtype() == DType::F32, op, ": input must be f32, got ", x.describe());
  EASEL_CHECK(x.dim() >= min_dims, op, ": input needs at least ", min_dims, " dimensions, got ", x.describe());
}

// An optional affine parameter: undefined, or a [size] vector in f32, f16 or bf16.
void check_param(const Context& ctx, const char* op, const char* name, const Tensor& p, int64_t size,
                 const Tensor& x) {
  if (!p.defined()) return;
  check_device(ctx, op, name, p);
  EASEL_CHECK(p.dtype() == DType::F32 || p.dtype() == DType::F16 || p.dtype() == DType::BF16, op, ": ", name,
              " must be f32, f16 or bf16, got ", p.describe());
  EASEL_CHECK(p.dim() == 1 && p.size(0) == size, op, ": ", name, " must be [", size, "] for input ", x.describe(),
              ", got ", p.describe());
}

}  // namespace

Tensor group_norm(Context& ctx, const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, float eps) {
  check_input(ctx, "group_norm", x, 2);
  const int64_t C = x.size(1);
  EASEL_CHECK(groups > 0 && C % groups == 0, "group_norm: ", C, " channels of ", x.describe(),
              " do not split into ", groups, " groups");
  check_param(ctx, "group_norm", "weight", weight, C, x);
  check_param(ctx, "group_norm", "bias", bias, C, x);
  Tensor out = ctx.empty(x.shape(), DType::F32);
  ctx.backend().group_norm(ctx, x, weight, bias, groups, eps, out);
  return out;
}

Tensor layer_norm(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  check_input(ctx, "layer_norm", x, 1);
  check_param(ctx, "layer_norm", "weight", weight, x.size(-1), x);
  check_param(ctx, "layer_norm", "bias", bias, x.size(-1), x);
  Tensor out = ctx.empty(x.shape(), DType::F32);
  ctx.backend().layer_norm(ctx, x, weight, bias, eps, out);
  return out;
}

Tensor rms_norm(Context& ctx, const Tensor& x, const Tensor& weight, float eps) {
  check_input(ctx, "rms_norm", x, 1);
  check_param(ctx, "rms_norm", "weight", weight, x.size(-1), x);
  Tensor out = ctx.empty(x.shape(), DType::F32);
  ctx.backend().rms_norm(ctx, x, weight, eps, out);
  return out;
}

// The backend normalises the last dimension; any other dimension is moved there and back.
Tensor softmax(Context& ctx, const Tensor& x, int dim) {
  check_input(ctx, "softmax", x, 1);
  EASEL_CHECK(dim >= -x.dim() && dim < x.dim(), "softmax: dim ", dim, " out of range for ", x.describe());
  const int d = normalize_dim(dim, x.dim());
  const int last = x.dim() - 1;
  if (d == last) {
    Tensor out = ctx.empty(x.shape(), DType::F32);
    ctx.backend().softmax(ctx, x, out);
    return out;
  }
  const Tensor moved = contiguous(ctx, x.transpose(d, last));
  Tensor out = ctx.empty(moved.shape(), DType::F32);
  ctx.backend().softmax(ctx, moved, out);
  return contiguous(ctx, out.transpose(d, last));
}

}  // namespace easel::ops
