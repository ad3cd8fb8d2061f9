// The two linear combinations k-diffusion's update rules and the model wrappers are written with,
// as torch computes them: each factor applied in f32 (a double factor is rounded to f32 first),
// then the sum.
#pragma once

#include "core/context.h"
#include "core/tensor.h"
#include "ops/ops.h"

namespace easel::sampling {

// a * x + b * y
inline Tensor axpby(Context& ctx, double a, const Tensor& x, double b, const Tensor& y) {
  return ops::add(ctx, ops::affine(ctx, x, static_cast<float>(a), 0.0f), ops::affine(ctx, y, static_cast<float>(b), 0.0f));
}
// x + a * y
inline Tensor xpay(Context& ctx, const Tensor& x, double a, const Tensor& y) {
  return ops::add(ctx, x, ops::affine(ctx, y, static_cast<float>(a), 0.0f));
}

}  // namespace easel::sampling
