// Elementwise op front ends: activations, affine/clamp, and broadcasting binary arithmetic.
#include <algorithm>

#include "ops/device_check.h"
#include "ops/ops.h"

namespace easel::ops {
namespace {

void check_f32(const Context& ctx, const char* op, const Tensor& x, const char* what = "input") {
  EASEL_CHECK(x.defined(), op, ": ", what, " is undefined");
  check_device(ctx, op, what, x);
  EASEL_CHECK(x.dtype() == DType::F32, op, ": ", what, " must be f32, got ", x.describe());
}

void check_writable(const char* op, const Tensor& x) {
  EASEL_CHECK(!x.read_only(), op, ": cannot write into read-only ", x.describe(), " (a mapped weight?)");
}

// True when a and b view overlapping bytes of one storage without being the same view, so that an
// in-place op writing a could change b before it is read.
bool partially_overlaps(const Tensor& a, const Tensor& b) {
  if (a.storage() != b.storage()) return false;
  if (a.byte_offset() == b.byte_offset() && a.strides() == b.strides() && a.dtype() == b.dtype()) return false;
  return true;  // conservative: any other view of the same storage may overlap
}

Tensor unary(Context& ctx, const char* op, UnaryOp kind, const Tensor& x, float a = 0, float b = 0) {
  check_f32(ctx, op, x);
  Tensor out = ctx.empty(x.shape(), DType::F32);
  ctx.backend().unary(ctx, kind, x, a, b, out);
  return out;
}

// x = f(x). Backends write contiguous outputs only: a strided x is computed aside and copied back.
void unary_inplace(Context& ctx, const char* op, UnaryOp kind, Tensor& x) {
  check_f32(ctx, op, x);
  check_writable(op, x);
  if (x.is_contiguous()) {
    ctx.backend().unary(ctx, kind, x, 0, 0, x);
    return;
  }
  Tensor tmp = unary(ctx, op, kind, x);
  ctx.backend().copy(ctx, tmp, x);
}

// numpy broadcasting: shapes align at the right; each pair of sizes must match or contain a 1.
Shape broadcast_shape(const char* op, const Tensor& a, const Tensor& b) {
  const int nd = std::max(a.dim(), b.dim());
  Shape shape;
  for (int i = 0; i < nd; ++i) {
    const int ia = i - (nd - a.dim()), ib = i - (nd - b.dim());
    const int64_t sa = ia >= 0 ? a.shape()[ia] : 1;
    const int64_t sb = ib >= 0 ? b.shape()[ib] : 1;
    EASEL_CHECK(sa == sb || sa == 1 || sb == 1, op, ": shapes of ", a.describe(), " and ", b.describe(),
                " do not broadcast (dimension ", i, ": ", sa, " vs ", sb, ")");
    shape.push_back(sa == 1 ? sb : sa);
  }
  return shape;
}

Tensor binary(Context& ctx, const char* op, BinaryOp kind, const Tensor& a, const Tensor& b) {
  check_f32(ctx, op, a, "first operand");
  check_f32(ctx, op, b, "second operand");
  const Shape shape = broadcast_shape(op, a, b);
  Tensor out = ctx.empty(shape, DType::F32);
  ctx.backend().binary(ctx, kind, a.expand(shape), b.expand(shape), out);
  return out;
}

}  // namespace

Tensor relu(Context& ctx, const Tensor& x) { return unary(ctx, "relu", UnaryOp::Relu, x); }
Tensor silu(Context& ctx, const Tensor& x) { return unary(ctx, "silu", UnaryOp::Silu, x); }
Tensor gelu(Context& ctx, const Tensor& x, bool tanh_approximation) {
  return unary(ctx, "gelu", tanh_approximation ? UnaryOp::GeluTanh : UnaryOp::GeluErf, x);
}
Tensor tanh(Context& ctx, const Tensor& x) { return unary(ctx, "tanh", UnaryOp::Tanh, x); }
Tensor sigmoid(Context& ctx, const Tensor& x) { return unary(ctx, "sigmoid", UnaryOp::Sigmoid, x); }
Tensor exp(Context& ctx, const Tensor& x) { return unary(ctx, "exp", UnaryOp::Exp, x); }
Tensor sqrt(Context& ctx, const Tensor& x) { return unary(ctx, "sqrt", UnaryOp::Sqrt, x); }
Tensor affine(Context& ctx, const Tensor& x, float scale, float shift) {
  return unary(ctx, "affine", UnaryOp::Affine, x, scale, shift);
}
Tensor clamp(Context& ctx, const Tensor& x, float lo, float hi) {
  return unary(ctx, "clamp", UnaryOp::Clamp, x, lo, hi);
}

void relu_(Context& ctx, Tensor& x) { unary_inplace(ctx, "relu_", UnaryOp::Relu, x); }
void silu_(Context& ctx, Tensor& x) { unary_inplace(ctx, "silu_", UnaryOp::Silu, x); }

Tensor add(Context& ctx, const Tensor& a, const Tensor& b) { return binary(ctx, "add", BinaryOp::Add, a, b); }
Tensor sub(Context& ctx, const Tensor& a, const Tensor& b) { return binary(ctx, "sub", BinaryOp::Sub, a, b); }
Tensor mul(Context& ctx, const Tensor& a, const Tensor& b) { return binary(ctx, "mul", BinaryOp::Mul, a, b); }
Tensor div(Context& ctx, const Tensor& a, const Tensor& b) { return binary(ctx, "div", BinaryOp::Div, a, b); }
Tensor maximum(Context& ctx, const Tensor& a, const Tensor& b) {
  return binary(ctx, "maximum", BinaryOp::Max, a, b);
}
Tensor minimum(Context& ctx, const Tensor& a, const Tensor& b) {
  return binary(ctx, "minimum", BinaryOp::Min, a, b);
}

void add_(Context& ctx, Tensor& a, const Tensor& b) {
  check_f32(ctx, "add_", a, "first operand");
  check_f32(ctx, "add_", b, "second operand");
  check_writable("add_", a);
  const Shape shape = broadcast_shape("add_", a, b);
  EASEL_CHECK(shape == a.shape(), "add_: ", b.describe(), " does not broadcast to the shape of ", a.describe(),
              " (the result would be ", shape.str(), ")");
  if (!a.is_contiguous()) {
    // Backends write contiguous outputs only: compute aside, then copy into the view.
    Tensor tmp = ctx.empty(shape, DType::F32);
    ctx.backend().binary(ctx, BinaryOp::Add, a, b.expand(shape), tmp);
    ctx.backend().copy(ctx, tmp, a);
    return;
  }
  // When b is another view into a's storage, writing a could change b before it is read.
  Tensor rhs = b;
  if (partially_overlaps(a, b)) {
    rhs = ctx.empty(b.shape(), DType::F32);
    ctx.backend().copy(ctx, b, rhs);
  }
  ctx.backend().binary(ctx, BinaryOp::Add, a, rhs.expand(shape), a);
}

}  // namespace easel::ops
